package route

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// handover is a recorded handover in brief.
type handover struct {
	to      string
	attempt int
	maybe   string
}

func (r *recorder) handoversOf(id string) []handover {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []handover
	for _, o := range r.handovers {
		if o.MessageID == id {
			if o.Code != CodeHandover {
				panic("handover outcome with code " + o.Code)
			}
			out = append(out, handover{o.Handover, o.Attempt, joinNames(o.MaybeSent)})
		}
	}
	return out
}

func joinNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ","
		}
		s += n
	}
	return s
}

// seenBy wraps next so that it notes, when called, the handovers already recorded for the
// message: what a restart at that moment would know.
func seenBy(rec *recorder, seen *[]handover, next sendFunc) sendFunc {
	return func(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
		*seen = rec.handoversOf(reqs[0].MessageID)
		return next(ctx, reqs)
	}
}

// TestDispatchRecordsHandoverBeforeSend: a message that a refusal moves on within its pass to a
// provider a restart would not start with is recorded as maybe sent there before the Send, so
// that a restart resends to it, under the same key, instead of to the first provider again.
func TestDispatchRecordsHandoverBeforeSend(t *testing.T) {
	a := &fakeSender{name: "a", fn: refuse("throttled", true)}
	b := &fakeSender{name: "b"}
	c := &fakeSender{name: "c"}
	e := setup(t, Config{}, DispatcherConfig{}, a, b, c)
	var seen []handover
	b.fn = seenBy(e.rec, &seen, refuse("busy", true))
	c.fn = seenBy(e.rec, new([]handover), accept("c"))
	e.enqueue(t, msg("m1"))
	e.rec.waitFinal(t, 1)
	want := []handover{{"b", 1, "b"}, {"c", 1, "c"}}
	if got := e.rec.handoversOf("m1"); !slices.Equal(got, want) {
		t.Fatalf("handovers = %+v, want %+v", got, want)
	}
	if want := want[:1]; !slices.Equal(seen, want) {
		t.Errorf("handovers recorded when b was called = %+v, want %+v", seen, want)
	}
}

// TestDispatchHandoverAfterRestart plays the restart: the message comes back with the provider
// the handover recorded, goes there first with the same key, and needs no handover for it.
func TestDispatchHandoverAfterRestart(t *testing.T) {
	a := &fakeSender{name: "a"}
	b := &fakeSender{name: "b"}
	e := setup(t, Config{}, DispatcherConfig{}, a, b)
	it := msg("m1")
	it.MaybeSent = []string{"b"}
	e.enqueue(t, it)
	e.rec.waitFinal(t, 1)
	if got := a.Sent(); got != 0 {
		t.Errorf("a got %d sends, want 0: b may have taken the message before the restart", got)
	}
	if got := b.Keys(); !slices.EqualFunc(got, [][]string{{"idem-m1"}}, slices.Equal) {
		t.Errorf("b got keys %v, want [[idem-m1]]", got)
	}
	if got := e.rec.handoversOf("m1"); len(got) != 0 {
		t.Errorf("handovers = %+v, want none", got)
	}
}

// TestDispatchNoHandoverOnTheUsualPath: a message the first provider takes, and a retry pass that
// starts again at the first provider, record no handover.
func TestDispatchNoHandoverOnTheUsualPath(t *testing.T) {
	a := &fakeSender{name: "a", fn: firstThen(refuse("throttled", true), accept("a"))}
	b := &fakeSender{name: "b", fn: refuse("throttled", true)}
	e := setup(t, Config{}, DispatcherConfig{MinBackoff: time.Second}, a, b)
	e.retried(t, msg("m1"), time.Second)
	want := []handover{{"b", 1, "b"}} // the first pass moved on to b; the second starts at a again
	if got := e.rec.handoversOf("m1"); !slices.Equal(got, want) {
		t.Errorf("handovers = %+v, want %+v", got, want)
	}
}

// TestDispatchHandoverPastOpenBreaker: a message that skips a provider whose breaker is open is
// recorded as going to the next one.
func TestDispatchHandoverPastOpenBreaker(t *testing.T) {
	a := &fakeSender{name: "a", fn: fail(errors.New("connection refused"))}
	b := &fakeSender{name: "b"}
	e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Hour}}, DispatcherConfig{}, a, b)
	e.enqueue(t, msg("m0")) // opens a's breaker
	e.rec.waitUntil(t, "m0's outcome at a", func() bool { return len(e.rec.outs) > 0 })
	if st := e.router.State("a"); st != StateOpen {
		t.Fatalf("breaker of a = %s, want open", st)
	}
	e.enqueue(t, msg("m1"))
	e.rec.waitUntil(t, "m1 final", func() bool { return e.rec.finals["m1"] == 1 })
	if got, want := e.rec.handoversOf("m1"), []handover{{"b", 1, "b"}}; !slices.Equal(got, want) {
		t.Errorf("handovers = %+v, want %+v", got, want)
	}
}
