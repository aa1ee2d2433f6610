package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestNoPlainPersonalDataOnDisk writes every kind of record that involves a number or a body and
// checks that neither appears in the database file or its WAL, in any of the forms it could take.
func TestNoPlainPersonalDataOnDisk(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	s := openTest(t, path, Options{})
	nums := []string{"+6591234567", "+6598765432", "+4915123456789", "+12025550143"}
	body := "Transfer PL20241208009 of 4,210.55 to account 99887766 approved"
	for i := range 20 {
		to := nums[i%2]
		_, err := s.Accept(ctx, Accepted{ID: fmt.Sprintf("m%02d", i), App: "pay", To: to, ToMasked: "+65******67",
			Body: "Transfer ************* approved", Personal: []byte(`{"to":"` + to + `","body":"` + body + `"}`),
			Payload: []byte(`{"req":{"to":"` + to + `","body":"` + body + `"}}`)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordSent(ctx, []Sent{{MessageID: "m00", Provider: "sim", ProviderMessageID: "p0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddOptOut(ctx, OptOut{Number: nums[2], Scope: ScopeAll, App: "pay", Source: SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordConsent(ctx, Consent{App: "pay", Number: nums[3], Category: "marketing", Basis: BasisConsent}); err != nil {
		t.Fatal(err)
	}
	if err := s.Refuse(ctx, Refused{App: "pay", To: nums[3], Personal: []byte(`{"to":"` + nums[3] + `","body":"` + body + `"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EraseSubject(ctx, nums[1], "dpo"); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for _, f := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(f)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nums {
				if bytes.Contains(b, []byte(n)) || bytes.Contains(b, []byte(n[1:])) {
					t.Errorf("%s: %s holds a number in full", when, filepath.Base(f))
				}
			}
			if bytes.Contains(b, []byte("PL20241208009")) || bytes.Contains(b, []byte("99887766")) {
				t.Errorf("%s: %s holds the message body", when, filepath.Base(f))
			}
		}
	}
	check("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed")
}

// TestAuditCheckpointer checks that the store signs checkpoints by itself: after CheckpointEvery
// records, and at Close for what came after.
func TestAuditCheckpointer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	s := openTest(t, path, Options{CheckpointEvery: 5, CheckpointInterval: -1})
	for range 5 {
		if err := s.AppendEvent(ctx, AuditAppend{Kind: AuditConfigLoaded}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		cps, err := s.Checkpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(cps) > 0 {
			if cps[0].Seq < 5 {
				t.Fatalf("first checkpoint at seq %d, want 5", cps[0].Seq)
			}
			break
		}
		time.Sleep(time.Millisecond) // waits for the checkpointer; the test's deadline bounds it
	}
	if err := s.AppendEvent(ctx, AuditAppend{Kind: AuditConfigLoaded}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, Options{CheckpointEvery: -1, CheckpointInterval: -1})
	defer s.Close()
	cps, err := s.Checkpoints(ctx)
	if err != nil || len(cps) < 2 || cps[len(cps)-1].Seq != 6 {
		t.Fatalf("checkpoints = %+v, %v; want the last at seq 6, written by Close", cps, err)
	}
	rep, err := s.VerifyAudit(ctx, nil)
	if err != nil || !rep.OK() || rep.Unanchored != 0 {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}
}

// TestLegacyTrailChained checks that records written before the chain existed are chained on open.
func TestLegacyTrailChained(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	s := openTest(t, path, Options{})
	for range 3 {
		if err := s.AppendEvent(ctx, AuditAppend{Kind: AuditConfigLoaded}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make the trail look as it did before migration 3: no hashes, a gap in seq, no checkpoints.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE audit_events SET prev_hash = NULL, hash = NULL`,
		`UPDATE audit_events SET seq = 13 WHERE seq = 3`, `DELETE FROM audit_checkpoints`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, Options{})
	defer s.Close()
	rep, err := s.VerifyAudit(ctx, nil)
	if err != nil || !rep.OK() || rep.Records != 3 || rep.LastSeq != 3 {
		t.Fatalf("VerifyAudit after chaining legacy records = %+v, %v", rep, err)
	}
}

// TestNewSubjectKeyCommitsWithItsFirstWrite checks that a recipient's first message costs one commit,
// not two: the new subject key is inserted in the same transaction as the write it seals, so its
// sealed data opens after a reopen and no key is durable without the data or the data without it.
func TestNewSubjectKeyCommitsWithItsFirstWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := openTest(t, path, Options{})
	ctx := context.Background()
	before := s.Commits()
	const n = 20
	for i := range n {
		to := fmt.Sprintf("+659%07d", 1000000+i)
		_, err := s.Accept(ctx, Accepted{ID: fmt.Sprintf("m%02d", i), App: "a", To: to, ToMasked: "+65****", Country: "SG",
			Sender: "PAYLINK88", SenderKind: "alphanumeric", Category: "transaction", Body: "masked", Encoding: "GSM-7",
			Segments: 1, Personal: []byte(`{"to":"` + to + `","body":"hello"}`), Payload: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Commits() - before; got != n {
		t.Errorf("%d accepts to new recipients took %d commits, want %d", n, got, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, Options{})
	defer s.Close()
	recs, err := s.AuditRange(ctx, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	opened := 0
	for _, r := range recs {
		if len(r.Sealed) == 0 {
			continue
		}
		if _, err := s.OpenPersonal(ctx, r); err != nil {
			t.Fatalf("seq %d does not open after a reopen: %v", r.Seq, err)
		}
		opened++
	}
	if opened != n {
		t.Errorf("opened %d sealed records, want %d", opened, n)
	}
}

// TestEraseVoidsKeyHintsTakenMeanwhile: a facts read for a number whose erasure waits for the
// writer still finds the key and leaves a hint of it. The Accept that follows the erasure must not
// seal under that destroyed key: its data must open after a restart, and its message must stay
// sendable, while what was sealed before the erasure no longer opens.
func TestEraseVoidsKeyHintsTakenMeanwhile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openTest(t, path, Options{})
	defer func() { s.Close() }()
	bg := context.Background()
	const to = "+6591234567"
	accept := func(id string) {
		t.Helper()
		if _, err := s.Accept(bg, Accepted{ID: id, App: "a", To: to, ToMasked: "+65******67", Country: "SG",
			Category: "transaction", Body: "b", Personal: []byte(`{"to":"` + to + `"}`), Payload: []byte(`{"p":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	accept("m1")
	// hold the writer
	held, release := make(chan struct{}), make(chan struct{})
	go func() { _ = s.gc.submit(bg, func() error { close(held); <-release; return nil }) }()
	<-held
	erased := make(chan error, 1)
	go func() { _, err := s.EraseSubject(bg, to, "dpo"); erased <- err }()
	for len(s.gc.ops) < 1 {
		time.Sleep(time.Millisecond)
	}
	// an app's request for the same number reads its facts now
	if _, err := s.RecipientFacts(bg, to); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-erased; err != nil {
		t.Fatal(err)
	}
	accept("m2") // the Accept of that request, after the erasure
	recs, err := s.AuditRange(bg, AuditQuery{MessageID: "m2"})
	if err != nil || len(recs) == 0 {
		t.Fatal(recs, err)
	}
	if _, err := s.OpenPersonal(bg, recs[0]); err != nil {
		t.Errorf("m2 (accepted after the erasure) does not open: %v", err)
	}
	r1, _ := s.AuditRange(bg, AuditQuery{MessageID: "m1"})
	if _, err := s.OpenPersonal(bg, r1[0]); err == nil {
		t.Errorf("m1 (sealed before the erasure) still opens after EraseSubject returned")
	}
	s.Close()
	s = openTest(t, path, Options{})
	recs, _ = s.AuditRange(bg, AuditQuery{MessageID: "m2"})
	if _, err := s.OpenPersonal(bg, recs[0]); err != nil {
		t.Errorf("after restart, m2 (accepted after the erasure, 201) does not open: %v", err)
	}
	items, err := s.PendingOutbox(bg, 10, "")
	if err != nil || len(items) != 1 {
		v, _ := s.Get(bg, "a", "m2")
		t.Errorf("outbox = %v, %v; m2 status %q detail %s: accepted message can never be sent", items, err, v.Status, v.Detail)
	}
}

// TestEraseFailsWhole makes the insert of the "subject.erased" event fail (a trigger): the erasure
// must then fail whole, leaving the key, the body and the trail as they were.
func TestEraseFailsWhole(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	s := openTest(t, path, Options{})
	defer s.Close()
	const to = "+6591234567"
	if _, err := s.Accept(ctx, Accepted{ID: "m1", App: "a", To: to, ToMasked: "+65******67", Category: "otp", Body: "code 1234",
		Personal: []byte(`{}`), Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `CREATE TRIGGER fail_erased BEFORE INSERT ON audit_events WHEN NEW.kind = 'subject.erased'
 BEGIN SELECT RAISE(ABORT, 'injected fault'); END`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EraseSubject(ctx, to, "dpo ticket 1"); err == nil {
		t.Fatal("EraseSubject succeeded though its event could not be written")
	}
	var keys int
	if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM subject_keys`).Scan(&keys); err != nil || keys != 1 {
		t.Fatalf("subject keys after a failed erasure = %d, %v; want the key kept", keys, err)
	}
	if v, err := s.Get(ctx, "a", "m1"); err != nil || v.Body != "code 1234" {
		t.Fatalf("m1 after a failed erasure = %q, %v; want its body unchanged", v.Body, err)
	}
	if rep, err := s.VerifyAudit(ctx, nil); err != nil || !rep.OK() {
		t.Fatalf("verify after a failed erasure = %+v, %v", rep.Problem, err)
	}
	if _, err := raw.ExecContext(ctx, `DROP TRIGGER fail_erased`); err != nil {
		t.Fatal(err)
	}
	res, err := s.EraseSubject(ctx, to, "dpo ticket 1")
	if err != nil || !res.Existed {
		t.Fatalf("EraseSubject = %+v, %v; want the key destroyed", res, err)
	}
	if rep, err := s.VerifyAudit(ctx, nil); err != nil || !rep.OK() || rep.LastSeq != res.Seq {
		t.Fatalf("verify = %+v, %v; want the erasure event last", rep, err)
	}
}
