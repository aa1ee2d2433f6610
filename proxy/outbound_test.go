package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
	"github.com/smsproxy/smsproxy/proxy/route"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// countingSender accepts everything and counts sends per message.
type countingSender struct {
	mu    sync.Mutex
	sends map[string]int
}

func (f *countingSender) Send(_ context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]provider.SendResult, len(reqs))
	for i, r := range reqs {
		f.sends[r.MessageID]++
		out[i] = provider.SendResult{MessageID: r.MessageID, Accepted: true, ProviderMessageID: "p-" + r.MessageID}
	}
	return out, nil
}

func (f *countingSender) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sends[id]
}

// outboxStore is the part of the store the sweeper uses, in memory.
type outboxStore struct {
	messageStore
	mu     sync.Mutex
	rows   []store.OutboxItem
	onRead func() // runs once, after the next page is read
	// afterCommit runs in Accept after the row is written.
	afterCommit func()
	sent        []string
	failed      []store.Failed
}

func (s *outboxStore) PendingOutbox(_ context.Context, _ int, after string) ([]store.OutboxItem, error) {
	s.mu.Lock()
	var out []store.OutboxItem
	for _, r := range s.rows {
		if r.MessageID > after {
			out = append(out, r)
		}
	}
	hook := s.onRead
	s.onRead = nil
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return out, nil
}

// Accept writes the message's outbox row, then runs afterCommit (when set) as if between the
// commit and the caller's next step.
func (s *outboxStore) Accept(_ context.Context, a store.Accepted) (store.AcceptResult, error) {
	s.mu.Lock()
	s.rows = append(s.rows, store.OutboxItem{MessageID: a.ID, Payload: a.Payload})
	hook := s.afterCommit
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return store.AcceptResult{ID: a.ID}, nil
}

func (s *outboxStore) remove(id string) {
	s.rows = slices.DeleteFunc(s.rows, func(r store.OutboxItem) bool { return r.MessageID == id })
}

func (s *outboxStore) RecordSent(_ context.Context, sent []store.Sent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range sent {
		s.sent = append(s.sent, x.MessageID)
		s.remove(x.MessageID)
	}
	return nil
}

func (s *outboxStore) RecordFailed(_ context.Context, failed []store.Failed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range failed {
		s.failed = append(s.failed, f)
		s.remove(f.MessageID)
	}
	return nil
}

func (s *outboxStore) RecordRetry(_ context.Context, id string, attempts int, next time.Time, _ string, maybeSent []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.rows {
		if s.rows[i].MessageID == id {
			s.rows[i].Attempts, s.rows[i].NextAttemptAt, s.rows[i].MaybeSent = attempts, next, slices.Clone(maybeSent)
			return nil
		}
	}
	return store.ErrNotFound
}

func (s *outboxStore) sentCount(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, x := range s.sent {
		if x == id {
			n++
		}
	}
	return n
}

func outboxRow(id, country string) store.OutboxItem {
	b, _ := json.Marshal(outboxPayload{Req: testItem(id, country).Req})
	return store.OutboxItem{MessageID: id, Payload: b}
}

// testItem is the dispatcher's item for a message to a Singapore number.
func testItem(id, country string) route.Item {
	return route.Item{Req: provider.SendRequest{MessageID: id, IdempotencyKey: id, To: "+6591234567", Country: country}, Country: country}
}

// submitted plays Submit's record and dispatch steps for item.
func submitted(t *testing.T, o *outbound, item route.Item) {
	t.Helper()
	b, _ := json.Marshal(outboxPayload{Req: item.Req})
	if _, err := o.p.accept(context.Background(), store.Accepted{ID: item.Req.MessageID, Payload: b}); err != nil {
		t.Fatal(err)
	}
	o.p.dispatch(item)
}

// newTestOutbound is an outbound with one provider "a" serving SG and nothing serving XX.
func newTestOutbound(t *testing.T, st *outboxStore, snd route.Sender) *outbound {
	return newRoutedOutbound(t, st, map[string]route.Sender{"a": snd}, "a")
}

