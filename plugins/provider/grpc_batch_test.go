package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	providerpb "github.com/smsproxy/smsproxy/plugins/provider/proto"
)

// blockingStream records the frames sent on it; while hold is set, a Send waits for it to be
// released, after telling entered.
type blockingStream[T any] struct {
	mu      sync.Mutex
	frames  []*T
	hold    chan struct{}
	entered chan struct{}
}

func newBlockingStream[T any]() *blockingStream[T] {
	return &blockingStream[T]{hold: make(chan struct{}), entered: make(chan struct{}, 1)}
}

func (s *blockingStream[T]) send(m *T) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.hold
	s.mu.Lock()
	s.frames = append(s.frames, m)
	s.mu.Unlock()
	return nil
}

type eventStream struct {
	*blockingStream[providerpb.ProviderEventBatch]
}

func (s eventStream) Send(m *providerpb.ProviderEventBatch) error { return s.send(m) }

type ackStream struct {
	*blockingStream[providerpb.ReceiveAckBatch]
}

func (s ackStream) Send(m *providerpb.ReceiveAckBatch) error { return s.send(m) }

// TestEventSenderBatches checks that the events queued while a frame is being sent go together in
// the next frame, at most maxFrameEvents per frame, in the order they were handed over.
func TestEventSenderBatches(t *testing.T) {
	for _, queued := range []int{5, maxFrameEvents + 44} {
		t.Run(fmt.Sprint(queued), func(t *testing.T) {
			bs := newBlockingStream[providerpb.ProviderEventBatch]()
			r := &eventSender{stream: eventStream{blockingStream: bs}, cancel: func() {}, waiting: map[uint64]chan bool{}}
			first := make(chan uint64)
			go func() {
				id, _ := r.send(&providerpb.ProviderEvent{ProviderMessageId: "p-0"})
				first <- id
			}()
			<-bs.entered // the first call is sending its frame
			for i := 1; i <= queued; i++ {
				id, _ := r.send(&providerpb.ProviderEvent{ProviderMessageId: fmt.Sprint("p-", i)})
				if id != uint64(i+1) {
					t.Fatalf("event %d got id %d, want %d", i, id, i+1)
				}
			}
			close(bs.hold)
			if id := <-first; id != 1 {
				t.Fatalf("first event got id %d, want 1", id)
			}
			var sizes []int
			next := 0
			for _, f := range bs.frames {
				sizes = append(sizes, len(f.GetEvents()))
				for _, e := range f.GetEvents() {
					if want := fmt.Sprint("p-", next); e.GetProviderMessageId() != want || e.GetId() != uint64(next+1) {
						t.Fatalf("event %d of the stream is %s id %d, want %s id %d", next, e.GetProviderMessageId(), e.GetId(), want, next+1)
					}
					next++
				}
			}
			want := []int{1, queued}
			if queued > maxFrameEvents {
				want = []int{1, maxFrameEvents, queued - maxFrameEvents}
			}
			if !slices.Equal(sizes, want) {
				t.Errorf("frames of %v events, want %v", sizes, want)
			}
			if len(r.waiting) != queued+1 {
				t.Errorf("%d events wait for an ack, want %d", len(r.waiting), queued+1)
			}
		})
	}
}

// TestAckSenderBatches checks that the acks queued while a frame is being sent go together in the
// next frame, at most maxFrameAcks per frame.
func TestAckSenderBatches(t *testing.T) {
	for _, queued := range []int{7, maxFrameAcks + 3} {
		t.Run(fmt.Sprint(queued), func(t *testing.T) {
			bs := newBlockingStream[providerpb.ReceiveAckBatch]()
			a := &ackSender{stream: ackStream{blockingStream: bs}, cancel: func() {}, failed: make(chan error, 1)}
			done := make(chan struct{})
			go func() {
				a.send(&providerpb.ReceiveAck{Id: 1})
				close(done)
			}()
			<-bs.entered
			for i := 2; i <= queued+1; i++ {
				a.send(&providerpb.ReceiveAck{Id: uint64(i)})
			}
			close(bs.hold)
			<-done
			var sizes []int
			var ids []uint64
			for _, f := range bs.frames {
				sizes = append(sizes, len(f.GetAcks()))
				for _, ack := range f.GetAcks() {
					ids = append(ids, ack.GetId())
				}
			}
			want := []int{1, queued}
			if queued > maxFrameAcks {
				want = []int{1, maxFrameAcks, queued - maxFrameAcks}
			}
			if !slices.Equal(sizes, want) {
				t.Errorf("frames of %v acks, want %v", sizes, want)
			}
			for i, id := range ids {
				if id != uint64(i+1) {
					t.Fatalf("ack %d of the stream answers %d, want %d", i, id, i+1)
				}
			}
		})
	}
}

