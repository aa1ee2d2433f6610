package route

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	router  *Router
	d       *Dispatcher
	rec     *recorder
	clock   *fakeClock
	senders map[string]*fakeSender
}

// setup builds a router over the senders (country SG tries them in the order given) and a
// dispatcher with deterministic, maximal jitter. The dispatcher is closed when the test ends.
func setup(t testing.TB, cfg Config, dcfg DispatcherConfig, senders ...*fakeSender) *env {
	t.Helper()
	e := &env{rec: newRecorder(), clock: newFakeClock(), senders: map[string]*fakeSender{}}
	cfg.Providers = map[string]Sender{}
	var order []string
	for _, s := range senders {
		cfg.Providers[s.name] = s
		e.senders[s.name] = s
		order = append(order, s.name)
	}
	if cfg.Countries == nil {
		cfg.Countries = map[string][]string{"SG": order}
	}
	if cfg.Clock == nil {
		cfg.Clock = e.clock
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dcfg.Recorder = e.rec
	d, err := NewDispatcher(r, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	d.rand = func() float64 { return 1 }
	e.router, e.d = r, d
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func msg(id string) Item {
	return Item{Req: provider.SendRequest{MessageID: id, IdempotencyKey: "idem-" + id, Country: "SG"}, Country: "SG"}
}

func (e *env) enqueue(t testing.TB, it Item) {
	t.Helper()
	if err := e.d.Enqueue(context.Background(), it); err != nil {
		t.Fatalf("Enqueue(%s): %v", it.Req.MessageID, err)
	}
}

// brief is an outcome without ids and text, for comparing trails.
type brief struct {
	Provider string
	Accepted bool
	Final    bool
	Code     string
	Attempt  int
}

func trail(outs []Outcome) []brief {
	var b []brief
	for _, o := range outs {
		b = append(b, brief{o.Provider, o.Accepted, o.Final, o.Code, o.Attempt})
	}
	return b
}

// wantTrail fails t unless outs, in brief, are want.
func wantTrail(t testing.TB, outs []Outcome, want []brief) {
	t.Helper()
	if got := trail(outs); !slices.Equal(got, want) {
		t.Fatalf("outcomes:\n got %+v\nwant %+v", got, want)
	}
}

// retried enqueues it, lets its first backoff pass (the clock advanced by after) and returns its
// outcomes once it is final; it must be the only message of e.
func (e *env) retried(t testing.TB, it Item, after time.Duration) []Outcome {
	t.Helper()
	e.enqueue(t, it)
	e.clock.waitTimer(t)
	e.clock.Advance(after)
	e.rec.waitFinal(t, 1)
	return e.rec.of(it.Req.MessageID)
}

func TestDispatchProviderChoice(t *testing.T) {
	errDown := errors.New("connection refused")
	tests := []struct {
		name   string
		a, b   sendFunc
		route  []string
		want   []brief
		aCalls int
		bCalls int
	}{
		{
			name: "country default order", a: nil, b: nil,
			want:   []brief{{"a", true, true, "", 1}},
			aCalls: 1,
		},
		{
			name: "decision route overrides the country order", route: []string{"b", "a"},
			want:   []brief{{"b", true, true, "", 1}},
			bCalls: 1,
		},
		{
			name: "transport error waits for the same provider", a: fail(errDown),
			want:   []brief{{"a", false, false, CodeProviderError, 1}, {"", false, false, CodeNoProviderAvailable, 1}},
			aCalls: 1,
		},
		{
			name: "retryable refusal fails over", a: refuse("throttled", true),
			want:   []brief{{"a", false, false, "throttled", 1}, {"b", true, true, "", 1}},
			aCalls: 1, bCalls: 1,
		},
		{
			name: "non-retryable refusal is final", a: refuse("invalid_destination", false),
			want:   []brief{{"a", false, true, "invalid_destination", 1}},
			aCalls: 1,
		},
		{
			name: "refusal without a code gets one", a: refuse("", false),
			want:   []brief{{"a", false, true, CodeProviderRefused, 1}},
			aCalls: 1,
		},
		{
			name: "wrong number of results waits for the same provider",
			a: func(context.Context, []provider.SendRequest) ([]provider.SendResult, error) {
				return nil, nil
			},
			want:   []brief{{"a", false, false, CodeProviderProtocol, 1}, {"", false, false, CodeNoProviderAvailable, 1}},
			aCalls: 1,
		},
		{
			name: "result for another message waits for the same provider",
			a: func(context.Context, []provider.SendRequest) ([]provider.SendResult, error) {
				return []provider.SendResult{{MessageID: "other", Accepted: true}}, nil
			},
			want:   []brief{{"a", false, false, CodeProviderProtocol, 1}, {"", false, false, CodeNoProviderAvailable, 1}},
			aCalls: 1,
		},
		{
			name: "route of one provider does not fail over", route: []string{"a"}, a: refuse("throttled", true),
			want:   []brief{{"a", false, false, "throttled", 1}, {"", false, false, CodeNoProviderAvailable, 1}},
			aCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := &fakeSender{name: "a", fn: tt.a}, &fakeSender{name: "b", fn: tt.b}
			e := setup(t, Config{}, DispatcherConfig{}, a, b)
			it := msg("m1")
			it.Providers = tt.route
			e.enqueue(t, it)
			e.rec.waitUntil(t, "the expected trail", func() bool { return len(e.rec.outs) >= len(tt.want) })
			if got := trail(e.rec.of("m1")); !slices.Equal(got, tt.want) {
				t.Fatalf("outcomes = %+v, want %+v", got, tt.want)
			}
			if got := len(a.Calls()); got != tt.aCalls {
				t.Errorf("provider a called %d times, want %d", got, tt.aCalls)
			}
			if got := len(b.Calls()); got != tt.bCalls {
				t.Errorf("provider b called %d times, want %d", got, tt.bCalls)
			}
			for _, o := range e.rec.of("m1") {
				if o.AfterAmbiguous && o.Provider != "" {
					t.Errorf("no provider took over after an unknown result, yet %+v", o)
				}
			}
		})
	}
}

func TestDispatchAcceptedOutcome(t *testing.T) {
	e := setup(t, Config{}, DispatcherConfig{}, &fakeSender{name: "a"})
	e.enqueue(t, msg("m1"))
	e.rec.waitFinal(t, 1)
	got := e.rec.of("m1")
	want := []Outcome{{MessageID: "m1", Provider: "a", ProviderMessageID: "a-m1", Accepted: true, Final: true, Attempt: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes = %+v, want %+v", got, want)
	}
}

func TestDispatchBreaker(t *testing.T) {
	var aDown atomic.Bool
	aDown.Store(true)
	a := &fakeSender{name: "a", fn: func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
		if aDown.Load() {
			return nil, errors.New("connection reset")
		}
		return accept("a")(ctx, reqs)
	}}
	b := &fakeSender{name: "b"}
	// MaxAmbiguous 1: a message moves on from a at its first send error, so each send finishes at once.
	e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 2, OpenFor: time.Minute}}, DispatcherConfig{MaxAmbiguous: 1}, a, b)

	// One message at a time so each is its own batch.
	send := func(id string) {
		t.Helper()
		n := e.rec.finalCount()
		e.enqueue(t, msg(id))
		e.rec.waitFinal(t, n+1)
	}
	send("m1")
	send("m2")
	if st := e.router.State("a"); st != StateOpen {
		t.Fatalf("after 2 failures: state = %s, want open", st)
	}
	send("m3")
	if got := len(a.Calls()); got != 2 {
		t.Fatalf("open provider a was called: %d calls, want 2", got)
	}
	wantTrail(t, e.rec.of("m3"), []brief{{"b", true, true, "", 1}}) // straight to b

	// After OpenFor one probe goes to a; it fails, so the breaker opens again.
	e.clock.Advance(time.Minute)
	send("m4")
	if got := len(a.Calls()); got != 3 {
		t.Fatalf("half-open provider a: %d calls, want 3 (one probe)", got)
	}
	if st := e.router.State("a"); st != StateOpen {
		t.Fatalf("after a failed probe: state = %s, want open", st)
	}
	// a recovers: the next probe closes the breaker and a takes traffic again.
	aDown.Store(false)
	e.clock.Advance(time.Minute)
	send("m5")
	send("m6")
	if st := e.router.State("a"); st != StateClosed {
		t.Fatalf("after a good probe: state = %s, want closed", st)
	}
	for _, id := range []string{"m5", "m6"} {
		if want := []brief{{"a", true, true, "", 1}}; !slices.Equal(trail(e.rec.of(id)), want) {
			t.Fatalf("%s outcomes = %+v, want sent by a", id, trail(e.rec.of(id)))
		}
	}
}

