package provider

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	providerpb "github.com/smsproxy/smsproxy/plugins/provider/proto"
)

// ackHandlerFailed is the error code of a negative ack: the host's handler returned an error. The
// handler's error text is not sent, as it may name a message.
const ackHandlerFailed = "handler_failed"

// grpcClient is the host side of one plugin connection; it implements Provider over gRPC.
type grpcClient struct {
	rpc providerpb.ProviderClient
	// exited is closed when the plugin process exits.
	exited <-chan struct{}
}

var _ Provider = (*grpcClient)(nil)

func newGRPCClient(ctx context.Context, conn *grpc.ClientConn) *grpcClient {
	return &grpcClient{rpc: providerpb.NewProviderClient(conn), exited: ctx.Done()}
}

// configure sends the host's configuration to the plugin.
func (c *grpcClient) configure(ctx context.Context, config []byte) error {
	_, err := c.rpc.Configure(ctx, &providerpb.ConfigureRequest{Config: config})
	return c.fromStatus(ctx, err)
}

// Capabilities asks the plugin to describe itself.
func (c *grpcClient) Capabilities(ctx context.Context) (Capabilities, error) {
	r, err := c.rpc.Capabilities(ctx, &providerpb.CapabilitiesRequest{})
	if err != nil {
		return Capabilities{}, c.fromStatus(ctx, err)
	}
	return Capabilities{
		Name:      r.GetName(),
		MaxBatch:  int(r.GetMaxBatch()),
		Unicode:   r.GetUnicode(),
		Countries: r.GetCountries(),
	}, nil
}

// Send hands a batch to the plugin in one call.
func (c *grpcClient) Send(ctx context.Context, reqs []SendRequest) ([]SendResult, error) {
	batch := &providerpb.SendBatch{Requests: make([]*providerpb.SendRequest, len(reqs))}
	// One backing array for the whole batch saves an allocation per message.
	msgs := make([]providerpb.SendRequest, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		m := &msgs[i]
		m.MessageId = r.MessageID
		m.IdempotencyKey = r.IdempotencyKey
		m.To = r.To
		m.From = r.From
		m.SenderKind = r.SenderKind
		m.Body = r.Body
		m.Encoding = r.Encoding
		m.Segments = int32(min(max(r.Segments, 0), 1<<31-1))
		m.Country = r.Country
		m.Category = r.Category
		batch.Requests[i] = m
	}
	out, err := c.rpc.Send(ctx, batch)
	if err != nil {
		return nil, c.fromStatus(ctx, err)
	}
	in := out.GetResults()
	if len(in) != len(reqs) {
		return nil, &Error{Code: CodeProtocol, Message: "the plugin returned a result count different from the request count"}
	}
	res := make([]SendResult, len(in))
	for i, r := range in {
		res[i] = SendResult{
			MessageID:         r.GetMessageId(),
			Accepted:          r.GetAccepted(),
			ProviderMessageID: r.GetProviderMessageId(),
			ErrorCode:         r.GetErrorCode(),
			ErrorMessage:      r.GetErrorMessage(),
			Retryable:         r.GetRetryable(),
		}
	}
	return res, nil
}

// receiveWorkers bounds how many events the host handles at once on one stream. Handling an event
// usually means a durable write; running many at once lets the store commit them together.
const receiveWorkers = 64

// maxFrameAcks caps the acks of one ReceiveAckBatch frame; more ready acks go in the next.
const maxFrameAcks = 1024