// concurrentEvents is a provider whose Receive hands all its events to handle at once, each from
// its own goroutine, and reports handle's answers in results.
type concurrentEvents struct {
	Provider
	events  []Event
	results chan result
}

type result struct {
	id  string
	err error
}

func (c *concurrentEvents) Receive(ctx context.Context, handle func(Event) error) error {
	for _, e := range c.events {
		go func() { c.results <- result{e.ProviderMessageID, handle(e)} }()
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestGRPCServerTakesAckFrames speaks the wire protocol to the plugin side: it reads events until
// it has them all, then answers all of them in one ReceiveAckBatch, one negatively.
func TestGRPCServerTakesAckFrames(t *testing.T) {
	const n = 5
	impl := &concurrentEvents{results: make(chan result, n)}
	for i := range n {
		impl.events = append(impl.events, Event{Kind: EventReceipt, ProviderMessageID: fmt.Sprint("p-", i), Status: StatusDelivered})
	}
	conn, _ := plugin.TestGRPCConn(t, func(s *grpc.Server) {
		providerpb.RegisterProviderServer(s, &grpcServer{impl: impl})
	})
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := providerpb.NewProviderClient(conn).Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]uint64{}
	for len(ids) < n {
		f, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range f.GetEvents() {
			ids[e.GetProviderMessageId()] = e.GetId()
		}
	}
	acks := &providerpb.ReceiveAckBatch{}
	for pid, id := range ids {
		ack := &providerpb.ReceiveAck{Id: id}
		if pid == "p-3" {
			ack.ErrorCode = ackHandlerFailed
		}
		acks.Acks = append(acks.Acks, ack)
	}
	if err := stream.Send(acks); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case r := <-impl.results:
			if want := r.id != "p-3"; (r.err == nil) != want {
				t.Errorf("%s: handle returned %v, want acknowledged=%v", r.id, r.err, want)
			}
			if r.id == "p-3" && !errors.Is(r.err, errNotAcked) {
				t.Errorf("%s: handle returned %v, want %v", r.id, r.err, errNotAcked)
			}
		case <-ctx.Done():
			t.Fatal("handle calls still waiting after one frame answered every event")
		}
	}
}

// frameServer is a plugin side speaking the wire protocol directly: it sends its events in one
// frame and collects the acks of every frame it receives.
type frameServer struct {
	providerpb.UnimplementedProviderServer
	events []*providerpb.ProviderEvent
	acks   chan []*providerpb.ReceiveAck
}

func (s *frameServer) Receive(stream providerpb.Provider_ReceiveServer) error {
	if err := stream.Send(&providerpb.ProviderEventBatch{Events: s.events}); err != nil {
		return err
	}
	for {
		f, err := stream.Recv()
		if err != nil {
			return nil
		}
		s.acks <- f.GetAcks()
	}
}

// TestGRPCClientTakesEventFrames checks that the host handles every event of a multi-event frame and
// answers each, positively or negatively, by its id.
func TestGRPCClientTakesEventFrames(t *testing.T) {
	const n = 6
	srv := &frameServer{acks: make(chan []*providerpb.ReceiveAck, n)}
	for i := range n {
		srv.events = append(srv.events, &providerpb.ProviderEvent{Id: uint64(100 + i), Kind: string(EventReceipt), ProviderMessageId: fmt.Sprint("p-", i)})
	}
	conn, _ := plugin.TestGRPCConn(t, func(s *grpc.Server) { providerpb.RegisterProviderServer(s, srv) })
	t.Cleanup(func() { conn.Close() })
	c := newGRPCClient(context.Background(), conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.Receive(ctx, func(e Event) error {
			if e.ProviderMessageID == "p-2" {
				return errors.New("store down")
			}
			return nil
		})
	}()
	got := map[uint64]string{}
	for len(got) < n {
		select {
		case acks := <-srv.acks:
			for _, a := range acks {
				if _, dup := got[a.GetId()]; dup {
					t.Errorf("event %d answered twice", a.GetId())
				}
				got[a.GetId()] = a.GetErrorCode()
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d events answered", len(got), n)
		}
	}
	for i := range n {
		want := ""
		if i == 2 {
			want = ackHandlerFailed
		}
		if code, ok := got[uint64(100+i)]; !ok || code != want {
			t.Errorf("event %d: answered %v with %q, want %q", 100+i, ok, code, want)
		}
	}
	cancel()
	<-done
}