func TestDispatchAllBreakersOpenWaitsForRetry(t *testing.T) {
	a := &fakeSender{name: "a", fn: fail(errors.New("down"))}
	e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Hour}},
		DispatcherConfig{MinBackoff: time.Second, MaxBackoff: time.Minute}, a)
	e.enqueue(t, msg("m1"))
	e.clock.waitTimer(t)
	e.enqueue(t, msg("m2")) // breaker open: no send, straight to a retry
	e.clock.waitTimer(t)
	if got := len(a.Calls()); got != 1 {
		t.Fatalf("a called %d times, want 1", got)
	}
	want := []brief{{"", false, false, CodeNoProviderAvailable, 1}}
	if got := trail(e.rec.of("m2")); !slices.Equal(got, want) {
		t.Fatalf("m2 outcomes = %+v, want %+v", got, want)
	}
	if o := e.rec.of("m2")[0]; !o.RetryAt.Equal(e.clock.Now().Add(time.Second)) {
		t.Fatalf("RetryAt = %s, want now + 1s", o.RetryAt)
	}
}

func TestDispatchRetriesWithBackoffThenFails(t *testing.T) {
	a := &fakeSender{name: "a", fn: refuse("throttled", true)}
	b := &fakeSender{name: "b", fn: refuse("busy", true)}
	e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 100}},
		DispatcherConfig{MaxAttempts: 3, MinBackoff: time.Second, MaxBackoff: time.Minute}, a, b)
	e.enqueue(t, msg("m1"))
	e.clock.waitTimer(t)
	e.clock.Advance(time.Second)
	e.clock.waitTimer(t)
	e.clock.Advance(2 * time.Second)
	e.rec.waitFinal(t, 1)

	if got, want := e.clock.delays(), []time.Duration{time.Second, 2 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("backoff delays = %v, want %v", got, want)
	}
	var want []brief
	for attempt := 1; attempt <= 3; attempt++ {
		want = append(want,
			brief{"a", false, false, "throttled", attempt},
			brief{"b", false, false, "busy", attempt},
			brief{"", false, attempt == 3, CodeNoProviderAvailable, attempt})
	}
	if got := trail(e.rec.of("m1")); !slices.Equal(got, want) {
		t.Fatalf("outcomes:\n got %+v\nwant %+v", got, want)
	}
	// An outbox hand-over continues the attempt count.
	it := msg("m2")
	it.Attempt = 2
	e.enqueue(t, it)
	e.rec.waitFinal(t, 2)
	if got := e.rec.of("m2"); got[len(got)-1].Attempt != 3 || !got[len(got)-1].Final {
		t.Fatalf("resumed message: last outcome %+v, want final at attempt 3", got[len(got)-1])
	}
}

