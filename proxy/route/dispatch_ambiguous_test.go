package route

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// Sends without a known result: the provider may have taken the message, so it goes to the same
// provider again, never to the next one, until that provider cannot take it.

// crashed is what the plugin host returns when the plugin process exits during a Send. It says
// Retryable, yet the request may have reached the provider.
var crashed = &provider.Error{Code: provider.CodeUnavailable, Message: "the plugin process exited during the call", Retryable: true}

// wantKeys checks that every call of s carried exactly the idempotency key of message id.
func wantKeys(t *testing.T, s *fakeSender, id string, calls int) {
	t.Helper()
	keys := s.Keys()
	if len(keys) != calls {
		t.Fatalf("provider %s called %d times, want %d", s.name, len(keys), calls)
	}
	for i, k := range keys {
		if !slices.Equal(k, []string{"idem-" + id}) {
			t.Fatalf("provider %s call %d carried keys %v, want [idem-%s]", s.name, i+1, k, id)
		}
	}
}

func TestDispatchAmbiguousRetriesSameProvider(t *testing.T) {
	tests := []struct {
		name  string
		first sendFunc
		code  string
	}{
		{"timeout", blockUntilDone, CodeProviderTimeout},
		{"plugin crashed during the call", fail(crashed), CodeProviderError},
		{"connection reset", fail(errors.New("connection reset by peer")), CodeProviderError},
		{"wrong number of results", func(context.Context, []provider.SendRequest) ([]provider.SendResult, error) {
			return nil, nil
		}, CodeProviderProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &fakeSender{name: "a", fn: firstThen(tt.first, accept("a"))}
			b := &fakeSender{name: "b"}
			e := setup(t, Config{Timeout: 20 * time.Millisecond}, DispatcherConfig{MinBackoff: time.Second}, a, b)
			e.enqueue(t, msg("m1"))
			e.clock.waitTimer(t)
			retry := e.rec.of("m1")
			if want := []brief{{"a", false, false, tt.code, 1}, {"", false, false, CodeNoProviderAvailable, 1}}; !slices.Equal(trail(retry), want) {
				t.Fatalf("before the retry: outcomes = %+v, want %+v", trail(retry), want)
			}
			if at := retry[1].RetryAt; !at.Equal(e.clock.Now().Add(time.Second)) {
				t.Fatalf("RetryAt = %s, want now + 1s", at)
			}
			if !strings.Contains(retry[1].Message, "provider a") {
				t.Errorf("retry message %q does not name the provider sent to again", retry[1].Message)
			}

			e.clock.Advance(time.Second)
			e.rec.waitFinal(t, 1)
			got := e.rec.of("m1")
			if want := append(trail(retry), brief{"a", true, true, "", 2}); !slices.Equal(trail(got), want) {
				t.Fatalf("outcomes = %+v, want %+v", trail(got), want)
			}
			if last := got[len(got)-1]; last.AfterAmbiguous || last.ProviderMessageID != "a-m1" {
				t.Fatalf("delivery by the same provider: %+v, want a-m1 without AfterAmbiguous", last)
			}
			wantKeys(t, a, "m1", 2)
			if n := len(b.Calls()); n != 0 {
				t.Fatalf("provider b called %d times, want never", n)
			}
		})
	}
}

