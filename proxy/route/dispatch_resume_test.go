package route

import (
	"slices"
	"testing"
	"time"
)

// TestDispatchRetryOutcomeNamesMaybeSent checks that the outcome scheduling a resend after a Send
// without a known result names the provider that may have the message, so the caller can keep it.
func TestDispatchRetryOutcomeNamesMaybeSent(t *testing.T) {
	a := &fakeSender{name: "a", fn: firstThen(blockUntilDone, nil)}
	e := setup(t, Config{Timeout: 20 * time.Millisecond}, DispatcherConfig{}, a, &fakeSender{name: "b"})
	e.enqueue(t, msg("m1"))
	e.clock.waitTimer(t)
	got := e.rec.of("m1")
	if len(got) != 2 || got[1].RetryAt.IsZero() || !slices.Equal(got[1].MaybeSent, []string{"a"}) {
		t.Fatalf("outcomes = %+v, want a retry naming a as maybe sent", got)
	}
}

// TestDispatchResumesWithMaybeSent plays a restart: the message comes back from the outbox saying
// b may have it. It goes to b first (not to a, the first of the route), and b's answer settles it.
func TestDispatchResumesWithMaybeSent(t *testing.T) {
	a, b := &fakeSender{name: "a"}, &fakeSender{name: "b"}
	e := setup(t, Config{}, DispatcherConfig{}, a, b)
	it := msg("m1")
	it.Attempt, it.MaybeSent = 1, []string{"b"}
	e.enqueue(t, it)
	e.rec.waitFinal(t, 1)
	got := e.rec.of("m1")
	wantTrail(t, got, []brief{{"b", true, true, "", 2}})
	if got[0].AfterAmbiguous {
		t.Fatalf("b's acceptance of its own resend is marked AfterAmbiguous: %+v", got[0])
	}
	wantKeys(t, a, "m1", 0)
}

// TestDispatchResumedFailoverIsFlagged checks that a resumed message that cannot get an answer from
// the provider that may have it fails over with AfterAmbiguous, as it would have without a restart.
func TestDispatchResumedFailoverIsFlagged(t *testing.T) {
	a := &fakeSender{name: "a"}
	b := &fakeSender{name: "b", fn: fail(crashed)}
	e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 100}}, DispatcherConfig{MaxAmbiguous: 2}, a, b)
	it := msg("m1")
	it.Attempt, it.MaybeSent = 1, []string{"b", "gone"}
	e.enqueue(t, it)
	// The restart counted as one Send without a known result: one more to b moves the message on.
	e.clock.waitTimer(t)
	e.clock.Advance(time.Minute)
	e.rec.waitFinal(t, 1)
	got := e.rec.of("m1")
	last := got[len(got)-1]
	if got[0].Provider != "b" || last.Provider != "a" || !last.Accepted || !last.AfterAmbiguous {
		t.Fatalf("outcomes = %+v, want b tried first and a's acceptance flagged", got)
	}
}

// TestDispatchKeepsRetryTimeAfterRestart plays a restart while a message waits for its retry: the
// outbox hands it over with the time the last pass chose, and it is not sent before then, so that
// a restart during a provider outage does not send every waiting retry at once. A message whose
// time has passed goes at once.
func TestDispatchKeepsRetryTimeAfterRestart(t *testing.T) {
	a := &fakeSender{name: "a"}
	e := setup(t, Config{}, DispatcherConfig{}, a)
	due := msg("m2")
	due.Attempt, due.NotBefore = 1, e.clock.Now().Add(-time.Second)
	e.enqueue(t, due)
	e.rec.waitFinal(t, 1)
	if got := trail(e.rec.of("m2")); len(got) != 1 || !got[0].Accepted {
		t.Fatalf("m2 (due) outcomes = %+v, want it sent at once", got)
	}

	it := msg("m1")
	it.Attempt, it.NotBefore = 2, e.clock.Now().Add(30*time.Second)
	e.enqueue(t, it)
	e.clock.waitTimer(t)
	if d := e.clock.delays(); len(d) != 1 || d[0] != 30*time.Second {
		t.Fatalf("timers = %v, want m1 held for 30s", d)
	}
	e.clock.Advance(29 * time.Second)
	if got := e.rec.of("m1"); len(got) != 0 {
		t.Fatalf("m1 went before its retry time: %+v", got)
	}
	e.clock.Advance(time.Second)
	e.rec.waitFinal(t, 2)
	wantTrail(t, e.rec.of("m1"), []brief{{"a", true, true, "", 3}}) // the third pass

	// A time further ahead than any backoff (a wrong clock, a damaged row) holds it MaxBackoff at most.
	far := msg("m3")
	far.Attempt, far.NotBefore = 1, e.clock.Now().Add(10*365*24*time.Hour)
	e.enqueue(t, far)
	e.clock.waitTimer(t)
	if d := e.clock.delays(); d[len(d)-1] != 5*time.Minute {
		t.Fatalf("m3 held for %v; want MaxBackoff (5m by default)", d[len(d)-1])
	}
	e.clock.Advance(5 * time.Minute)
	e.rec.waitFinal(t, 3)
}