func TestDispatchRetrySucceeds(t *testing.T) {
	var calls atomic.Int32
	a := &fakeSender{name: "a", fn: func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("down")
		}
		return accept("a")(ctx, reqs)
	}}
	e := setup(t, Config{}, DispatcherConfig{}, a)
	e.enqueue(t, msg("m1"))
	e.clock.waitTimer(t)
	e.clock.Advance(time.Second)
	e.rec.waitFinal(t, 1)
	want := []brief{{"a", false, false, CodeProviderError, 1}, {"", false, false, CodeNoProviderAvailable, 1}, {"a", true, true, "", 2}}
	if got := trail(e.rec.of("m1")); !slices.Equal(got, want) {
		t.Fatalf("outcomes = %+v, want %+v", got, want)
	}
}

func TestDispatchBatches(t *testing.T) {
	gate := make(chan struct{})
	slow := &fakeSender{name: "a", fn: gated(gate, accept("a"))}
	const n, maxBatch, workers = 1000, 64, 2
	e := setup(t, Config{}, DispatcherConfig{QueueSize: n, MaxBatch: maxBatch, Workers: workers}, slow)
	for i := range n {
		e.enqueue(t, msg(strconv.Itoa(i)))
	}
	close(gate)
	e.rec.waitFinal(t, n)

	calls := slow.Calls()
	seen := map[string]int{}
	for _, c := range calls {
		if len(c) > maxBatch {
			t.Fatalf("batch of %d, above MaxBatch %d", len(c), maxBatch)
		}
		for _, id := range c {
			seen[id]++
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages sent, want %d", len(seen), n)
	}
	e.rec.mu.Lock()
	for id, k := range seen {
		if k != 1 || e.rec.finals[id] != 1 {
			t.Fatalf("message %s sent %d times with %d final outcomes, want 1 and 1", id, k, e.rec.finals[id])
		}
	}
	e.rec.mu.Unlock()
	// While the first sends were stuck, the rest queued up and went out in full batches.
	if limit := workers + (n+maxBatch-1)/maxBatch + 2; len(calls) > limit {
		t.Fatalf("%d Send calls for %d messages, want at most %d", len(calls), n, limit)
	}
	t.Logf("%d messages in %d Send calls", n, len(calls))
}

func TestDispatchProviderMaxBatch(t *testing.T) {
	gate := make(chan struct{})
	slow := &fakeSender{name: "a", fn: gated(gate, accept("a"))}
	e := setup(t, Config{MaxBatch: map[string]int{"a": 10}}, DispatcherConfig{QueueSize: 100, Workers: 1}, slow)
	for i := range 100 {
		e.enqueue(t, msg(strconv.Itoa(i)))
	}
	close(gate)
	e.rec.waitFinal(t, 100)
	for _, c := range slow.Calls() {
		if len(c) > 10 {
			t.Fatalf("batch of %d above the provider's cap of 10", len(c))
		}
	}
}

func TestEnqueueErrors(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	e := setup(t, Config{}, DispatcherConfig{QueueSize: 1}, &fakeSender{name: "a", fn: gated(gate, accept("a"))})

	it := msg("x")
	it.Country = "GB"
	if err := e.d.Enqueue(context.Background(), it); code(err) != CodeNoRoute {
		t.Fatalf("unknown country: %v, want %s", err, CodeNoRoute)
	}

	e.enqueue(t, msg("m1")) // takes the only slot until a answers
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := e.d.Enqueue(ctx, msg("m2"))
	if code(err) != CodeQueueFull || !errors.Is(err, context.Canceled) {
		t.Fatalf("full queue: %v, want %s wrapping the context error", err, CodeQueueFull)
	}

	// An Enqueue blocked on the full queue returns when Close starts.
	blocked := make(chan error, 1)
	go func() { blocked <- e.d.Enqueue(context.Background(), msg("m3")) }()
	go func() {
		if err := e.d.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if err := <-blocked; code(err) != CodeClosed {
		t.Fatalf("blocked Enqueue during Close: %v, want %s", err, CodeClosed)
	}
	if err := e.d.Enqueue(context.Background(), msg("m4")); code(err) != CodeClosed {
		t.Fatalf("after Close: %v, want %s", err, CodeClosed)
	}
}

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return fmt.Sprintf("not a route error: %v", err)
}

func TestCloseDrains(t *testing.T) {
	gate := make(chan struct{})
	a := &fakeSender{name: "a", fn: gated(gate, refuse("throttled", true))}
	b := &fakeSender{name: "b"}
	e := setup(t, Config{}, DispatcherConfig{}, a, b)
	const n = 200
	for i := range n {
		e.enqueue(t, msg(strconv.Itoa(i)))
	}
	closed := make(chan error, 1)
	go func() { closed <- e.d.Close(context.Background()) }()
	// Close waits for the messages stuck at a, including their failover to b.
	close(gate)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	if len(e.rec.finals) != n {
		t.Fatalf("%d of %d messages finished before Close returned", len(e.rec.finals), n)
	}
	if b.Sent() != n {
		t.Fatalf("b sent %d, want %d", b.Sent(), n)
	}
}

func TestCloseDropsPendingRetries(t *testing.T) {
	e := setup(t, Config{}, DispatcherConfig{QueueSize: 1}, &fakeSender{name: "a", fn: fail(errors.New("down"))})
	e.enqueue(t, msg("m1"))
	e.clock.waitTimer(t)
	if err := e.d.Close(context.Background()); err != nil {
		t.Fatalf("Close with a retry pending: %v", err)
	}
	before := len(e.rec.outcomes())
	e.clock.Advance(time.Hour) // the stopped retry must not run
	if after := len(e.rec.outcomes()); after != before {
		t.Fatalf("retry ran after Close: %d outcomes, was %d", after, before)
	}
	last := e.rec.of("m1")[len(e.rec.of("m1"))-1]
	if last.Final || last.RetryAt.IsZero() {
		t.Fatalf("last outcome %+v, want non-final with RetryAt so the outbox keeps it", last)
	}
	if len(e.d.slots) != 0 {
		t.Fatalf("%d queue slots still held", len(e.d.slots))
	}
}

func TestCloseGivesUp(t *testing.T) {
	a := &fakeSender{name: "a", fn: blockUntilDone}
	e := setup(t, Config{Timeout: time.Hour}, DispatcherConfig{}, a)
	for i := range 10 {
		e.enqueue(t, msg(strconv.Itoa(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := e.d.Close(ctx)
	if code(err) != CodeDrainTimeout || !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want %s", err, CodeDrainTimeout)
	}
	for _, o := range e.rec.outcomes() {
		t.Fatalf("abandoned messages must have no outcome, got %+v", o)
	}
	if err := e.d.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestDispatchConcurrent(t *testing.T) {
	var n atomic.Int64
	flaky := func(name string) sendFunc {
		return func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
			switch n.Add(1) % 4 {
			case 0:
				return nil, errors.New("down")
			case 1:
				return refuse("throttled", true)(ctx, reqs)
			}
			return accept(name)(ctx, reqs)
		}
	}
	a, b, c := &fakeSender{name: "a", fn: flaky("a")}, &fakeSender{name: "b", fn: flaky("b")}, &fakeSender{name: "c"}
	// A send error makes a message wait for the same provider, so passes end early: short backoff,
	// and attempts enough that every message reaches c.
	e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 3, OpenFor: time.Millisecond}, Clock: systemClock{}},
		DispatcherConfig{QueueSize: 64, MaxBatch: 8, MaxAttempts: 1000, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, a, b, c)
	const goroutines, each = 8, 250
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				it := msg(fmt.Sprintf("%d-%d", g, i))
				if i%3 == 0 {
					it.Providers = []string{"b", "a", "c"}
				}
				if err := e.d.Enqueue(context.Background(), it); err != nil {
					t.Errorf("Enqueue: %v", err)
				}
			}
		})
	}
	wg.Wait()
	e.rec.waitFinal(t, goroutines*each)
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	for id, k := range e.rec.finals {
		if k != 1 {
			t.Fatalf("message %s has %d final outcomes", id, k)
		}
	}
	for _, o := range e.rec.outs {
		if o.Final && !o.Accepted {
			t.Fatalf("c always accepts, yet %+v", o)
		}
	}
	checkAfterAmbiguous(t, e.rec.outs)
}

