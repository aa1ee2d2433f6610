package route

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// waitFor is how long a test waits for something that should happen at once; reaching it fails
// the test, it never decides a pass.
const waitFor = 20 * time.Second

// fakeSender answers with fn, or accepts everything when fn is nil, and records each call.
type fakeSender struct {
	name string
	fn   func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error)

	mu    sync.Mutex
	calls [][]string // message ids per call
	keys  [][]string // idempotency keys per call
}

func (f *fakeSender) Send(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
	ids, keys := make([]string, len(reqs)), make([]string, len(reqs))
	for i, r := range reqs {
		ids[i], keys[i] = r.MessageID, r.IdempotencyKey
	}
	f.mu.Lock()
	f.calls = append(f.calls, ids)
	f.keys = append(f.keys, keys)
	f.mu.Unlock()
	if f.fn != nil {
		return f.fn(ctx, reqs)
	}
	return accept(f.name)(ctx, reqs)
}

func (f *fakeSender) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Keys returns the idempotency keys of every call.
func (f *fakeSender) Keys() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.keys)
}

func (f *fakeSender) Sent() int {
	n := 0
	for _, c := range f.Calls() {
		n += len(c)
	}
	return n
}

type sendFunc = func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error)

func accept(name string) sendFunc {
	return func(_ context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
		out := make([]provider.SendResult, len(reqs))
		for i, r := range reqs {
			out[i] = provider.SendResult{MessageID: r.MessageID, Accepted: true, ProviderMessageID: name + "-" + r.MessageID}
		}
		return out, nil
	}
}

func refuse(code string, retryable bool) sendFunc {
	return func(_ context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
		out := make([]provider.SendResult, len(reqs))
		for i, r := range reqs {
			out[i] = provider.SendResult{MessageID: r.MessageID, ErrorCode: code, ErrorMessage: "refused", Retryable: retryable}
		}
		return out, nil
	}
}

func fail(err error) sendFunc {
	return func(context.Context, []provider.SendRequest) ([]provider.SendResult, error) { return nil, err }
}

// firstThen answers the first call with first and every later one with then.
func firstThen(first, then sendFunc) sendFunc {
	var calls atomic.Int32
	return func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
		if calls.Add(1) == 1 {
			return first(ctx, reqs)
		}
		return then(ctx, reqs)
	}
}

// blockUntilDone never answers before ctx ends.
func blockUntilDone(ctx context.Context, _ []provider.SendRequest) ([]provider.SendResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// gated waits for gate to close, then runs next.
func gated(gate <-chan struct{}, next sendFunc) sendFunc {
	return func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return next(ctx, reqs)
	}
}

// recorder keeps every outcome and lets a test wait for final ones. It keeps handovers apart, so
// that a trail lists what providers and the dispatcher decided.
type recorder struct {
	mu        sync.Mutex
	outs      []Outcome
	handovers []Outcome
	finals    map[string]int
	calls     int
	change    chan struct{}
}

func newRecorder() *recorder {
	return &recorder{finals: map[string]int{}, change: make(chan struct{}, 1)}
}

func (r *recorder) Sent(_ context.Context, outs []Outcome) {
	r.mu.Lock()
	r.calls++
	for _, o := range outs {
		if o.Handover != "" {
			r.handovers = append(r.handovers, o)
			continue
		}
		r.outs = append(r.outs, o)
		if o.Final {
			r.finals[o.MessageID]++
		}
	}
	r.mu.Unlock()
	select {
	case r.change <- struct{}{}:
	default:
	}
}

// finalCount returns how many messages have a final outcome.
func (r *recorder) finalCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.finals)
}

// waitFinal waits until n messages have a final outcome.
func (r *recorder) waitFinal(t testing.TB, n int) {
	t.Helper()
	r.waitUntil(t, fmt.Sprintf("%d final outcomes", n), func() bool { return len(r.finals) >= n })
}

// waitUntil waits until cond, called with r.mu held, is true.
func (r *recorder) waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.change:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; outcomes: %+v", what, r.outcomes())
		}
	}
}

func (r *recorder) outcomes() []Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.outs)
}

// of returns the outcomes of one message.
func (r *recorder) of(id string) []Outcome {
	var out []Outcome
	for _, o := range r.outcomes() {
		if o.MessageID == id {
			out = append(out, o)
		}
	}
	return out
}

// fakeClock is a Clock whose time moves only when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	added  chan struct{}
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	delay   time.Duration
	f       func()
	stopped bool
	fired   bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC), added: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	t := &fakeTimer{c: c, at: c.now.Add(d), delay: d, f: f}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.added <- struct{}{}
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.fired || t.stopped {
		return false
	}
	t.stopped = true
	return true
}

// Advance moves time on and runs the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.fired && !t.stopped && !t.at.After(c.now) {
			t.fired = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// waitTimer waits until AfterFunc has been called once more.
func (c *fakeClock) waitTimer(t testing.TB) {
	t.Helper()
	select {
	case <-c.added:
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for a retry to be scheduled")
	}
}

// delays returns the delay of every timer set so far.
func (c *fakeClock) delays() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, t := range c.timers {
		out = append(out, t.delay)
	}
	return out
}
