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

// maxFrameEvents caps the events of one ProviderEventBatch frame; more ready events go in the next.
const maxFrameEvents = 256

// Receive runs the provider's Receive for the life of the stream. Each event the provider hands to
// handle is sent to the host with a fresh id, and handle returns when the host answers that id: nil
// for an ack, an error for a negative ack or when the stream ends first. handle may be called from
// several goroutines at once; every concurrent call keeps one more event in flight.
//
// Events travel in batches without waiting to fill one: a handle call that finds no frame being
// sent yields once to the calls that are ready to run, then sends its event together with every
// event queued meanwhile, and goes on sending what queues up while it was sending until nothing is
// left; the other calls only queue theirs. No timer is involved, so a lone event goes out at once.
func (s *grpcServer) Receive(stream providerpb.Provider_ReceiveServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	r := &eventSender{stream: stream, cancel: cancel, waiting: make(map[uint64]chan bool)}

	// The reader answers waiting handle calls. It ends when the stream does, which at the latest is
	// when this method returns.
	go func() {
		defer cancel()
		in := &providerpb.ReceiveAckBatch{}
		for {
			if err := stream.RecvMsg(in); err != nil {
				return
			}
			r.answer(in.GetAcks())
		}
	}()

	handle := func(ev Event) error {
		var at int64
		if !ev.At.IsZero() {
			at = ev.At.UnixNano()
		}
		msg := &providerpb.ProviderEvent{
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
			return errStreamClosed
		}
		id, ch := r.send(msg)
		select {
		case ok := <-ch:
			if ok {
				return nil
			}
			return errNotAcked
		case <-ctx.Done():
			r.forget(id)
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

// eventSender is the plugin side of one receive stream: it numbers events, sends them in batches
// and hands each ack to the handle call waiting for it.
type eventSender struct {
	stream interface {
		Send(*providerpb.ProviderEventBatch) error
	}
	cancel context.CancelFunc

	mu      sync.Mutex
	nextID  uint64
	waiting map[uint64]chan bool // by event id, until answered or forgotten
	queue   []*providerpb.ProviderEvent
	sending bool // a handle call is sending frames; it sends the queue too
}

// send queues ev under a fresh id and, unless another call is already sending, sends frames until
// the queue is empty. It returns the id and the channel that receives the host's answer.
func (r *eventSender) send(ev *providerpb.ProviderEvent) (uint64, chan bool) {
	ch := make(chan bool, 1)
	r.mu.Lock()
	r.nextID++
	id := r.nextID
	ev.Id = id
	r.waiting[id] = ch
	r.queue = append(r.queue, ev)
	err := sendQueued(&r.mu, &r.queue, &r.sending, maxFrameEvents, func(evs []*providerpb.ProviderEvent) error {
		return r.stream.Send(&providerpb.ProviderEventBatch{Events: evs})
	})
	r.mu.Unlock()
	if err != nil {
		r.cancel() // every call waiting, queued or sent, learns from the cancelled context
	}
	return id, ch
}

// answer hands each ack to the call waiting for its event.
func (r *eventSender) answer(acks []*providerpb.ReceiveAck) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range acks {
		if ch, ok := r.waiting[a.GetId()]; ok {
			delete(r.waiting, a.GetId())
			ch <- a.GetErrorCode() == ""
		}
	}
}

// forget drops the wait for event id.
func (r *eventSender) forget(id uint64) {
	r.mu.Lock()
	delete(r.waiting, id)
	r.mu.Unlock()
}

// statusError returns a gRPC status error carrying pe as a PluginError detail.
func statusError(c codes.Code, pe *Error) error {
	st := status.New(c, pe.Error())
	if d, err := st.WithDetails(&providerpb.PluginError{Code: pe.Code, Message: pe.Message, Retryable: pe.Retryable, NotSent: pe.NotSent}); err == nil {
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
