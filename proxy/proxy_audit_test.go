package proxy

import (
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/policies"
	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/policy"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// trailStore is a message store that has an audit trail; only the audit methods are implemented.
type trailStore struct {
	messageStore // nil: the tests here never send
	mu           sync.Mutex
	events       []store.AuditAppend
	head         int64
	checkpoints  []int64
	erased       []string
	erasedBy     []string
}

var _ store.AuditTrail = (*trailStore)(nil)

func (s *trailStore) AppendEvent(_ context.Context, e store.AuditAppend) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	s.head++
	return nil
}

func (s *trailStore) AuditRange(_ context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.AuditRecord
	for seq := q.AfterSeq + 1; seq <= s.head && (q.Limit == 0 || len(out) < q.Limit); seq++ {
		out = append(out, store.AuditRecord{Event: audit.Event{Seq: seq}})
	}
	return out, nil
}

func (s *trailStore) OpenPersonal(context.Context, store.AuditRecord) ([]byte, error) {
	return nil, nil
}
func (s *trailStore) Checkpoints(context.Context) ([]audit.Checkpoint, error) { return nil, nil }

func (s *trailStore) WriteCheckpoint(_ context.Context, now time.Time) (audit.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkpoints = append(s.checkpoints, s.head)
	return audit.Checkpoint{Seq: s.head, At: now}, nil
}

func (s *trailStore) Purge(context.Context, store.PurgePolicy) (store.PurgeResult, error) {
	return store.PurgeResult{}, nil
}

func (s *trailStore) EraseSubject(_ context.Context, e164, by string) (store.EraseResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erased, s.erasedBy = append(s.erased, e164), append(s.erasedBy, by)
	s.head++
	return store.EraseResult{Seq: s.head, Existed: true}, nil
}

func (s *trailStore) VerifyAudit(context.Context, *audit.Keyring) (audit.Report, error) {
	return audit.Report{}, nil
}

func (s *trailStore) RecipientFacts(context.Context, string) (store.RecipientFacts, error) {
	return store.RecipientFacts{}, nil
}

func (s *trailStore) kinds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.events))
	for i, e := range s.events {
		out[i] = e.Kind
	}
	return out
}

func (s *trailStore) last(t *testing.T, v any) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events[len(s.events)-1]
	if err := json.Unmarshal(e.Data, v); err != nil {
		t.Fatal(err)
	}
	return e.Kind
}

