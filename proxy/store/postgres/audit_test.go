package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
	"github.com/smsproxy/smsproxy/proxy/store/storetest"
)

// execSQL runs one statement on dsn's schema outside the store, as an attacker with database
// access would.
func execSQL(ctx context.Context, dsn, q string, args ...any) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, q, args...)
	return err
}

func auditFactory(opts Options) storetest.AuditFactory {
	return func(t *testing.T) storetest.AuditDB {
		dsn := freshSchema(t)
		kr, err := audit.GenerateKeyring("test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		opts := opts
		opts.Audit, opts.Logger = kr, quiet
		return storetest.AuditDB{
			Open: func(ctx context.Context) (store.Store, error) { return Open(ctx, dsn, opts) },
			Keys: kr,
			SetData: func(ctx context.Context, seq int64, data string) error {
				return execSQL(ctx, dsn, `UPDATE audit_events SET data = $1::json WHERE seq = $2`, data, seq)
			},
			DeleteFrom: func(ctx context.Context, from int64) error {
				return execSQL(ctx, dsn, `DELETE FROM audit_events WHERE seq >= $1`, from)
			},
		}
	}
}

func TestAuditConformance(t *testing.T) {
	testDSN(t)
	storetest.RunAudit(t, auditFactory(Options{CheckpointEvery: -1, CheckpointInterval: -1}))
}

func TestAuditConformanceSmallBatches(t *testing.T) {
	testDSN(t)
	storetest.RunAudit(t, auditFactory(Options{MaxBatch: 4, MaxConns: 2, Writers: 1, CheckpointEvery: -1, CheckpointInterval: -1}))
}

// TestReplicasShareOneChain has two stores on one database (two replicas, two writers each)
// append concurrently: their events form one chain, with no seq taken twice and none skipped, that
// the verifier accepts with a checkpoint of the head, whichever replica signed it.
func TestReplicasShareOneChain(t *testing.T) {
	dsn := freshSchema(t)
	opts := Options{MaxBatch: 16, CheckpointEvery: -1, CheckpointInterval: -1}
	replicas := []*Postgres{openT(t, dsn, opts), openT(t, dsn, opts)}
	const perWorker = 40
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for r, p := range replicas {
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					id := fmt.Sprintf("r%d-w%d-%d", r, w, i)
					var err error
					switch i % 3 {
					case 0:
						a := store.Accepted{ID: id, App: "pay", To: "+6591234567", ToMasked: "+65*******67", Category: "otp",
							Body: "x", Audit: []byte(`{"n":1}`), Payload: []byte("p"), Personal: []byte(`{"to":"+6591234567"}`)}
						_, err = p.Accept(bgt, a)
					case 1:
						err = p.Refuse(bgt, store.Refused{App: "pay", MessageID: id, To: "+6598765432",
							Personal: []byte(`{"to":"+6598765432"}`), Data: []byte(`{"code":"x"}`)})
					default:
						err = p.AppendEvent(bgt, store.AuditAppend{Kind: store.AuditConfigLoaded, Data: []byte(`{"rev":"` + id + `"}`)})
					}
					if err != nil {
						errs <- fmt.Errorf("%s: %w", id, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := replicas[1].WriteCheckpoint(bgt, time.Now()); err != nil {
		t.Fatal(err)
	}
	want := int64(len(replicas) * 8 * perWorker)
	for i, p := range replicas {
		rep, err := p.VerifyAudit(bgt, testKeys)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Records != want || rep.FirstSeq != 1 || rep.LastSeq != want || rep.CheckpointsMatched != 1 {
			t.Fatalf("replica %d: report %+v (problem %+v), want %d records from seq 1, all checkpointed", i, rep, rep.Problem, want)
		}
	}
	recs, err := replicas[0].AuditRange(bgt, store.AuditQuery{Recipient: "+6598765432", Limit: 1})
	if err != nil || len(recs) != 1 {
		t.Fatalf("AuditRange = %+v, %v", recs, err)
	}
	if pt, err := replicas[0].OpenPersonal(bgt, recs[0]); err != nil || string(pt) != `{"to":"+6598765432"}` {
		t.Fatalf("OpenPersonal across replicas = %q, %v", pt, err)
	}
}

// TestAuditCheckpointer checks the background checkpointer signs once the head moved by
// CheckpointEvery, and that Close signs a last checkpoint of what it wrote since.
func TestAuditCheckpointer(t *testing.T) {
	dsn := freshSchema(t)
	p := openT(t, dsn, Options{CheckpointEvery: 5, CheckpointInterval: -1})
	for range 5 {
		if err := p.AppendEvent(bgt, store.AuditAppend{Kind: store.AuditConfigLoaded}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		cps, err := p.Checkpoints(bgt)
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
	if err := p.AppendEvent(bgt, store.AuditAppend{Kind: store.AuditConfigLoaded}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = openT(t, dsn, Options{CheckpointEvery: -1, CheckpointInterval: -1})
	cps, err := p.Checkpoints(bgt)
	if err != nil || len(cps) < 2 || cps[len(cps)-1].Seq != 6 {
		t.Fatalf("checkpoints = %+v, %v; want the last at seq 6, written by Close", cps, err)
	}
	rep, err := p.VerifyAudit(bgt, nil)
	if err != nil || !rep.OK() || rep.Unanchored != 0 {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}
}

// TestLegacyTrailChained migrates a database written by schema version 1 (unchained events with
// identity seqs and gaps, opt-outs and consents keyed by plain numbers) and checks that opening it
// chains the events and hashes the numbers, which keep their effect.
func TestLegacyTrailChained(t *testing.T) {
	dsn := freshSchema(t)
	ms, err := store.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(bgt, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(bgt, pool, ms[:1]); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO audit_events (at, kind, app, data) VALUES (1000, 'config.loaded', '', '{"a":1}'), (2000, 'policy.changed', '', '{ "b" : 2 }')`,
		`SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), 40)`,
		`INSERT INTO audit_events (at, kind, app, data) VALUES (3000, 'config.loaded', 'pay', '{}')`,
		`INSERT INTO opt_outs (number, scope, app, source, created_at) VALUES ('+6591234567', '*', 'pay', 'api', 1)`,
		`INSERT INTO consents (app, number, category, basis, source, granted_at) VALUES ('pay', '+6598765432', 'marketing', 'consent', 'form', 1)`,
	} {
		if _, err := pool.Exec(bgt, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	pool.Close()
	p := openT(t, dsn, Options{})
	rep, err := p.VerifyAudit(bgt, nil)
	if err != nil || !rep.OK() || rep.Records != 3 || rep.LastSeq != 3 {
		t.Fatalf("VerifyAudit after chaining legacy records = %+v, %v", rep, err)
	}
	if err := p.AppendEvent(bgt, store.AuditAppend{Kind: store.AuditConfigLoaded}); err != nil {
		t.Fatal(err)
	}
	if rep, err := p.VerifyAudit(bgt, nil); err != nil || !rep.OK() || rep.LastSeq != 4 {
		t.Fatalf("VerifyAudit after appending = %+v, %v", rep, err)
	}
	if f, err := p.RecipientFacts(bgt, "+6591234567"); err != nil || !f.OptedOut("pay") {
		t.Fatalf("facts of the legacy opt-out = %+v, %v", f, err)
	}
	if cs, err := p.Consents(bgt, "pay", "+6598765432"); err != nil || len(cs) != 1 || cs[0].Number != "+6598765432" {
		t.Fatalf("legacy consents = %+v, %v", cs, err)
	}
	var plain int
	if err := p.pool.QueryRow(bgt, `SELECT (SELECT count(*) FROM opt_outs WHERE number LIKE '+%') + (SELECT count(*) FROM consents WHERE number LIKE '+%')`).Scan(&plain); err != nil || plain != 0 {
		t.Fatalf("%d rows still hold a plain number (%v)", plain, err)
	}
	outs, err := p.ListOptOuts(bgt, "pay", 0, 10)
	if err != nil || len(outs) != 1 || outs[0].Number != sms.MaskPhone("+6591234567") {
		t.Fatalf("listed legacy opt-outs = %+v, %v", outs, err)
	}
}

// TestNoPlainPersonalDataStored writes a sealed message, a refusal, an opt-out and a consent for
// one number and checks that no row of any table holds the number or the body in plain text (as
// text, or as bytes inside a bytea column).
func TestNoPlainPersonalDataStored(t *testing.T) {
	p := openT(t, freshSchema(t), Options{})
	const number, body = "+6591234567", "Your code is 482913"
	a := store.Accepted{ID: "m1", App: "pay", To: number, ToMasked: sms.MaskPhone(number), Category: "otp",
		Body: "Your code is ******", Audit: []byte(`{"to":"+65*******67"}`), Payload: []byte(number + " " + body),
		Personal: []byte(`{"to":"` + number + `","body":"` + body + `"}`)}
	if _, err := p.Accept(bgt, a); err != nil {
		t.Fatal(err)
	}
	if err := p.Refuse(bgt, store.Refused{App: "pay", To: number, Personal: a.Personal}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddOptOut(bgt, store.OptOut{Number: number, Scope: store.ScopeAll, App: "pay", Source: "api"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RecordConsent(bgt, store.Consent{App: "pay", Number: number, Category: "marketing", Basis: "consent"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteCheckpoint(bgt, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"messages", "audit_events", "audit_pending", "outbox", "opt_outs", "consents",
		"subject_keys", "audit_checkpoints", "chain_head", "provider_ids"} {
		for _, secret := range []string{number[1:], "482913"} {
			var n int
			q := `SELECT count(*) FROM ` + table + ` t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, encode(convert_to($1, 'UTF8'), 'hex')) > 0`
			if err := p.pool.QueryRow(bgt, q, secret).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d rows of %s hold a personal value in plain text", n, table)
			}
		}
	}
}

// TestEraseFailsWhole makes the insert of the "subject.erased" event fail (a trigger): the erasure
// must then fail whole, leaving the key, the body and the trail as they were.
func TestEraseFailsWhole(t *testing.T) {
	dsn := freshSchema(t)
	ctx := context.Background()
	s, err := Open(ctx, dsn, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const to = "+6591234567"
	if _, err := s.Accept(ctx, store.Accepted{ID: "m1", App: "a", To: to, ToMasked: "+65******67", Category: "otp", Body: "code 1234",
		Personal: []byte(`{}`), Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE FUNCTION fail_erased() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.kind = 'subject.erased' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER fail_erased BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION fail_erased()`,
	} {
		if err := execSQL(ctx, dsn, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.EraseSubject(ctx, to, "dpo ticket 1"); err == nil {
		t.Fatal("EraseSubject succeeded though its event could not be written")
	}
	var keys int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM subject_keys`).Scan(&keys); err != nil || keys != 1 {
		t.Fatalf("subject keys after a failed erasure = %d, %v; want the key kept", keys, err)
	}
	if v, err := s.Get(ctx, "a", "m1"); err != nil || v.Body != "code 1234" {
		t.Fatalf("m1 after a failed erasure = %q, %v; want its body unchanged", v.Body, err)
	}
	if rep, err := s.VerifyAudit(ctx, nil); err != nil || !rep.OK() {
		t.Fatalf("verify after a failed erasure = %+v, %v", rep.Problem, err)
	}
	if err := execSQL(ctx, dsn, `DROP TRIGGER fail_erased ON audit_events`); err != nil {
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