func TestDispatchAmbiguousFailsOver(t *testing.T) {
	tests := []struct {
		name         string
		failures     int // breaker ConsecutiveFailures
		maxAmbiguous int
		want         []brief
		retries      int // passes scheduled with backoff
		aCalls       int
		aState       State
	}{
		{
			name: "bound reached, breaker then open", failures: 2,
			want: []brief{
				{"a", false, false, CodeProviderTimeout, 1}, {"", false, false, CodeNoProviderAvailable, 1},
				{"a", false, false, CodeProviderTimeout, 2}, {"b", true, true, "", 2},
			},
			retries: 1, aCalls: 2, aState: StateOpen,
		},
		{
			name: "bound reached, breaker closed", failures: 100,
			want: []brief{
				{"a", false, false, CodeProviderTimeout, 1}, {"", false, false, CodeNoProviderAvailable, 1},
				{"a", false, false, CodeProviderTimeout, 2}, {"b", true, true, "", 2},
			},
			retries: 1, aCalls: 2, aState: StateClosed,
		},
		{
			name: "breaker open before the bound", failures: 1,
			want: []brief{
				{"a", false, false, CodeProviderTimeout, 1}, {"", false, false, CodeNoProviderAvailable, 1},
				{"b", true, true, "", 2},
			},
			retries: 1, aCalls: 1, aState: StateOpen,
		},
		{
			name: "max ambiguous 1 moves on at once", failures: 100, maxAmbiguous: 1,
			want:   []brief{{"a", false, false, CodeProviderTimeout, 1}, {"b", true, true, "", 1}},
			aCalls: 1, aState: StateClosed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &fakeSender{name: "a", fn: blockUntilDone}
			b := &fakeSender{name: "b"}
			e := setup(t, Config{Timeout: 20 * time.Millisecond, Breaker: BreakerConfig{ConsecutiveFailures: tt.failures, OpenFor: time.Hour}},
				DispatcherConfig{MaxAmbiguous: tt.maxAmbiguous}, a, b)
			e.enqueue(t, msg("m1"))
			for range tt.retries {
				e.clock.waitTimer(t)
				e.clock.Advance(time.Minute)
			}
			e.rec.waitFinal(t, 1)
			got := e.rec.of("m1")
			wantTrail(t, got, tt.want)
			for _, o := range got {
				if wantFlag := o.Provider != "a"; o.AfterAmbiguous != wantFlag {
					t.Errorf("AfterAmbiguous = %t, want %t, in %+v", o.AfterAmbiguous, wantFlag, o)
				}
			}
			wantKeys(t, a, "m1", tt.aCalls)
			wantKeys(t, b, "m1", 1)
			if st := e.router.State("a"); st != tt.aState {
				t.Errorf("breaker of a = %s, want %s", st, tt.aState)
			}
		})
	}
}

func TestDispatchAmbiguityResolvedByResend(t *testing.T) {
	// a's first send times out; the resend under the same key is refused as retryable, which says a
	// does not have the message: b takes it, and it is no possible duplicate.
	a := &fakeSender{name: "a", fn: firstThen(blockUntilDone, refuse("throttled", true))}
	b := &fakeSender{name: "b"}
	e := setup(t, Config{Timeout: 20 * time.Millisecond}, DispatcherConfig{}, a, b)
	got := e.retried(t, msg("m1"), time.Second)
	want := []brief{
		{"a", false, false, CodeProviderTimeout, 1}, {"", false, false, CodeNoProviderAvailable, 1},
		{"a", false, false, "throttled", 2}, {"b", true, true, "", 2},
	}
	wantTrail(t, got, want)
	if last := got[len(got)-1]; last.AfterAmbiguous {
		t.Fatalf("b's acceptance after a answered: AfterAmbiguous set in %+v", last)
	}
	wantKeys(t, a, "m1", 2)
}

func TestDispatchAmbiguousRunsOutOfAttempts(t *testing.T) {
	a := &fakeSender{name: "a", fn: fail(crashed)}
	b := &fakeSender{name: "b"}
	e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 100}},
		DispatcherConfig{MaxAttempts: 3, MaxAmbiguous: 5, MinBackoff: time.Second, MaxBackoff: time.Minute}, a, b)
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
			brief{"a", false, false, CodeProviderError, attempt},
			brief{"", false, attempt == 3, CodeNoProviderAvailable, attempt})
	}
	got := e.rec.of("m1")
	wantTrail(t, got, want)
	final := got[len(got)-1]
	if !final.AfterAmbiguous || !strings.Contains(final.Message, "a may have taken it") {
		t.Fatalf("final failure %+v: want AfterAmbiguous and a message naming a", final)
	}
	wantKeys(t, a, "m1", 3)
	if n := len(b.Calls()); n != 0 {
		t.Fatalf("provider b called %d times, want never", n)
	}
}

