package provider

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	providerpb "github.com/smsproxy/smsproxy/plugins/provider/proto"
)

// errNotAcked is what a plugin's handle returns when the host answered an event with a negative ack.
var errNotAcked = &Error{Code: "not_acknowledged", Message: "the host did not handle the event; deliver it again later", Retryable: true}

// errStreamClosed is what a plugin's handle returns when the stream ended before the host answered.
var errStreamClosed = &Error{Code: CodeUnavailable, Message: "the receive stream closed before the host acknowledged the event", Retryable: true}

// grpcServer serves a Provider over gRPC inside a plugin process.
type grpcServer struct {
	providerpb.UnimplementedProviderServer
	impl Provider
}

var _ providerpb.ProviderServer = (*grpcServer)(nil)

// Configure passes the host's configuration to the provider if it takes any.
func (s *grpcServer) Configure(_ context.Context, req *providerpb.ConfigureRequest) (*providerpb.ConfigureResponse, error) {
	c, ok := s.impl.(Configurer)
	if !ok {
		if len(req.GetConfig()) > 0 {
			return nil, statusError(codes.InvalidArgument, &Error{Code: CodeNotConfigurable, Message: "the provider takes no configuration"})
		}
		return &providerpb.ConfigureResponse{}, nil
	}
	if err := c.Configure(req.GetConfig()); err != nil {
		return nil, toStatus(err, CodeInvalidConfig, codes.InvalidArgument)
	}
	return &providerpb.ConfigureResponse{}, nil
}

// Capabilities describes the provider.
func (s *grpcServer) Capabilities(ctx context.Context, _ *providerpb.CapabilitiesRequest) (*providerpb.CapabilitiesResponse, error) {
	c, err := s.impl.Capabilities(ctx)
	if err != nil {
		return nil, toStatus(err, CodeProvider, codes.Unknown)
	}
	return &providerpb.CapabilitiesResponse{
		Name:      c.Name,
		MaxBatch:  int32(min(c.MaxBatch, 1<<31-1)),
		Unicode:   c.Unicode,
		Countries: c.Countries,
	}, nil
}

// Send hands a batch to the provider.
func (s *grpcServer) Send(ctx context.Context, batch *providerpb.SendBatch) (*providerpb.SendBatchResult, error) {
	in := batch.GetRequests()
	reqs := make([]SendRequest, len(in))
	for i, r := range in {
		reqs[i] = SendRequest{
			MessageID:      r.GetMessageId(),
			IdempotencyKey: r.GetIdempotencyKey(),
			To:             r.GetTo(),
			From:           r.GetFrom(),
			SenderKind:     r.GetSenderKind(),
			Body:           r.GetBody(),
			Encoding:       r.GetEncoding(),
			Segments:       int(r.GetSegments()),
			Country:        r.GetCountry(),
			Category:       r.GetCategory(),
		}
	}
	res, err := s.impl.Send(ctx, reqs)
	if err != nil {
		return nil, toStatus(err, CodeProvider, codes.Unknown)
	}
	if len(res) != len(reqs) {
		return nil, statusError(codes.Internal, &Error{Code: CodeProtocol, Message: "the provider returned a result count different from the request count"})
	}
	out := &providerpb.SendBatchResult{Results: make([]*providerpb.SendResult, len(res))}
	for i, r := range res {
		out.Results[i] = &providerpb.SendResult{
			MessageId:         r.MessageID,
			Accepted:          r.Accepted,
			ProviderMessageId: r.ProviderMessageID,
			ErrorCode:         r.ErrorCode,
			ErrorMessage:      r.ErrorMessage,
			Retryable:         r.Retryable,
		}
	}
	return out, nil
}

// Receive runs the provider's Receive for the life of the stream. Each event the provider hands to
// handle is sent to the host with a fresh id, and handle returns when the host answers that id: nil
// for an ack, an error for a negative ack or when the stream ends first. handle may be called from
// several goroutines at once; every concurrent call keeps one more event in flight.
func (s *grpcServer) Receive(stream providerpb.Provider_ReceiveServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	var (
		mu      sync.Mutex
		nextID  uint64
		waiting = make(map[uint64]chan bool)
		sendMu  sync.Mutex
	)
	forget := func(id uint64) {
		mu.Lock()
		delete(waiting, id)
		mu.Unlock()
	}

	// The reader answers waiting handle calls. It ends when the stream does, which at the latest is
	// when this method returns.
	go func() {
		defer cancel()
		for {
			ack, err := stream.Recv()
			if err != nil {
				return
			}
			mu.Lock()
			ch, ok := waiting[ack.GetId()]
			delete(waiting, ack.GetId())
			mu.Unlock()
			if ok {
				ch <- ack.GetErrorCode() == ""
			}
		}
	}()

	handle := func(ev Event) error {
		ch := make(chan bool, 1)
		mu.Lock()
		nextID++
		id := nextID
		waiting[id] = ch
		mu.Unlock()

		var at int64
		if !ev.At.IsZero() {
			at = ev.At.UnixNano()
		}
		msg := &providerpb.ProviderEvent{
			Id:                id,
			Kind:              string(ev.Kind),
			ProviderMessageId: ev.ProviderMessageID,
			Status:            ev.Status,
			ErrorCode:         ev.ErrorCode,
			ErrorMessage:      ev.ErrorMessage,
			From:              ev.From,
			To:                ev.To,
			Body:              ev.Body,
			AtUnixNano:        at,
		}
		if ctx.Err() != nil {
			forget(id)
			return errStreamClosed
		}
		sendMu.Lock()
		err := stream.Send(msg)
		sendMu.Unlock()
		if err != nil {
			forget(id)
			cancel()
			return errStreamClosed
		}
		select {
		case ok := <-ch:
			if ok {
				return nil
			}
			return errNotAcked
		case <-ctx.Done():
			forget(id)
			return errStreamClosed
		}
	}

	err := s.impl.Receive(ctx, handle)
	if err == nil || ctx.Err() != nil {
		// The host went away or the provider finished; either way the stream is over.
		return nil
	}
	return toStatus(err, CodeProvider, codes.Unknown)
}

// statusError returns a gRPC status error carrying pe as a PluginError detail.
func statusError(c codes.Code, pe *Error) error {
	st := status.New(c, pe.Error())
	if d, err := st.WithDetails(&providerpb.PluginError{Code: pe.Code, Message: pe.Message, Retryable: pe.Retryable}); err == nil {
		st = d
	}
	return st.Err()
}

// toStatus turns a provider's error into a gRPC status error that keeps its code: an *Error keeps
// its own code, a context error becomes a timeout or cancellation, and any other error gets
// fallback. The text of a plain error crosses the boundary as the message, so providers must keep
// personal data out of error texts.
func toStatus(err error, fallback string, c codes.Code) error {
	var pe *Error
	switch {
	case errors.As(err, &pe):
		return statusError(c, pe)
	case errors.Is(err, context.DeadlineExceeded):
		return statusError(codes.DeadlineExceeded, &Error{Code: CodeTimeout, Message: "the provider did not answer in time", Retryable: true})
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	default:
		return statusError(c, &Error{Code: fallback, Message: err.Error()})
	}
}
