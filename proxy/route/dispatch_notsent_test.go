package route

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// Send errors that say nothing was sent: the provider took no message of the batch, so the message
// moves on at once, as after a retryable refusal, and no later outcome is a possible duplicate.

// The plugin host's errors tell whether nothing was sent.
var _ NotSentError = (*provider.Error)(nil)

// restarting is what the plugin host returns for a Send while the plugin process is down: no call
// was made.
var restarting = &provider.Error{Code: provider.CodeUnavailable, Message: "plugin a is restarting", Retryable: true, NotSent: true}

// badCredentials is a plugin that refused the whole call before sending anything.
var badCredentials = &provider.Error{Code: "bad_credentials", Message: "the provider refused the credentials", NotSent: true}

// sentMaybe is a Send error of another package that can say nothing was sent, and here does not.
type sentMaybe struct{}

func (sentMaybe) Error() string     { return "connection lost after the request was written" }
func (sentMaybe) NothingSent() bool { return false }

func TestDispatchNotSentFailsOverAtOnce(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"plugin restarting", restarting},
		{"plugin closed", &provider.Error{Code: provider.CodeClosed, Message: "plugin a is closed", NotSent: true}},
		{"refused as a whole by the plugin", badCredentials},
		{"wrapped", fmt.Errorf("sending to a: %w", restarting)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &fakeSender{name: "a", fn: fail(tt.err)}
			b := &fakeSender{name: "b"}
			e := setup(t, Config{Breaker: BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Hour}}, DispatcherConfig{}, a, b)
			e.enqueue(t, msg("m1"))
			e.rec.waitFinal(t, 1)
			got := e.rec.of("m1")
			want := []brief{{"a", false, false, CodeProviderNotSent, 1}, {"b", true, true, "", 1}}
			wantTrail(t, got, want)
			for _, o := range got {
				if o.AfterAmbiguous {
					t.Errorf("AfterAmbiguous set in %+v: nothing reached a", o)
				}
			}
			if !strings.Contains(got[0].Message, tt.err.Error()) {
				t.Errorf("a's outcome message %q does not carry the error %q", got[0].Message, tt.err)
			}
			if d := e.clock.delays(); len(d) != 0 {
				t.Errorf("retries scheduled with delays %v, want b at once", d)
			}
			wantKeys(t, a, "m1", 1)
			wantKeys(t, b, "m1", 1)
			if st := e.router.State("a"); st != StateOpen {
				t.Errorf("breaker of a = %s, want open: the send failed", st)
			}
		})
	}
}

func TestDispatchNotSentOnlyProviderRetries(t *testing.T) {
	// The only provider is restarting: the message waits for the normal backoff, then goes to it
	// again, and its delivery is no possible duplicate.
	a := &fakeSender{name: "a", fn: firstThen(fail(restarting), accept("a"))}
	e := setup(t, Config{}, DispatcherConfig{MinBackoff: time.Second}, a)
	got := e.retried(t, msg("m1"), time.Second)
	want := []brief{
		{"a", false, false, CodeProviderNotSent, 1}, {"", false, false, CodeNoProviderAvailable, 1},
		{"a", true, true, "", 2},
	}
	wantTrail(t, got, want)
	for _, o := range got {
		if o.AfterAmbiguous {
			t.Errorf("AfterAmbiguous set in %+v: nothing reached a", o)
		}
	}
	if msg := got[1].Message; strings.Contains(msg, "no known result") {
		t.Errorf("retry message %q calls the result unknown", msg)
	}
	if got, want := e.clock.delays(), []time.Duration{time.Second}; !slices.Equal(got, want) {
		t.Errorf("backoff delays = %v, want %v", got, want)
	}
	wantKeys(t, a, "m1", 2)
	checkAfterAmbiguous(t, e.rec.outcomes())
}

func TestDispatchNotSentKeepsEarlierAmbiguity(t *testing.T) {
	// a's first send times out, so a may have the message; its resend finds the plugin restarting.
	// The message moves on to b at once, and b's acceptance is a possible duplicate of a's.
	a := &fakeSender{name: "a", fn: firstThen(blockUntilDone, fail(restarting))}
	b := &fakeSender{name: "b"}
	e := setup(t, Config{Timeout: 20 * time.Millisecond, Breaker: BreakerConfig{ConsecutiveFailures: 100}}, DispatcherConfig{}, a, b)
	got := e.retried(t, msg("m1"), time.Second)
	want := []brief{
		{"a", false, false, CodeProviderTimeout, 1}, {"", false, false, CodeNoProviderAvailable, 1},
		{"a", false, false, CodeProviderNotSent, 2}, {"b", true, true, "", 2},
	}
	wantTrail(t, got, want)
	if last := got[len(got)-1]; !last.AfterAmbiguous {
		t.Fatalf("b took the message after a's unknown result, yet AfterAmbiguous is not set: %+v", last)
	}
	wantKeys(t, a, "m1", 2)
	checkAfterAmbiguous(t, e.rec.outcomes())
}

func TestDispatchSendErrorAmbiguity(t *testing.T) {
	// Only an error that says nothing was sent moves the message on at once; every other error,
	// a timeout above all, still makes it wait for the same provider.
	tests := []struct {
		name      string
		first     sendFunc
		code      string
		ambiguous bool
	}{
		{"deadline of the dispatcher", blockUntilDone, CodeProviderTimeout, true},
		{"plugin timeout", fail(&provider.Error{Code: provider.CodeTimeout, Message: "the plugin did not answer in time", Retryable: true}), CodeProviderError, true},
		{"plugin crashed during the call", fail(crashed), CodeProviderError, true},
		{"plugin closed during the call", fail(&provider.Error{Code: provider.CodeClosed, Message: "plugin a is closed"}), CodeProviderError, true},
		{"error that can say so but does not", fail(sentMaybe{}), CodeProviderError, true},
		{"plain error", fail(errors.New("connection reset by peer")), CodeProviderError, true},
		{"plugin restarting", fail(restarting), CodeProviderNotSent, false},
		{"refused as a whole by the plugin", fail(badCredentials), CodeProviderNotSent, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &fakeSender{name: "a", fn: firstThen(tt.first, accept("a"))}
			b := &fakeSender{name: "b"}
			e := setup(t, Config{Timeout: 20 * time.Millisecond}, DispatcherConfig{}, a, b)
			e.enqueue(t, msg("m1"))
			next := brief{"b", true, true, "", 1}
			if tt.ambiguous {
				e.clock.waitTimer(t)
				next = brief{"", false, false, CodeNoProviderAvailable, 1}
			} else {
				e.rec.waitFinal(t, 1)
			}
			got := e.rec.of("m1")
			if want := []brief{{"a", false, false, tt.code, 1}, next}; !slices.Equal(trail(got), want) {
				t.Fatalf("outcomes = %+v, want %+v", trail(got), want)
			}
			checkAfterAmbiguous(t, e.rec.outcomes())
		})
	}
}