// Receive opens one receive stream and calls handle for each event, up to receiveWorkers at once,
// answering each with an ack (handle returned nil) or a negative ack. It returns when ctx ends or the
// stream breaks, after every handle call it started has returned.
//
// Acks travel in batches without waiting to fill one: a handle call that finds no frame being sent
// yields once to the goroutines that are ready to run, then sends its ack together with every ack
// queued meanwhile, and goes on sending what queues up while it was sending until nothing is left;
// the other calls only queue theirs. No timer is involved, so a lone ack goes out at once.
func (c *grpcClient) Receive(ctx context.Context, handle func(Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	stream, err := c.rpc.Receive(ctx)
	if err != nil {
		return c.fromStatus(ctx, err)
	}
	acks := &ackSender{stream: stream, cancel: cancel, failed: make(chan error, 1)}
	sem := make(chan struct{}, receiveWorkers)
	in := &providerpb.ProviderEventBatch{}
	for {
		if err := stream.RecvMsg(in); err != nil {
			select {
			case serr := <-acks.failed:
				return c.fromStatus(ctx, serr)
			default:
			}
			if err == io.EOF {
				// The plugin ended the stream without an error.
				return &Error{Code: CodeUnavailable, Message: "the plugin ended the receive stream", Retryable: true}
			}
			return c.fromStatus(ctx, err)
		}
		for _, ev := range in.GetEvents() {
			e := Event{
				Kind:              EventKind(ev.GetKind()),
				ProviderMessageID: ev.GetProviderMessageId(),
				Status:            ev.GetStatus(),
				ErrorCode:         ev.GetErrorCode(),
				ErrorMessage:      ev.GetErrorMessage(),
				From:              ev.GetFrom(),
				To:                ev.GetTo(),
				Body:              ev.GetBody(),
			}
			if n := ev.GetAtUnixNano(); n != 0 {
				e.At = time.Unix(0, n)
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return c.fromStatus(ctx, ctx.Err())
			}
			wg.Add(1)
			go func(id uint64) {
				defer wg.Done()
				defer func() { <-sem }()
				ack := &providerpb.ReceiveAck{Id: id}
				if handle(e) != nil {
					ack.ErrorCode = ackHandlerFailed
				}
				acks.send(ack)
			}(ev.GetId())
		}
	}
}

// ackSender is the host side of one receive stream's acks: it sends them in batches.
type ackSender struct {
	stream interface {
		Send(*providerpb.ReceiveAckBatch) error
	}
	cancel context.CancelFunc
	// failed receives the first send error; Receive returns it.
	failed chan error

	mu      sync.Mutex
	queue   []*providerpb.ReceiveAck
	sending bool // a call is sending frames; it sends the queue too
}

// send queues ack and, unless another call is already sending, sends frames until the queue is
// empty. After a send error the stream is cancelled and acks are dropped: their events are
// delivered again.
func (a *ackSender) send(ack *providerpb.ReceiveAck) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queue = append(a.queue, ack)
	err := sendQueued(&a.mu, &a.queue, &a.sending, maxFrameAcks, func(acks []*providerpb.ReceiveAck) error {
		return a.stream.Send(&providerpb.ReceiveAckBatch{Acks: acks})
	})
	if err != nil {
		select {
		case a.failed <- err:
		default:
		}
		a.cancel() // Recv returns, and Receive with it
	}
}

// fromStatus turns a gRPC error into an *Error with a stable code, or ctx's error when the caller
// cancelled.
func (c *grpcClient) fromStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return &Error{Code: CodeTimeout, Message: "the plugin did not answer in time", Retryable: true, Err: ctxErr}
		}
		return ctxErr
	}
	st, ok := status.FromError(err)
	if !ok {
		return &Error{Code: CodeUnavailable, Message: "the plugin connection failed", Retryable: true, Err: err}
	}
	for _, d := range st.Details() {
		if pe, ok := d.(*providerpb.PluginError); ok {
			return &Error{Code: pe.GetCode(), Message: pe.GetMessage(), Retryable: pe.GetRetryable(), NotSent: pe.GetNotSent(), Err: err}
		}
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled, codes.Aborted:
		// Canceled without a cancelled ctx means the connection was torn down under the call.
		return &Error{Code: CodeUnavailable, Message: "the plugin went away during the call", Retryable: true, Err: err}
	case codes.DeadlineExceeded:
		return &Error{Code: CodeTimeout, Message: "the plugin did not answer in time", Retryable: true, Err: err}
	}
	select {
	case <-c.exited:
		return &Error{Code: CodeUnavailable, Message: "the plugin process exited during the call", Retryable: true, Err: err}
	default:
	}
	return &Error{Code: CodeProvider, Message: st.Message(), Err: err}
}