// checkAfterAmbiguous replays each message's outcomes and checks AfterAmbiguous on every one: it is
// set exactly when a provider other than the outcome's (any provider, for the dispatcher's own
// outcomes) had a send error that did not say nothing was sent and has not answered for the message
// since.
func checkAfterAmbiguous(t *testing.T, outs []Outcome) {
	t.Helper()
	maybe := map[string][]string{}
	for _, o := range outs {
		want := slices.ContainsFunc(maybe[o.MessageID], func(p string) bool { return p != o.Provider })
		if o.AfterAmbiguous != want {
			t.Fatalf("AfterAmbiguous = %t, want %t, for %+v after unknown results at %v", o.AfterAmbiguous, want, o, maybe[o.MessageID])
		}
		switch {
		case o.Provider == "", o.Code == CodeProviderNotSent: // the provider did not answer for it
		case o.Code == CodeProviderError || o.Code == CodeProviderTimeout || o.Code == CodeProviderProtocol:
			if !slices.Contains(maybe[o.MessageID], o.Provider) {
				maybe[o.MessageID] = append(maybe[o.MessageID], o.Provider)
			}
		default:
			maybe[o.MessageID] = slices.DeleteFunc(maybe[o.MessageID], func(p string) bool { return p == o.Provider })
		}
	}
}

