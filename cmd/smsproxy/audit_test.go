package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// memTrail is an in-memory store.AuditTrail built on package audit's chain, sealer and verifier, so
// that the commands are tested against real cryptography without a database.
type memTrail struct {
	mu     sync.Mutex
	kr     *audit.Keyring
	chain  *audit.Chain
	keys   *audit.MemSubjectKeys
	sealer *audit.Sealer
	recs   []store.AuditRecord
	cps    []audit.Checkpoint
	closed bool
}

var _ store.AuditTrail = (*memTrail)(nil)

func newMemTrail(t *testing.T, kr *audit.Keyring) *memTrail {
	t.Helper()
	keys := audit.NewMemSubjectKeys()
	s, err := audit.NewSealer(kr, keys, audit.SealerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &memTrail{kr: kr, chain: audit.NewChain(kr.Region(), audit.Head{}), keys: keys, sealer: s}
}

func (m *memTrail) append(ctx context.Context, kind, msgID, app string, data []byte, e164 string, personal []byte, at time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := audit.Event{Seq: m.chain.Next(), At: at, Kind: kind, MessageID: msgID, App: app, Data: data}
	keyID := ""
	if personal != nil {
		ref := m.kr.LookupHash(e164)
		k, err := m.sealer.Key(ctx, ref)
		if err != nil {
			return 0, err
		}
		if e.Sealed, err = k.Seal(personal, audit.SealAAD(e.Seq, e.Kind, e.MessageID)); err != nil {
			return 0, err
		}
		e.SubjectRef = ref
		keyID = m.keys.KeyID(ref)
	}
	m.chain.Link(&e)
	m.recs = append(m.recs, store.AuditRecord{Event: e, KeyID: keyID})
	return e.Seq, nil
}

func (m *memTrail) AppendEvent(ctx context.Context, e store.AuditAppend) error {
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	_, err := m.append(ctx, e.Kind, "", e.App, e.Data, "", nil, at)
	return err
}

func (m *memTrail) AuditRange(_ context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	ref := ""
	if q.Recipient != "" {
		ref = m.kr.LookupHash(q.Recipient)
	}
	var out []store.AuditRecord
	for _, r := range m.recs {
		switch {
		case r.Seq <= q.AfterSeq,
			!q.From.IsZero() && r.At.Before(q.From),
			!q.To.IsZero() && !r.At.Before(q.To),
			ref != "" && r.SubjectRef != ref,
			q.MessageID != "" && r.MessageID != q.MessageID:
			continue
		}
		out = append(out, r)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func (m *memTrail) OpenPersonal(ctx context.Context, r store.AuditRecord) ([]byte, error) {
	return m.sealer.Open(ctx, r.SubjectRef, r.Sealed, audit.SealAAD(r.Seq, r.Kind, r.MessageID))
}

func (m *memTrail) Checkpoints(context.Context) ([]audit.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Checkpoint(nil), m.cps...), nil
}

func (m *memTrail) WriteCheckpoint(_ context.Context, now time.Time) (audit.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp, err := m.kr.Checkpoint(m.chain.Head(), audit.Anchor{}, now)
	if err == nil {
		m.cps = append(m.cps, cp)
	}
	return cp, err
}

func (m *memTrail) Purge(context.Context, store.PurgePolicy) (store.PurgeResult, error) {
	return store.PurgeResult{}, nil
}

func (m *memTrail) EraseSubject(ctx context.Context, e164, by string) (store.EraseResult, error) {
	ref := m.kr.LookupHash(e164)
	existed := m.keys.KeyID(ref) != ""
	if err := m.sealer.Erase(ctx, ref); err != nil {
		return store.EraseResult{}, err
	}
	data, _ := json.Marshal(map[string]string{"requested_by": by})
	m.mu.Lock()
	e := audit.Event{Seq: m.chain.Next(), At: time.Now(), Kind: store.AuditSubjectErased, Data: data, SubjectRef: ref}
	m.chain.Link(&e)
	m.recs = append(m.recs, store.AuditRecord{Event: e})
	m.mu.Unlock()
	return store.EraseResult{Seq: e.Seq, Existed: existed}, nil
}

func (m *memTrail) VerifyAudit(_ context.Context, kr *audit.Keyring) (audit.Report, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, err := audit.NewVerifier(audit.VerifyOptions{Region: kr.Region(), Keys: kr.PublicKeys(), Checkpoints: m.cps})
	if err != nil {
		return audit.Report{}, err
	}
	for i := range m.recs {
		e := m.recs[i].Event
		if v.Add(&e) != nil {
			break
		}
	}
	return v.Finish(), nil
}

func (m *memTrail) Close() error { m.closed = true; return nil }

// auditFixture is a config whose store is a memTrail holding two messages to one recipient, one
// refused message to another and a policy change; the keyring is in a file.
type auditFixture struct {
	trail   *memTrail
	cfgPath string
	keyRef  string
	dir     string
}

const (
	fixNumber = "+6591230001"
	fixOther  = "+6591230002"
	fixCode   = "884213"
)

var march = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	dir := t.TempDir()
	kr, err := audit.GenerateKeyring("sg", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "keys.json")
	data, _ := kr.Export()
	if err := os.WriteFile(keyPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "smsproxy.yaml")
	if err := os.WriteFile(cfgPath, []byte("region: sg\ndata_dir: "+dir+"\naudit: {keyring: 'file:"+keyPath+"'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newMemTrail(t, kr)
	ctx := context.Background()
	mustAppend := func(kind, id string, data string, e164, body string, at time.Time) {
		t.Helper()
		var personal []byte
		if e164 != "" {
			personal, _ = json.Marshal(map[string]string{"to": e164, "body": body})
		}
		if _, err := m.append(ctx, kind, id, "payments", []byte(data), e164, personal, at); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend("config.loaded", "", `{"region":"sg","apps":["payments"]}`, "", "", march.AddDate(0, -1, 0))
	mustAppend(store.AuditAccepted, "msg_a", `{"to":"+65******01","country":"SG","from":"PAYLINK88","category":"otp","segments":1,"encoding":"GSM-7","policy_revision":"rev1"}`,
		fixNumber, "Your code is "+fixCode, march)
	mustAppend(store.AuditSent, "msg_a", `{"provider":"simulator","provider_message_id":"sim-1"}`, "", "", march.Add(time.Second))
	mustAppend(store.AuditDelivered, "msg_a", `{"provider":"simulator"}`, "", "", march.Add(2*time.Second))
	mustAppend(store.AuditRefused, "msg_b", `{"to":"+65******01","country":"SG","from":"SPAMMY","category":"marketing","segments":1,"encoding":"GSM-7","policy_revision":"rev1","reasons":[{"code":"sender_not_registered","message":"The sender is not registered.","rule":"smsproxy.sg.ssir"}]}`,
		fixNumber, "Buy now", march.Add(time.Hour))
	mustAppend(store.AuditAccepted, "msg_c", `{"to":"+65******02","country":"SG","category":"transaction","policy_revision":"rev1"}`, fixOther, "Transfer done", march.Add(2*time.Hour))
	mustAppend(store.AuditAccepted, "msg_d", `{"to":"+65******01","country":"SG","category":"transaction","policy_revision":"rev2"}`, fixNumber, "April news", march.AddDate(0, 1, 0))
	if _, err := m.WriteCheckpoint(ctx, march.AddDate(0, 1, 1)); err != nil {
		t.Fatal(err)
	}
	old := openAuditStore
	openAuditStore = func(_ context.Context, cfg *config.Config, got *audit.Keyring, _ *slog.Logger) (auditStore, error) {
		if got.Region() != cfg.Region {
			t.Errorf("opened with a keyring of region %s", got.Region())
		}
		return m, nil
	}
	t.Cleanup(func() { openAuditStore = old })
	return &auditFixture{trail: m, cfgPath: cfgPath, keyRef: "file:" + keyPath, dir: dir}
}

func TestAuditVerify(t *testing.T) {
	f := newAuditFixture(t)
	code, out, errs := runCmd("audit", "verify", "-config", f.cfgPath)
	if code != 0 || !strings.HasPrefix(out, "ok: 7 records (seq 1-7), 1 checkpoints (1 matched") {
		t.Fatalf("good trail: %d %q %q", code, out, errs)
	}
	// Someone edits the decision of the refused message.
	f.trail.recs[4].Data = []byte(`{"reasons":[]}`)
	code, out, _ = runCmd("audit", "verify", "-config", f.cfgPath)
	if code != 1 || !strings.Contains(out, "FAILED: first bad record seq 5: hash_mismatch") {
		t.Fatalf("tampered trail: %d %q", code, out)
	}
	if !f.trail.closed {
		t.Fatal("the store was not closed")
	}
}

func TestAuditVerifyNeedsTheRightKeyring(t *testing.T) {
	f := newAuditFixture(t)
	other, _ := audit.GenerateKeyring("eu", time.Now())
	data, _ := other.Export()
	path := filepath.Join(f.dir, "eu.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCmd("audit", "verify", "-config", f.cfgPath, "-keyring", "file:"+path)
	if code != 2 || !strings.Contains(errs, "keyring_region_mismatch") {
		t.Fatalf("keyring of another region: %d %q", code, errs)
	}
	code, _, errs = runCmd("audit", "verify", "-config", f.cfgPath, "-keyring", "file:"+filepath.Join(f.dir, "missing.json"))
	if code != 2 || !strings.Contains(errs, "keyring_unreadable") {
		t.Fatalf("missing keyring: %d %q", code, errs)
	}
	if code, _, _ := runCmd("audit", "verify", "extra"); code != 2 {
		t.Fatalf("stray argument: %d", code)
	}
	if code, _, _ := runCmd("audit", "frobnicate"); code != 2 {
		t.Fatalf("unknown command: %d", code)
	}
}

func exportLines(t *testing.T, out string) []exportRecord {
	t.Helper()
	var recs []exportRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r exportRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestAuditExport(t *testing.T) {
	f := newAuditFixture(t)
	auditPageSize = 2 // page through the trail
	t.Cleanup(func() { auditPageSize = 1000 })

	code, out, errs := runCmd("audit", "export", "-config", f.cfgPath, "-from", "2026-03-01", "-to", "2026-04-01")
	if code != 0 {
		t.Fatalf("export: %d %s", code, errs)
	}
	recs := exportLines(t, out)
	if len(recs) != 5 || recs[0].Seq != 2 || recs[4].Seq != 6 {
		t.Fatalf("March: %d records %+v", len(recs), recs)
	}
	if strings.Contains(out, fixNumber) || strings.Contains(out, fixCode) || strings.Contains(out, "personal") {
		t.Fatalf("a masked export holds personal data:\n%s", out)
	}
	if recs[0].Hash == "" || recs[0].PrevHash == "" || len(recs[0].Sealed) == 0 || recs[0].SubjectRef == "" {
		t.Fatalf("an export line lacks the chained fields: %+v", recs[0])
	}

	// Decrypting needs -decrypt and an explicit keyring.
	if code, _, errs := runCmd("audit", "export", "-config", f.cfgPath, "-decrypt"); code != 2 || !strings.Contains(errs, "-decrypt needs an explicit -keyring") {
		t.Fatalf("-decrypt without -keyring: %d %q", code, errs)
	}
	outFile := filepath.Join(f.dir, "export.jsonl")
	code, _, errs = runCmd("audit", "export", "-config", f.cfgPath, "-recipient", fixNumber, "-to", "2026-04-01",
		"-decrypt", "-keyring", f.keyRef, "-o", outFile)
	if code != 0 || !strings.Contains(errs, "exported 2 records (2 with decrypted personal fields, 0 erased)") {
		t.Fatalf("decrypting export: %d %q", code, errs)
	}
	st, err := os.Stat(outFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", st, err)
	}
	raw, _ := os.ReadFile(outFile)
	recs = exportLines(t, string(raw))
	var p struct{ To, Body string }
	if err := json.Unmarshal(recs[0].Personal, &p); err != nil || p.To != fixNumber || p.Body != "Your code is "+fixCode {
		t.Fatalf("decrypted personal fields: %s %v", recs[0].Personal, err)
	}
	if recs[1].MessageID != "msg_b" {
		t.Fatalf("recipient filter: %+v", recs)
	}

	// After an erasure the personal fields no longer open, and the export says why.
	if code, out, errs := runCmd("audit", "erase", "-config", f.cfgPath, "-recipient", fixNumber, "-by", "dpo@example.com"); code != 0 ||
		!strings.Contains(out, "audit event seq 8") || strings.Contains(out, fixNumber) {
		t.Fatalf("erase: %d %q %q", code, out, errs)
	}
	code, out, errs = runCmd("audit", "export", "-config", f.cfgPath, "-decrypt", "-keyring", f.keyRef)
	if code != 0 || !strings.Contains(errs, "exported 8 records (1 with decrypted personal fields, 3 erased)") {
		t.Fatalf("export after erasure: %d %q", code, errs)
	}
	recs = exportLines(t, out)
	if recs[1].PersonalError != audit.CodeSubjectErased || recs[1].Personal != nil {
		t.Fatalf("erased record: %+v", recs[1])
	}
	if last := recs[7]; last.Kind != store.AuditSubjectErased || !strings.Contains(string(last.Data), "dpo@example.com") {
		t.Fatalf("erasure event: %+v", last)
	}
	if code, out, _ := runCmd("audit", "verify", "-config", f.cfgPath); code != 0 {
		t.Fatalf("the chain no longer verifies after an erasure: %q", out)
	}
}

func TestAuditExportBadFlags(t *testing.T) {
	f := newAuditFixture(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-from", "March"}, "-from must be a date"},
		{[]string{"-from", "2026-04-01", "-to", "2026-03-01"}, "-from must be before -to"},
		{[]string{"-recipient", "12345"}, "-recipient is not a valid E.164"},
	}
	for _, c := range cases {
		code, _, errs := runCmd(append([]string{"audit", "export", "-config", f.cfgPath}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: %d %q, want %q", c.args, code, errs, c.want)
		}
		if strings.Contains(errs, "12345") {
			t.Errorf("%v: the error repeats the number", c.args)
		}
	}
}

func TestAuditSearch(t *testing.T) {
	f := newAuditFixture(t)
	if code, _, errs := runCmd("audit", "search", "-config", f.cfgPath); code != 2 || !strings.Contains(errs, "-recipient is required") {
		t.Fatalf("no recipient: %d %q", code, errs)
	}
	code, out, errs := runCmd("audit", "search", "-config", f.cfgPath, "-recipient", fixNumber, "-from", "2026-03-01", "-to", "2026-04-01")
	if code != 0 {
		t.Fatalf("search: %d %q", code, errs)
	}
	for _, want := range []string{
		"Recipient +65******01, 2026-03-01T00:00:00Z to 2026-04-01T00:00:00Z: 2 messages",
		"msg_a  app payments",
		"accepted  otp from PAYLINK88 to +65******01 (SG), 1 segment(s) GSM-7",
		"decision: allowed by policy revision rev1",
		"sent  provider=simulator  provider_message_id=sim-1",
		"delivered  provider=simulator",
		"msg_b  app payments",
		"decision: refused by policy revision rev1",
		"reason: sender_not_registered: The sender is not registered. [smsproxy.sg.ssir]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("search output lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"msg_c", "msg_d", fixNumber, fixCode} {
		if strings.Contains(out, not) {
			t.Errorf("search output holds %q:\n%s", not, out)
		}
	}
	// The erasure shows among the recipient's other events.
	if code, _, _ := runCmd("audit", "erase", "-config", f.cfgPath, "-recipient", fixNumber, "-by", "dpo"); code != 0 {
		t.Fatal("erase failed")
	}
	_, out, _ = runCmd("audit", "search", "-config", f.cfgPath, "-recipient", fixNumber)
	if !strings.Contains(out, "3 messages, 1 other events") || !strings.Contains(out, "subject.erased") {
		t.Fatalf("search after erasure:\n%s", out)
	}
}

func TestAuditEraseFlags(t *testing.T) {
	f := newAuditFixture(t)
	if code, _, errs := runCmd("audit", "erase", "-config", f.cfgPath, "-recipient", fixNumber); code != 2 || !strings.Contains(errs, "-by must name") {
		t.Fatalf("no -by: %d %q", code, errs)
	}
	if code, _, errs := runCmd("audit", "erase", "-config", f.cfgPath, "-recipient", "x", "-by", "dpo"); code != 2 || !strings.Contains(errs, "-recipient must be") {
		t.Fatalf("bad number: %d %q", code, errs)
	}
	code, out, _ := runCmd("audit", "erase", "-config", f.cfgPath, "-recipient", "+6591239999", "-by", "dpo")
	if code != 0 || !strings.Contains(out, "nothing had been sealed") {
		t.Fatalf("unknown subject: %d %q", code, out)
	}
}

func TestAuditKeygen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	code, out, errs := runCmd("audit", "keygen", "-o", path, "-region", "sg")
	if code != 0 || !strings.Contains(out, "wrote the sg keyring") {
		t.Fatalf("keygen: %d %q %q", code, out, errs)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file: %v %v", st, err)
	}
	kr, err := audit.LoadKeyring("file:" + path)
	if err != nil || kr.Region() != "sg" {
		t.Fatalf("load: %v", err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(out, string(raw[strings.Index(string(raw), `"seed": "`)+9:][:20])) {
		t.Fatal("keygen printed key material")
	}
	if code, _, errs := runCmd("audit", "keygen", "-o", path, "-region", "sg"); code != 1 || !strings.Contains(errs, "never overwritten") {
		t.Fatalf("overwrite: %d %q", code, errs)
	}
	rotated := filepath.Join(dir, "rotated.json")
	if code, _, errs := runCmd("audit", "keygen", "-o", rotated, "-rotate", "file:"+path); code != 0 {
		t.Fatalf("rotate: %d %q", code, errs)
	}
	kr2, err := audit.LoadKeyring("file:" + rotated)
	if err != nil || len(kr2.DataKeyIDs()) != 2 || kr2.ActiveDataKeyID() == kr.ActiveDataKeyID() || kr2.SigningKeyID() != kr.SigningKeyID() {
		t.Fatalf("rotated keyring: %v %v", kr2, err)
	}
	// Without -region the config's region is used; the default config is region dev.
	dev := filepath.Join(dir, "dev.json")
	if code, out, _ := runCmd("audit", "keygen", "-o", dev); code != 0 || !strings.Contains(out, "dev keyring") {
		t.Fatalf("default region: %d %q", code, out)
	}
	if code, _, _ := runCmd("audit", "keygen"); code != 2 {
		t.Fatal("keygen without -o must be a usage error")
	}
}

// BenchmarkAuditExport measures `audit export` (masked) over an in-memory trail of 10,000 records:
// paging, JSON Lines encoding and writing; the store's own reads are not included.
func BenchmarkAuditExport(b *testing.B) {
	kr, _ := audit.GenerateKeyring("sg", time.Now())
	m := &memTrail{kr: kr, chain: audit.NewChain("sg", audit.Head{}), keys: audit.NewMemSubjectKeys()}
	m.sealer, _ = audit.NewSealer(kr, m.keys, audit.SealerOptions{})
	ctx := context.Background()
	data := []byte(`{"to":"+65******01","country":"SG","from":"PAYLINK88","category":"otp","segments":1,"encoding":"GSM-7","policy_revision":"rev1"}`)
	for i := range 10_000 {
		if _, err := m.append(ctx, store.AuditAccepted, "msg_"+strings.Repeat("a", 10), "payments", data,
			"+6591"+strconv.Itoa(100000+i), []byte(`{"to":"x","body":"y"}`), time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	keys, _ := kr.Export()
	keyPath := filepath.Join(dir, "k.json")
	_ = os.WriteFile(keyPath, keys, 0o600)
	cfgPath := filepath.Join(dir, "c.yaml")
	_ = os.WriteFile(cfgPath, []byte("region: sg\naudit: {keyring: 'file:"+keyPath+"'}\n"), 0o600)
	old := openAuditStore
	openAuditStore = func(context.Context, *config.Config, *audit.Keyring, *slog.Logger) (auditStore, error) { return m, nil }
	b.Cleanup(func() { openAuditStore = old })
	b.ResetTimer()
	for range b.N {
		if code, _, errs := runCmd("audit", "export", "-config", cfgPath); code != 0 {
			b.Fatal(errs)
		}
	}
	b.ReportMetric(float64(b.N)*10_000/b.Elapsed().Seconds(), "records/s")
}

func TestConfigCheckLoadsTheKeyring(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("audit: {keyring: 'file:"+filepath.Join(dir, "missing.json")+"'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd("config", "check", "-config", cfg); code != 1 || !strings.Contains(errs, "audit.keyring: keyring_unreadable") {
		t.Fatalf("missing keyring: %d %q", code, errs)
	}
	if code, _, _ := runCmd("audit", "keygen", "-region", "dev", "-o", filepath.Join(dir, "missing.json")); code != 0 {
		t.Fatal("keygen failed")
	}
	if code, _, errs := runCmd("config", "check", "-config", cfg); code != 0 {
		t.Fatalf("with the keyring: %d %q", code, errs)
	}
}