// newRoutedOutbound is an outbound whose providers serve SG in the order given.
func newRoutedOutbound(t *testing.T, st *outboxStore, senders map[string]route.Sender, order ...string) *outbound {
	t.Helper()
	p := &Proxy{log: slog.New(slog.DiscardHandler), store: st}
	o := &outbound{p: p, plugins: map[string]*provider.Plugin{}, inFlight: map[string]struct{}{}}
	for name := range senders {
		o.plugins[name] = nil
	}
	p.out = o
	r, err := route.New(route.Config{Providers: senders, Countries: map[string][]string{"SG": order}, Logger: p.log})
	if err != nil {
		t.Fatal(err)
	}
	o.router = r
	if o.dispatcher, err = route.NewDispatcher(r, route.DispatcherConfig{Recorder: o, Logger: p.log}); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestSweepSkipsWhatFinishedMeanwhile reads an outbox page while a message is in flight and lets that
// message finish before the sweeper checks it: the sweeper must not send it again.
func TestSweepSkipsWhatFinishedMeanwhile(t *testing.T) {
	st := &outboxStore{rows: []store.OutboxItem{outboxRow("m1", "SG")}}
	snd := &countingSender{sends: map[string]int{}}
	o := newTestOutbound(t, st, snd)
	item := route.Item{Req: provider.SendRequest{MessageID: "m1", IdempotencyKey: "m1", Country: "SG"}, Country: "SG", Providers: []string{"a"}}
	o.p.dispatch(item) // in flight when the sweeper reads its page
	st.onRead = func() {
		for st.sentCount("m1") == 0 { // finished after the read, before the check
			time.Sleep(time.Millisecond)
		}
	}
	if err := o.drainOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := o.dispatcher.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := snd.count("m1"); n != 1 {
		t.Errorf("m1 was sent %d times, want 1", n)
	}
	if n := st.sentCount("m1"); n != 1 {
		t.Errorf("m1 was recorded sent %d times, want 1", n)
	}
}

// TestSweepFailsUnroutableRows puts a row no provider serves before a good one: the first fails with
// no_route and the second still goes out.
func TestSweepFailsUnroutableRows(t *testing.T) {
	st := &outboxStore{rows: []store.OutboxItem{outboxRow("m1", "XX"), outboxRow("m2", "SG")}}
	snd := &countingSender{sends: map[string]int{}}
	o := newTestOutbound(t, st, snd)
	if err := o.drainOutbox(context.Background()); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if err := o.dispatcher.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if snd.count("m2") != 1 {
		t.Errorf("m2 was sent %d times, want 1", snd.count("m2"))
	}
	if len(st.failed) != 1 || st.failed[0].MessageID != "m1" || st.failed[0].Code != route.CodeNoRoute {
		t.Errorf("failed = %+v, want m1 with %s", st.failed, route.CodeNoRoute)
	}
}

// TestSweepKeepsRetryTimes plays the sweep after a restart: a row already tried waits for the retry
// time its last pass recorded, while a row whose time has passed, and a row never tried whatever
// time it carries (a replica's clock ahead of this one's), go at once.
func TestSweepKeepsRetryTimes(t *testing.T) {
	later := time.Now().Add(time.Hour)
	fresh, waiting, due := outboxRow("m1", "SG"), outboxRow("m2", "SG"), outboxRow("m3", "SG")
	fresh.NextAttemptAt = later
	waiting.Attempts, waiting.NextAttemptAt = 1, later
	due.Attempts, due.NextAttemptAt = 1, time.Now().Add(-time.Second)
	st := &outboxStore{rows: []store.OutboxItem{fresh, waiting, due}}
	snd := &countingSender{sends: map[string]int{}}
	o := newTestOutbound(t, st, snd)
	if err := o.drainOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for (st.sentCount("m1") == 0 || st.sentCount("m3") == 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := o.dispatcher.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if snd.count("m1") != 1 || snd.count("m3") != 1 {
		t.Errorf("sends: m1 %d, m3 %d; want both sent once at once", snd.count("m1"), snd.count("m3"))
	}
	if n := snd.count("m2"); n != 0 {
		t.Errorf("m2 was sent %d times an hour before its retry time", n)
	}
}

// TestSweepLeavesSubmittedMessages runs a sweep between the commit of a message's outbox row and
// Submit's hand-over: the sweep must leave the message to Submit, which hands it over once.
func TestSweepLeavesSubmittedMessages(t *testing.T) {
	st := &outboxStore{}
	snd := &countingSender{sends: map[string]int{}}
	o := newTestOutbound(t, st, snd)
	st.afterCommit = func() {
		if err := o.drainOutbox(context.Background()); err != nil {
			t.Error(err)
		}
	}
	submitted(t, o, testItem("m1", "SG"))
	if err := o.dispatcher.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := snd.count("m1"); n != 1 {
		t.Errorf("m1 was handed to the provider %d times, want 1", n)
	}
	if n := st.sentCount("m1"); n != 1 {
		t.Errorf("m1 was recorded sent %d times, want 1", n)
	}
}

// TestSweepRacesSubmits runs sweeps without pause while messages are submitted: every message
// reaches the provider exactly once.
func TestSweepRacesSubmits(t *testing.T) {
	st := &outboxStore{}
	snd := &countingSender{sends: map[string]int{}}
	o := newTestOutbound(t, st, snd)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := o.drainOutbox(context.Background()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	const n = 2000
	for i := range n {
		submitted(t, o, testItem(fmt.Sprintf("m%05d", i), "SG"))
	}
	close(stop)
	wg.Wait()
	if err := o.dispatcher.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	snd.mu.Lock()
	defer snd.mu.Unlock()
	if len(snd.sends) != n {
		t.Errorf("%d messages reached the provider, want %d", len(snd.sends), n)
	}
	for id, c := range snd.sends {
		if c != 1 {
			t.Errorf("%s was handed to the provider %d times", id, c)
		}
	}
}

// dedupProvider dedups by idempotency key, as a provider does: once it took a key, it answers
// for it with the same id. It refuses (retryable) every key it has not taken while refusing is
// set. While hang is set, it takes the messages of a Send and never answers (a proxy killed
// before the answer is recorded).
type dedupProvider struct {
	name     string
	mu       sync.Mutex
	took     map[string]bool
	refusing bool
	hang     chan struct{} // closed by the Send that hangs
}

func (d *dedupProvider) Send(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
	d.mu.Lock()
	out := make([]provider.SendResult, len(reqs))
	for i, r := range reqs {
		out[i].MessageID = r.MessageID
		if d.refusing && !d.took[r.IdempotencyKey] {
			out[i].ErrorCode, out[i].Retryable = "busy", true
			continue
		}
		d.took[r.IdempotencyKey] = true
		out[i].Accepted, out[i].ProviderMessageID = true, d.name+"-"+r.IdempotencyKey
	}
	hang := d.hang
	d.hang = nil
	d.mu.Unlock()
	if hang != nil {
		close(hang)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return out, nil
}

func (d *dedupProvider) taken(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.took[key]
}

// TestCrashDuringFailoverResendsToTheSameProvider: a refuses the message, the dispatcher moves it on
// to b within the pass, b takes it and the proxy dies before b's answer is recorded. After the
// restart the message must go to b again (which answers for the key it took), not to a, which
// would now take it too: one delivery, not two.
func TestCrashDuringFailoverResendsToTheSameProvider(t *testing.T) {
	st := &outboxStore{rows: []store.OutboxItem{outboxRow("m1", "SG")}}
	a := &dedupProvider{name: "a", took: map[string]bool{}, refusing: true}
	b := &dedupProvider{name: "b", took: map[string]bool{}, hang: make(chan struct{})}
	hung := b.hang
	o := newRoutedOutbound(t, st, map[string]route.Sender{"a": a, "b": b}, "a", "b")
	if err := o.drainOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-hung // b has taken m1; the proxy dies now, recording nothing more
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	_ = o.dispatcher.Close(dead)

	a.mu.Lock()
	a.refusing = false
	a.mu.Unlock()
	o2 := newRoutedOutbound(t, st, map[string]route.Sender{"a": a, "b": b}, "a", "b")
	if err := o2.drainOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := o2.dispatcher.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := st.sentCount("m1"); n != 1 {
		t.Fatalf("m1 recorded sent %d times, want 1", n)
	}
	if a.taken("m1") {
		t.Errorf("a took m1 after the restart although b had taken it before: delivered twice")
	}
}

// unknownReceipts is a store that knows no message by its provider id.
type unknownReceipts struct {
	outboxStore
	lookups int
}

func (s *unknownReceipts) ApplyReceipt(context.Context, store.Receipt) (store.ReceiptResult, error) {
	s.lookups++
	return store.ReceiptResult{}, store.ErrNotFound
}

// TestUnmatchedReceiptIsDroppedInTime: a receipt naming no message recorded as sent is refused, so
// that the provider delivers it again while the "sent" record may still come; once it has been
// refused for unmatchedFor it is acknowledged, instead of coming back for ever.
func TestUnmatchedReceiptIsDroppedInTime(t *testing.T) {
	st := &unknownReceipts{}
	o := newTestOutbound(t, &st.outboxStore, &countingSender{sends: map[string]int{}})
	o.p.store = st
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	o.p.now = func() time.Time { return now }
	ev := provider.Event{Kind: provider.EventReceipt, ProviderMessageID: "a-lost", Status: provider.StatusDelivered, At: now}
	for _, after := range []time.Duration{0, time.Second, unmatchedFor - time.Second} {
		now = time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC).Add(after)
		if err := o.event(context.Background(), "a", ev); err == nil {
			t.Fatalf("receipt %s after the first: acknowledged, want refused for redelivery", after)
		}
	}
	other := ev
	other.ProviderMessageID = "a-new"
	if err := o.event(context.Background(), "a", other); err == nil {
		t.Fatal("another unmatched receipt was acknowledged at once")
	}
	now = time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC).Add(unmatchedFor)
	if err := o.event(context.Background(), "a", ev); err != nil {
		t.Fatalf("receipt refused for %s: %v, want acknowledged", unmatchedFor, err)
	}
	if err := o.event(context.Background(), "a", other); err == nil {
		t.Error("the younger unmatched receipt was acknowledged with the older one")
	}
	if st.lookups != 6 {
		t.Errorf("%d store lookups, want 6: every delivery is looked up", st.lookups)
	}
}
