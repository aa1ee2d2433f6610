package route

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	a := &fakeSender{name: "a"}
	tests := []struct {
		name string
		cfg  Config
		code string
	}{
		{"ok", Config{Providers: map[string]Sender{"a": a}, Countries: map[string][]string{"SG": {"a"}}}, ""},
		{"no providers", Config{}, CodeInvalidConfig},
		{"nil sender", Config{Providers: map[string]Sender{"a": nil}}, CodeInvalidConfig},
		{"empty name", Config{Providers: map[string]Sender{"": a}}, CodeInvalidConfig},
		{"unknown provider in country", Config{Providers: map[string]Sender{"a": a}, Countries: map[string][]string{"SG": {"a", "b"}}}, CodeUnknownProvider},
		{"negative timeout", Config{Providers: map[string]Sender{"a": a}, Timeout: -1}, CodeInvalidConfig},
		{"negative failures", Config{Providers: map[string]Sender{"a": a}, Breaker: BreakerConfig{ConsecutiveFailures: -1}}, CodeInvalidConfig},
		{"negative open time", Config{Providers: map[string]Sender{"a": a}, Breaker: BreakerConfig{OpenFor: -time.Second}}, CodeInvalidConfig},
		{"negative max batch", Config{Providers: map[string]Sender{"a": a}, MaxBatch: map[string]int{"a": -1}}, CodeInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("New() = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("New() = %v, want code %s", err, tt.code)
			}
		})
	}
}

func TestDispatcherConfigValidate(t *testing.T) {
	r, err := New(Config{Providers: map[string]Sender{"a": &fakeSender{}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	tests := []struct {
		name string
		cfg  DispatcherConfig
	}{
		{"no recorder", DispatcherConfig{}},
		{"negative queue", DispatcherConfig{Recorder: rec, QueueSize: -1}},
		{"negative backoff", DispatcherConfig{Recorder: rec, MinBackoff: -1}},
		{"negative max ambiguous", DispatcherConfig{Recorder: rec, MaxAmbiguous: -1}},
		{"min above max", DispatcherConfig{Recorder: rec, MinBackoff: time.Minute, MaxBackoff: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDispatcher(r, tt.cfg)
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidConfig {
				t.Fatalf("NewDispatcher() = %v, want code %s", err, CodeInvalidConfig)
			}
		})
	}
	if _, err := NewDispatcher(nil, DispatcherConfig{Recorder: rec}); err == nil {
		t.Fatal("NewDispatcher(nil router) succeeded")
	}
}

func TestCandidates(t *testing.T) {
	s := &fakeSender{}
	r, err := New(Config{
		Providers: map[string]Sender{"twilio": s, "vonage": s, "smpp": s},
		Countries: map[string][]string{
			"sg": {"smpp", "twilio", "smpp"}, // lower case and a duplicate: both normalised
			"US": {"twilio"},
			"*":  {"vonage"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		country string
		route   []string
		want    []string
	}{
		{"country default", "SG", nil, []string{"smpp", "twilio"}},
		{"other country", "US", nil, []string{"twilio"}},
		{"lower-case country", "us", nil, []string{"twilio"}},
		{"fallback order", "GB", nil, []string{"vonage"}},
		{"decision route wins", "SG", []string{"vonage", "twilio"}, []string{"vonage", "twilio"}},
		{"decision narrows", "SG", []string{"twilio"}, []string{"twilio"}},
		{"unknown names skipped", "SG", []string{"nope", "twilio", "twilio"}, []string{"twilio"}},
		{"all unknown falls back", "US", []string{"nope"}, []string{"twilio"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Candidates(tt.country, tt.route); !slices.Equal(got, tt.want) {
				t.Fatalf("Candidates(%q, %q) = %q, want %q", tt.country, tt.route, got, tt.want)
			}
		})
	}

	none, err := New(Config{Providers: map[string]Sender{"a": s}, Countries: map[string][]string{"SG": {"a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := none.Candidates("GB", nil); got != nil {
		t.Fatalf("no order for GB and no fallback: got %q, want nil", got)
	}
}

func TestBreaker(t *testing.T) {
	clock := newFakeClock()
	b := newBreaker("a", BreakerConfig{ConsecutiveFailures: 3, OpenFor: time.Minute}, clock, slog.New(slog.DiscardHandler))
	fail := func() {
		t.Helper()
		gen, ok := b.allow()
		if !ok {
			t.Fatal("allow() refused while closed")
		}
		b.done(gen, false)
	}

	fail()
	fail()
	if gen, ok := b.allow(); !ok {
		t.Fatal("opened before 3 failures")
	} else {
		b.done(gen, true) // a success resets the count
	}
	fail()
	fail()
	if b.state() != StateClosed {
		t.Fatalf("state = %s after 2 failures following a success, want closed", b.state())
	}
	fail()
	if b.state() != StateOpen || b.ready() {
		t.Fatalf("state = %s, ready = %v after 3 failures, want open and not ready", b.state(), b.ready())
	}
	if _, ok := b.allow(); ok {
		t.Fatal("open breaker allowed a send")
	}

	clock.Advance(time.Minute - time.Nanosecond)
	if b.ready() {
		t.Fatal("ready before OpenFor passed")
	}
	clock.Advance(time.Nanosecond)
	if !b.ready() || b.state() != StateHalfOpen {
		t.Fatalf("after OpenFor: ready = %v, state = %s, want ready and half_open", b.ready(), b.state())
	}
	probe, ok := b.allow()
	if !ok {
		t.Fatal("half-open breaker refused the probe")
	}
	if _, ok := b.allow(); ok || b.ready() {
		t.Fatal("half-open breaker let a second send through while probing")
	}
	b.done(probe, false)
	if b.state() != StateOpen {
		t.Fatalf("failed probe: state = %s, want open", b.state())
	}

	clock.Advance(time.Minute)
	probe, ok = b.allow()
	if !ok {
		t.Fatal("refused the second probe")
	}
	b.done(probe, true)
	if b.state() != StateClosed {
		t.Fatalf("successful probe: state = %s, want closed", b.state())
	}

	// A send that started before the breaker changed state does not count.
	old, _ := b.allow()
	fail()
	fail()
	fail()
	clock.Advance(time.Minute)
	probe, _ = b.allow()
	b.done(old, true)
	if b.state() != StateHalfOpen {
		t.Fatalf("stale success changed the state to %s", b.state())
	}
	b.done(probe, true)
	if b.state() != StateClosed {
		t.Fatalf("state = %s, want closed", b.state())
	}
}

func TestStateString(t *testing.T) {
	for st, want := range map[State]string{StateClosed: "closed", StateOpen: "open", StateHalfOpen: "half_open", State(9): "unknown"} {
		if got := st.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(st), got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	const minD, maxD = time.Second, 5 * time.Minute
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 1, time.Second},
		{1, 0, 500 * time.Millisecond},
		{2, 1, 2 * time.Second},
		{3, 0.5, 3 * time.Second}, // 4s: 2s fixed + half of 2s
		{9, 1, 256 * time.Second},
		{10, 1, 5 * time.Minute}, // 512s capped
		{10, 0, 150 * time.Second},
		{62, 1, 5 * time.Minute}, // would overflow
		{1000, 1, 5 * time.Minute},
		{0, 1, 5 * time.Minute}, // nonsense attempt: the safe long delay
	}
	for _, tt := range tests {
		if got := backoff(tt.attempt, minD, maxD, tt.r); got != tt.want {
			t.Errorf("backoff(%d, r=%v) = %s, want %s", tt.attempt, tt.r, got, tt.want)
		}
	}
}