func TestDispatchAmbiguousBatch(t *testing.T) {
	// The whole batch fails: every message of it waits for a, none goes to b.
	var down atomic.Bool
	down.Store(true)
	gate := make(chan struct{})
	a := &fakeSender{name: "a", fn: gated(gate, func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
		if down.Load() {
			return nil, crashed
		}
		return accept("a")(ctx, reqs)
	})}
	b := &fakeSender{name: "b"}
	e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 100}}, DispatcherConfig{Workers: 1}, a, b)
	ids := []string{"m1", "m2", "m3", "m4"}
	for _, id := range ids {
		e.enqueue(t, msg(id))
	}
	close(gate)
	for range ids {
		e.clock.waitTimer(t)
	}
	down.Store(false)
	e.clock.Advance(time.Second)
	e.rec.waitFinal(t, len(ids))

	if n := len(b.Calls()); n != 0 {
		t.Fatalf("provider b called %d times, want never", n)
	}
	sends := map[string]int{}
	for _, c := range a.Calls() {
		for _, id := range c {
			sends[id]++
		}
	}
	for _, id := range ids {
		got := e.rec.of(id)
		if last := got[len(got)-1]; !last.Accepted || last.Provider != "a" || last.Attempt != 2 || last.AfterAmbiguous {
			t.Errorf("%s: last outcome %+v, want accepted by a at attempt 2", id, last)
		}
		if sends[id] != 2 {
			t.Errorf("%s sent to a %d times, want 2", id, sends[id])
		}
	}
	checkAfterAmbiguous(t, e.rec.outcomes())
}

func TestDispatchAmbiguousAtLaterProvider(t *testing.T) {
	// a refuses, b's send fails: the next pass starts at b, not a, since a taking the message now
	// could deliver it a second time.
	a := &fakeSender{name: "a", fn: firstThen(refuse("throttled", true), accept("a"))}
	b := &fakeSender{name: "b", fn: firstThen(fail(crashed), accept("b"))}
	c := &fakeSender{name: "c"}
	e := setup(t, Config{}, DispatcherConfig{}, a, b, c)
	e.enqueue(t, msg("m1"))
	e.clock.waitTimer(t)
	e.clock.Advance(time.Second)
	e.rec.waitFinal(t, 1)
	want := []brief{
		{"a", false, false, "throttled", 1}, {"b", false, false, CodeProviderError, 1},
		{"", false, false, CodeNoProviderAvailable, 1}, {"b", true, true, "", 2},
	}
	got := e.rec.of("m1")
	wantTrail(t, got, want)
	if last := got[len(got)-1]; last.AfterAmbiguous {
		t.Fatalf("delivery by the provider that had the unknown result: AfterAmbiguous set in %+v", last)
	}
	wantKeys(t, a, "m1", 1)
	wantKeys(t, b, "m1", 2)
	if n := len(c.Calls()); n != 0 {
		t.Fatalf("provider c called %d times, want never", n)
	}
}

