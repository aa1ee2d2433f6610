package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/policy"
)

// decisionRego returns a bundle whose decision refuses the countries given with code
// country_not_served and allows every other message.
func decisionRego(refused ...string) string {
	list, _ := json.Marshal(refused)
	return `package smsproxy

refused := ` + string(list) + `

reasons := [r |
	input.message.country in refused
	r := {"code": "country_not_served", "message": "Not served.", "rule": "smsproxy.test"}
]

decision := {"allow": count(reasons) == 0, "reasons": reasons, "limits": [], "route": {"providers": []}, "masks": [], "obligations": []}

test_a_served_country_is_allowed if {
	decision.allow with input as {"message": {"country": "ZZ"}}
}
`
}

func compileRego(t *testing.T, src string) *policy.Prepared {
	t.Helper()
	b, err := policy.NewBundle(map[string]string{"decision.rego": src}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a log sink safe for the shadow worker and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func shadowInput(to, country string) *policy.Input {
	return &policy.Input{App: "pay", Facts: policy.Facts{TimeZone: "Asia/Singapore"}, Message: policy.MessageInput{
		To: to, Country: country, Category: "transaction", SenderKind: "alphanumeric", From: "PAYLINK88",
		Body: "Your code is 739215",
	}}
}

func TestShadowCountsDisagreements(t *testing.T) {
	live := compileRego(t, decisionRego())
	logs := &syncBuffer{}
	s := newShadow(slog.New(slog.NewJSONHandler(logs, nil)), 64)
	s.swap(compileRego(t, decisionRego("SG")))

	inputs := []*policy.Input{
		shadowInput("+6591234567", "SG"), shadowInput("+14155550123", "US"),
		shadowInput("+6598765432", "SG"), shadowInput("+447911123456", "GB"),
	}
	for _, in := range inputs {
		dec, err := live.Decide(context.Background(), in)
		if err != nil || !dec.Allow {
			t.Fatalf("live decision = %+v, %v", dec, err)
		}
		s.observe(in, &dec)
		if !dec.Allow {
			t.Fatal("observing changed the live decision")
		}
	}
	s.close()
	st := s.stats()
	if st.Agreements != 2 || st.Disagreements != 2 || st.Dropped != 0 || st.Errors != 0 || st.Revision == "" {
		t.Fatalf("stats = %+v, want 2 agreements and 2 disagreements", st)
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"shadow policy disagrees"`); n != 2 {
		t.Fatalf("%d disagreement lines, want 2:\n%s", n, out)
	}
	for _, want := range []string{`"country":"SG"`, `"live_allow":true`, `"candidate_allow":false`,
		`"candidate_codes":["country_not_served"]`, `"live_codes":[]`, `"live_revision":"` + live.Revision() + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the disagreement log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"91234567", "98765432", "739215"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the shadow log holds personal data (%s):\n%s", secret, out)
		}
	}
}

func TestShadowDropsWhenFull(t *testing.T) {
	live := compileRego(t, decisionRego())
	// A shadow whose worker has not started yet: its queue of 2 fills and the rest is dropped.
	s := &shadow{log: slog.New(slog.DiscardHandler), jobs: make(chan shadowJob, 2), done: make(chan struct{})}
	s.swap(compileRego(t, decisionRego()))
	in := shadowInput("+6591234567", "SG")
	dec, _ := live.Decide(context.Background(), in)
	for range 5 {
		s.observe(in, &dec) // never blocks
	}
	go s.run()
	s.close()
	if st := s.stats(); st.Dropped != 3 || st.Agreements != 2 {
		t.Fatalf("stats = %+v, want 3 dropped and 2 compared", st)
	}
	s.observe(in, &dec) // after close: ignored, no panic
}

func TestShadowOffIsFree(t *testing.T) {
	var s *shadow
	dec := policy.Decision{Allow: true, Revision: "r"}
	s.observe(shadowInput("+6591234567", "SG"), &dec)
	s.close()
	if st := s.stats(); st != (ShadowStats{}) {
		t.Fatalf("stats of no shadow = %+v", st)
	}
	// Without a candidate loaded, nothing is queued.
	on := newShadow(slog.New(slog.DiscardHandler), 4)
	on.observe(shadowInput("+6591234567", "SG"), &dec)
	on.close()
	if st := on.stats(); st.Agreements+st.Disagreements+st.Dropped != 0 {
		t.Fatalf("a shadow without a candidate compared %+v", st)
	}
}

func TestReloadShadowKeepsTheLastGoodCandidate(t *testing.T) {
	dir := t.TempDir()
	write := func(src string) {
		if err := os.WriteFile(filepath.Join(dir, "decision.rego"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(decisionRego("SG"))
	cfg := config.Default()
	cfg.ShadowPoliciesDir = dir
	p := &Proxy{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	p.shadow = newShadow(p.log, 4)
	defer p.shadow.close()
	region := &config.Region{Data: map[string]any{}}
	p.reloadShadow(context.Background(), region)
	first := p.ShadowStats().Revision
	if first == "" {
		t.Fatal("the candidate did not load")
	}
	write("package smsproxy\n\ndecision := {") // does not parse
	p.reloadShadow(context.Background(), region)
	if got := p.ShadowStats().Revision; got != first {
		t.Fatalf("a broken candidate replaced the good one: %q, want %q", got, first)
	}
	write(decisionRego("US"))
	p.reloadShadow(context.Background(), region)
	if got := p.ShadowStats().Revision; got == first || got == "" {
		t.Fatalf("a good new candidate was not swapped in: %q", got)
	}
}

func TestCheckCompilesTheShadowBundle(t *testing.T) {
	live, cand := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(live, "decision.rego"), []byte(decisionRego()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.PoliciesDir, cfg.ShadowPoliciesDir = live, cand
	if err := Check(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "shadow_policies_dir") {
		t.Fatalf("Check with an empty candidate directory = %v, want a shadow_policies_dir error", err)
	}
	if err := os.WriteFile(filepath.Join(cand, "decision.rego"), []byte(decisionRego("SG")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(context.Background(), cfg); err != nil {
		t.Fatalf("Check with a good candidate = %v", err)
	}
}

// TestCheckRefusesAnUntestedLiveBundle: the bundle that decides must carry at least one passing
// Rego test, at start-up and in config check as on reload.
func TestCheckRefusesAnUntestedLiveBundle(t *testing.T) {
	live := t.TempDir()
	src := strings.Replace(decisionRego(), "test_a_served_country_is_allowed", "todo_test_a_served_country_is_allowed", 1)
	if err := os.WriteFile(filepath.Join(live, "decision.rego"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.PoliciesDir = live
	if err := Check(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), policy.CodeNoTests) {
		t.Fatalf("Check with a bundle without tests = %v, want %s", err, policy.CodeNoTests)
	}
}