// noopSender accepts every message without keeping anything.
type noopSender struct{}

func (noopSender) Send(_ context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
	out := make([]provider.SendResult, len(reqs))
	for i := range reqs {
		out[i] = provider.SendResult{MessageID: reqs[i].MessageID, Accepted: true}
	}
	return out, nil
}

func BenchmarkDispatch(b *testing.B) {
	r, err := New(Config{Providers: map[string]Sender{"noop": noopSender{}}, Countries: map[string][]string{"SG": {"noop"}}})
	if err != nil {
		b.Fatal(err)
	}
	var final atomic.Int64
	done := make(chan struct{})
	var target atomic.Int64
	target.Store(-1)
	d, err := NewDispatcher(r, DispatcherConfig{Recorder: RecorderFunc(func(_ context.Context, outs []Outcome) {
		if final.Add(int64(len(outs))) == target.Load() {
			close(done)
		}
	})})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close(context.Background())
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := d.Enqueue(context.Background(), msg(ids[seq.Add(1)%int64(len(ids))])); err != nil {
				b.Error(err)
			}
		}
	})
	target.Store(seq.Load())
	if final.Load() < seq.Load() {
		<-done
	}
	b.StopTimer()
	b.ReportMetric(float64(seq.Load())/b.Elapsed().Seconds(), "msgs/s")
}