func TestDispatchAmbiguousBoundIsPerProvider(t *testing.T) {
	// m1's send to a times out, then a's breaker opens (m2 fails there too), so m1 moves on to b.
	// b's first send fails as well: that is b's first unknown result, so m1 waits for b again
	// rather than moving on to c.
	a := &fakeSender{name: "a", fn: blockUntilDone}
	b := &fakeSender{name: "b", fn: firstThen(fail(crashed), accept("b"))}
	c := &fakeSender{name: "c"}
	e := setup(t, Config{Timeout: 20 * time.Millisecond, Breaker: BreakerConfig{ConsecutiveFailures: 2, OpenFor: time.Hour}},
		DispatcherConfig{}, a, b, c)
	e.enqueue(t, msg("m1"))
	e.clock.waitTimer(t)
	only := msg("m2")
	only.Providers = []string{"a"}
	e.enqueue(t, only)
	e.clock.waitTimer(t)
	if st := e.router.State("a"); st != StateOpen {
		t.Fatalf("breaker of a = %s, want open", st)
	}
	e.clock.Advance(time.Second) // m1 skips a and fails at b; m2 waits again
	e.clock.waitTimer(t)
	e.clock.waitTimer(t)
	e.clock.Advance(2 * time.Second)
	e.rec.waitUntil(t, "m1 final", func() bool { return e.rec.finals["m1"] == 1 })
	want := []brief{
		{"a", false, false, CodeProviderTimeout, 1}, {"", false, false, CodeNoProviderAvailable, 1},
		{"b", false, false, CodeProviderError, 2}, {"", false, false, CodeNoProviderAvailable, 2},
		{"b", true, true, "", 3},
	}
	got := e.rec.of("m1")
	wantTrail(t, got, want)
	if last := got[len(got)-1]; !last.AfterAmbiguous {
		t.Fatalf("b took the message after a's unknown result, yet AfterAmbiguous is not set: %+v", last)
	}
	wantKeys(t, b, "m1", 2)
	if n := len(c.Calls()); n != 0 {
		t.Fatalf("provider c called %d times, want never", n)
	}
	checkAfterAmbiguous(t, e.rec.outcomes())
}

func TestDispatchAmbiguousBreakerOpensWhileQueued(t *testing.T) {
	// m1 waits for a after an unknown result and is queued there again while x's send to a is in
	// flight; x's failure opens a's breaker, so m1 moves on to b untried. b's first send fails: that
	// is b's first unknown result, so m1 waits for b again rather than moving on to c.
	gate := make(chan struct{})
	a := &fakeSender{name: "a", fn: func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
		if reqs[0].MessageID == "x" {
			<-gate
		}
		return nil, crashed
	}}
	b := &fakeSender{name: "b", fn: firstThen(fail(crashed), accept("b"))}
	c := &fakeSender{name: "c"}
	e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 2, OpenFor: time.Hour}}, DispatcherConfig{Workers: 1}, a, b, c)
	e.enqueue(t, msg("m1"))
	e.clock.waitTimer(t)
	x := msg("x")
	x.Providers = []string{"a"}
	e.enqueue(t, x)
	for deadline := time.Now().Add(waitFor); len(a.Calls()) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for x's send to a")
		}
	}
	e.clock.Advance(time.Second) // m1 queues behind x at a, whose breaker is still closed
	close(gate)
	e.clock.waitTimer(t) // x's retry
	e.clock.waitTimer(t) // m1's retry, after b failed
	if st := e.router.State("a"); st != StateOpen {
		t.Fatalf("breaker of a = %s, want open", st)
	}
	e.clock.Advance(2 * time.Second)
	e.rec.waitUntil(t, "m1 final", func() bool { return e.rec.finals["m1"] == 1 })
	want := []brief{
		{"a", false, false, CodeProviderError, 1}, {"", false, false, CodeNoProviderAvailable, 1},
		{"b", false, false, CodeProviderError, 2}, {"", false, false, CodeNoProviderAvailable, 2},
		{"b", true, true, "", 3},
	}
	if got := trail(e.rec.of("m1")); !slices.Equal(got, want) {
		t.Fatalf("outcomes = %+v, want %+v", got, want)
	}
	if got, want := a.Calls(), [][]string{{"m1"}, {"x"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("calls to a = %v, want %v: m1 must not be sent once the breaker opened", got, want)
	}
	if n := len(c.Calls()); n != 0 {
		t.Fatalf("provider c called %d times, want never", n)
	}
	checkAfterAmbiguous(t, e.rec.outcomes())
}