// copyPolicies writes the embedded policy bundle into a new directory.
func copyPolicies(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policies.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return err
		}
		b, err := fs.ReadFile(policies.FS, path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// reloadProxy is a proxy with a loaded policy from a directory, the embedded dev region and st as its store.
func reloadProxy(t *testing.T, policiesDir string, st *trailStore) *Proxy {
	t.Helper()
	cfg := config.Default()
	cfg.PoliciesDir = policiesDir
	log := slog.New(slog.DiscardHandler)
	p := &Proxy{cfg: cfg, log: log, now: time.Now, store: st}
	rt, err := p.loadRuntime()
	if err != nil {
		t.Fatal(err)
	}
	p.rt.Store(rt)
	b, err := p.loadBundle(rt.region)
	if err != nil {
		t.Fatal(err)
	}
	prepared, err := policy.Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	p.policy = policy.NewEngine(prepared, log)
	p.facts = newRecipientFacts(st, 0)
	return p
}

func TestReloadIsAudited(t *testing.T) {
	ctx := context.Background()
	dir := copyPolicies(t)
	st := &trailStore{}
	p := reloadProxy(t, dir, st)
	rev0 := p.policy.Revision()

	// Nothing changed: nothing recorded.
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if len(st.kinds()) != 0 {
		t.Fatalf("an unchanged reload recorded %v", st.kinds())
	}

	// A change: old and new revisions.
	if err := os.WriteFile(filepath.Join(dir, "extra.rego"), []byte("package smsproxy_extra\n\nx := 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	var changed policyChangedEvent
	if kind := st.last(t, &changed); kind != store.AuditPolicyChanged || changed.OldRevision != rev0 ||
		changed.NewRevision != p.policy.Revision() || changed.NewRevision == rev0 {
		t.Fatalf("%s %+v (was %s)", kind, changed, rev0)
	}
	rev1 := p.policy.Revision()

	// A bundle that does not compile: refused, with its code, and the running revision kept.
	if err := os.WriteFile(filepath.Join(dir, "extra.rego"), []byte("package smsproxy_extra\n\nx := {{\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(ctx); err == nil {
		t.Fatal("a broken bundle was accepted")
	}
	var refused policyRefusedEvent
	if kind := st.last(t, &refused); kind != store.AuditPolicyRefused || refused.Revision != rev1 || refused.Code == "" ||
		refused.Code == "reload_failed" || refused.What != "policy" {
		t.Fatalf("%s %+v", kind, refused)
	}
	if p.policy.Revision() != rev1 {
		t.Fatal("the refused bundle replaced the running one")
	}

	// Region data that does not load: refused too.
	p.cfg.RegionsDir = t.TempDir()
	if err := p.Reload(ctx); err == nil {
		t.Fatal("missing region data was accepted")
	}
	if kind := st.last(t, &refused); kind != store.AuditPolicyRefused || refused.What != "region_data" || refused.Code == "" {
		t.Fatalf("%s %+v", kind, refused)
	}
	if got := st.kinds(); len(got) != 3 {
		t.Fatalf("events %v", got)
	}
}

func TestConfigSummaryIsMasked(t *testing.T) {
	t.Setenv("SMSPROXY_TEST_APP_KEY", "a-secret-api-key-0123456789")
	cfg, err := config.Parse([]byte("apps: [{name: pay, key: {env: SMSPROXY_TEST_APP_KEY}}, {name: ops, admin: true, key_sha256: " + strings.Repeat("c", 64) + "}]\n" +
		"audit: {retention: {default: 500d, per_category: {otp: 365d}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	st := &trailStore{}
	p := reloadProxy(t, copyPolicies(t), st)
	p.cfg = cfg
	kr, _ := audit.GenerateKeyring("dev", time.Now())
	p.keys = kr
	ev := p.configSummary(p.runtime().region)
	b, _ := json.Marshal(ev)
	for _, leak := range []string{"a-secret-api-key", strings.Repeat("c", 64), cfg.Apps[0].KeySHA256} {
		if strings.Contains(string(b), leak) {
			t.Fatalf("the summary holds %q: %s", leak, b)
		}
	}
	if ev.Region != "dev" || strings.Join(ev.Apps, ",") != "ops,pay" || strings.Join(ev.AdminApps, ",") != "ops" ||
		ev.PolicyRevision != p.policy.Revision() || ev.SigningKey != kr.SigningKeyID() || !ev.DevKeyring ||
		// The dev region's data holds a retention, which wins over the config's.
		ev.Retention["default"] != "400d" || ev.Retention["transaction"] != "2555d" || ev.RetentionFrom != "region" {
		t.Fatalf("summary %s", b)
	}
}

func TestPurgePolicyFor(t *testing.T) {
	const day = 24 * time.Hour
	cfg := config.Default()
	cfg.Audit.Retention.PerCategory = map[string]config.Duration{"otp": config.Duration(365 * day)}
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		region  map[string]any
		def     time.Duration
		otp     time.Duration
		src     string
		wantErr bool
	}{
		{"config", nil, 400 * day, 365 * day, "config", false},
		{"region default wins", map[string]any{"retention": map[string]any{"default": "730d"}}, 730 * day, 365 * day, "region", false},
		{"region per category replaces the config's", map[string]any{"retention": map[string]any{"per_category": map[string]any{"otp": "500d"}}}, 400 * day, 500 * day, "region", false},
		{"region below a year", map[string]any{"retention": map[string]any{"default": "30d"}}, 0, 0, "region", true},
		{"region category below a year", map[string]any{"retention": map[string]any{"per_category": map[string]any{"otp": "364d"}}}, 0, 0, "region", true},
		{"region unknown category", map[string]any{"retention": map[string]any{"per_category": map[string]any{"promo": "400d"}}}, 0, 0, "region", true},
		{"region not a map", map[string]any{"retention": "forever"}, 0, 0, "region", true},
		{"region number", map[string]any{"retention": map[string]any{"default": 400}}, 0, 0, "region", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pp, src, err := PurgePolicyFor(&cfg, c.region, now)
			if src != c.src || (err != nil) != c.wantErr {
				t.Fatalf("src %q err %v", src, err)
			}
			if err != nil {
				if audit.CodeOf(err) != CodeRetentionInvalid {
					t.Fatalf("code %q", audit.CodeOf(err))
				}
				return
			}
			if pp.Default != c.def || pp.PerCategory["otp"] != c.otp || !pp.Now.Equal(now) {
				t.Fatalf("%+v", pp)
			}
		})
	}
}

func TestLoadAuditKeyring(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	if _, err := LoadAuditKeyring(&cfg, log, false); audit.CodeOf(err) != audit.CodeKeyringUnreadable {
		t.Fatalf("no dev keyring and create=false: %v", err)
	}
	kr, err := LoadAuditKeyring(&cfg, log, true)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, config.DevKeyringFile)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("dev keyring file: %v %v", st, err)
	}
	if !strings.Contains(logs.String(), "AUDIT KEYRING GENERATED FOR DEVELOPMENT") {
		t.Fatalf("no loud warning: %s", logs.String())
	}
	again, err := LoadAuditKeyring(&cfg, log, true)
	if err != nil || again.LookupHash("+6591234567") != kr.LookupHash("+6591234567") {
		t.Fatalf("a second start must reuse the dev keyring: %v", err)
	}
	raw, _ := os.ReadFile(path)
	var f struct {
		LookupKey string `json:"lookup_key"`
	}
	_ = json.Unmarshal(raw, &f)
	if f.LookupKey == "" || strings.Contains(logs.String(), f.LookupKey) {
		t.Fatal("the log holds key material")
	}

	// A configured reference is used as is, and must be the region's.
	t.Setenv("SMSPROXY_TEST_AUDIT_KEYS", string(raw))
	cfg.Audit.Keyring = "env:SMSPROXY_TEST_AUDIT_KEYS"
	if got, err := LoadAuditKeyring(&cfg, log, true); err != nil || got.LookupHash("x") != kr.LookupHash("x") {
		t.Fatalf("env keyring: %v", err)
	}
	cfg.Region = "sg"
	if _, err := LoadAuditKeyring(&cfg, log, true); audit.CodeOf(err) != CodeKeyringRegion {
		t.Fatalf("keyring of another region: %v", err)
	}
}

func TestEraseSubject(t *testing.T) {
	ctx := context.Background()
	st := &trailStore{}
	p := &Proxy{cfg: config.Default(), log: slog.New(slog.DiscardHandler), now: time.Now, store: st,
		admins: map[string]bool{"ops": true}}
	p.facts = newRecipientFacts(st, 0)
	if _, err := p.EraseSubject(ctx, "dev", "+6591234567", "dpo"); err == nil || err.(*Error).Class != "forbidden" {
		t.Fatalf("non-admin: %v", err)
	}
	if _, err := p.EraseSubject(ctx, "ops", "91234567", "dpo"); err == nil || err.(*Error).Code != "invalid_phone" || strings.Contains(err.Error(), "91234567") {
		t.Fatalf("national number: %v", err)
	}
	res, err := p.EraseSubject(ctx, "ops", " +65 9123 4567 ", "dpo@example.com")
	if err != nil || res.Seq != 1 {
		t.Fatalf("erase: %+v %v", res, err)
	}
	if st.erased[0] != "+6591234567" || st.erasedBy[0] != "dpo@example.com (app ops)" {
		t.Fatalf("store got %q %q", st.erased, st.erasedBy)
	}
}
