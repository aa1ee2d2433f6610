package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsproxy/smsproxy/proxy/store"
)

var bgt = context.Background()

func openT(t testing.TB, dsn string, opts Options) *Postgres {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.Audit == nil {
		opts.Audit = testKeys
	}
	p, err := Open(bgt, dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func testMsg(app, id, key string) store.Accepted {
	return store.Accepted{ID: id, App: app, IdempotencyKey: key, RequestHash: "hash-" + key, ToMasked: "+65****4321",
		Country: "SG", Sender: "PAYCO", Category: "otp", Body: "Your code is ******", Encoding: "GSM-7", Segments: 1,
		Payload: []byte("payload-" + id)}
}

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		fs      fstest.MapFS
		want    []int
		wantErr bool
	}{
		{"in order", fstest.MapFS{"m/0002_b.sql": file("B"), "m/0001_a.sql": file("A"), "m/README": file("x")}, []int{1, 2}, false},
		{"gap", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")}, nil, true},
		{"zero", fstest.MapFS{"m/0000_a.sql": file("A")}, nil, true},
		{"no name", fstest.MapFS{"m/0001.sql": file("A")}, nil, true},
		{"not a number", fstest.MapFS{"m/one_a.sql": file("A")}, nil, true},
		{"duplicate version", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0001_b.sql": file("B")}, nil, true},
		{"no directory", fstest.MapFS{}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := store.LoadMigrations(tc.fs, "m")
			if (err != nil) != tc.wantErr {
				t.Fatalf("loadMigrations error = %v, want error %v", err, tc.wantErr)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("versions = %v, want %v", got, tc.want)
			}
		})
	}
	ms, err := store.LoadMigrations(migrationFiles, "migrations")
	if err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %d, %v", len(ms), err)
	}
}

// TestMigrateOnce starts several replicas on an empty schema at once: each migration is applied
// once, and a later start applies nothing.
func TestMigrateOnce(t *testing.T) {
	dsn := freshSchema(t)
	const replicas = 4
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	stores := make([]*Postgres, replicas)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(bgt, dsn, Options{Logger: quiet, MaxConns: 2, Writers: 1, Audit: testKeys})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Open: %v", i, err)
		}
		defer stores[i].Close()
	}
	ms, _ := store.LoadMigrations(migrationFiles, "migrations")
	versions := func() string {
		rows, err := stores[0].pool.Query(bgt, `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for rows.Next() {
			var v int
			var at int64
			if err := rows.Scan(&v, &at); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d@%d", v, at))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if len(out) != len(ms) {
			t.Fatalf("schema_migrations = %v, want %d rows", out, len(ms))
		}
		return fmt.Sprint(out)
	}
	first := versions()
	openT(t, dsn, Options{})
	if again := versions(); again != first {
		t.Fatalf("a later start changed schema_migrations: %s, was %s", again, first)
	}
}

func TestSchemaTooNew(t *testing.T) {
	dsn := freshSchema(t)
	p := openT(t, dsn, Options{})
	if _, err := p.pool.Exec(bgt, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	if _, err := Open(bgt, dsn, Options{Logger: quiet}); store.CodeOf(err) != store.CodeSchemaTooNew {
		t.Fatalf("Open on a newer schema = %v, want %s", err, store.CodeSchemaTooNew)
	}
}

func TestMigrationFailsWhole(t *testing.T) {
	// A schema where the tables exist but schema_migrations does not: 0001 fails, nothing is recorded.
	dsn := freshSchema(t)
	c, err := pgx.Connect(bgt, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(bgt)
	if _, err := c.Exec(bgt, `CREATE TABLE messages (id text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bgt, dsn, Options{Logger: quiet}); store.CodeOf(err) != store.CodeMigrationFailed {
		t.Fatalf("Open = %v, want %s", err, store.CodeMigrationFailed)
	}
	var n int
	if err := c.QueryRow(bgt, `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a failed migration left schema_migrations behind: the transaction was not rolled back")
	}
}

// TestFailingOpFailsAlone puts an operation whose statement the server refuses between two good
// ones in one batch: it fails, and the others commit in one transaction.
func TestFailingOpFailsAlone(t *testing.T) {
	p := openT(t, freshSchema(t), Options{})
	audit := func(app string) *writeOp {
		return &writeOp{ctx: bgt, queue: func(b *pgx.Batch) {
			b.Queue(qInsAudit, int64(1), store.AuditRefused, nil, app, "{}")
		}, read: func(br pgx.BatchResults) error {
			_, err := br.Exec()
			return err
		}}
	}
	bad := &writeOp{ctx: bgt, queue: func(b *pgx.Batch) {
		b.Queue(`SELECT 1 / $1::integer`, 0)
	}, read: func(br pgx.BatchResults) error {
		_, err := br.Exec()
		return err
	}}
	cancelled, cancel := context.WithCancel(bgt)
	cancel()
	skipped := audit("skipped")
	skipped.ctx = cancelled
	before := p.Commits()
	res := p.w.runBatch([]*writeOp{audit("first"), bad, skipped, audit("last")})
	if res[0] != nil || res[3] != nil {
		t.Fatalf("good operations failed: %v, %v", res[0], res[3])
	}
	if res[1] == nil || sqlState(res[1]) != "22012" {
		t.Fatalf("bad operation error = %v, want division_by_zero", res[1])
	}
	if !errors.Is(res[2], context.Canceled) {
		t.Fatalf("cancelled operation error = %v, want context.Canceled", res[2])
	}
	if got := p.Commits() - before; got != 1 {
		t.Fatalf("%d commits, want 1", got)
	}
	evs, err := p.Audit(bgt, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].App != "first" || evs[1].App != "last" {
		t.Fatalf("audit = %+v, want first and last", evs)
	}
}

func TestRejectsTextPostgresCannotHold(t *testing.T) {
	p := openT(t, freshSchema(t), Options{})
	for name, change := range map[string]func(a *store.Accepted){
		"NUL in body":         func(a *store.Accepted) { a.Body = "code\x00" },
		"invalid UTF-8":       func(a *store.Accepted) { a.Sender = "\xff" },
		"NUL escape in audit": func(a *store.Accepted) { a.Audit = []byte(`{"x":"\u0000"}`) },
	} {
		a := testMsg("pay", "m1", "")
		change(&a)
		if _, err := p.Accept(bgt, a); store.CodeOf(err) != store.CodeInvalidArgument {
			t.Errorf("%s: Accept = %v, want %s", name, err, store.CodeInvalidArgument)
		}
	}
}

// TestReplicasShareIdempotencyKeys has two replicas accept the same keys at once: each key makes
// one message, and every other request is answered as its duplicate.
func TestReplicasShareIdempotencyKeys(t *testing.T) {
	dsn := freshSchema(t)
	replicas := []*Postgres{openT(t, dsn, Options{}), openT(t, dsn, Options{})}
	const keys, tries = 16, 8
	type outcome struct {
		key string
		res store.AcceptResult
		err error
	}
	out := make(chan outcome, keys*tries)
	var wg sync.WaitGroup
	for k := range keys {
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("k%02d", k)
				r, err := replicas[i%2].Accept(bgt, testMsg("pay", fmt.Sprintf("m-%02d-%d", k, i), key))
				out <- outcome{key, r, err}
			}()
		}
	}
	wg.Wait()
	close(out)
	ids := map[string]map[string]bool{}
	created := map[string]int{}
	for o := range out {
		if o.err != nil {
			t.Fatalf("Accept(%s): %v", o.key, o.err)
		}
		if ids[o.key] == nil {
			ids[o.key] = map[string]bool{}
		}
		ids[o.key][o.res.ID] = true
		if !o.res.Duplicate {
			created[o.key]++
		}
	}
	for k, set := range ids {
		if len(set) != 1 || created[k] != 1 {
			t.Errorf("key %s: ids %v, %d created; want one message", k, set, created[k])
		}
	}
	counts, err := replicas[0].CountByStatus(bgt)
	if err != nil || counts[store.StatusAccepted] != keys {
		t.Fatalf("counts = %v, %v; want %d accepted", counts, err, keys)
	}
}

// TestReplicasRaceOnReceipts has two replicas apply receipts and sends for the same messages, in
// opposite orders, at once: each message takes one final status, with one audit event for it.
func TestReplicasRaceOnReceipts(t *testing.T) {
	dsn := freshSchema(t)
	a, b := openT(t, dsn, Options{}), openT(t, dsn, Options{})
	const n = 20
	var sent []store.Sent
	for i := range n {
		id := fmt.Sprintf("m%02d", i)
		if _, err := a.Accept(bgt, testMsg("pay", id, "")); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, store.Sent{MessageID: id, Provider: "sim", ProviderMessageID: "p" + id})
	}
	if err := a.RecordSent(bgt, sent); err != nil {
		t.Fatal(err)
	}
	applied := make([][2]bool, n)
	var wg sync.WaitGroup
	for r, s := range []*Postgres{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				i := j
				if r == 1 {
					i = n - 1 - j
				}
				status := []string{store.StatusDelivered, store.StatusUndeliverable}[r]
				res, err := s.ApplyReceipt(bgt, store.Receipt{Provider: "sim", ProviderMessageID: sent[i].ProviderMessageID, Status: status})
				if err != nil {
					t.Errorf("replica %d receipt %d: %v", r, i, err)
					return
				}
				applied[i][r] = res.Applied
			}
		}()
	}
	wg.Wait()
	for i, ap := range applied {
		if ap[0] == ap[1] {
			t.Errorf("message %d: applied by replica 0 %v, replica 1 %v; want exactly one", i, ap[0], ap[1])
		}
	}
	evs, err := a.Audit(bgt, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	finals := map[string]int{}
	for _, e := range evs {
		if e.Kind == store.AuditDelivered || e.Kind == store.AuditUndeliverable {
			finals[e.MessageID]++
		}
	}
	for _, x := range sent {
		if finals[x.MessageID] != 1 {
			t.Errorf("%s has %d final audit events, want 1", x.MessageID, finals[x.MessageID])
		}
	}
}

func TestClaimOutbox(t *testing.T) {
	dsn := freshSchema(t)
	a, b := openT(t, dsn, Options{}), openT(t, dsn, Options{})
	for i := range 5 {
		if _, err := a.Accept(bgt, testMsg("pay", fmt.Sprintf("m%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(items []store.OutboxItem) string {
		var out []string
		for _, it := range items {
			out = append(out, it.MessageID)
		}
		return fmt.Sprint(out)
	}
	claim := func(p *Postgres, owner string, limit int) string {
		t.Helper()
		items, err := p.ClaimOutbox(bgt, owner, limit, time.Hour)
		if err != nil {
			t.Fatalf("ClaimOutbox(%s): %v", owner, err)
		}
		return ids(items)
	}
	steps := []struct {
		name string
		do   func() string
		want string
	}{
		{"A claims three", func() string { return claim(a, "A", 3) }, "[m0 m1 m2]"},
		{"B gets the rest", func() string { return claim(b, "B", 10) }, "[m3 m4]"},
		{"nothing left for C", func() string { return claim(b, "C", 10) }, "[]"},
		{"claimed rows are not handed again", func() string { return claim(a, "A", 10) }, "[]"},
		{"sent rows leave the outbox", func() string {
			if err := a.RecordSent(bgt, []store.Sent{{MessageID: "m0", Provider: "sim", ProviderMessageID: "p0"}}); err != nil {
				t.Fatal(err)
			}
			items, err := a.PendingOutbox(bgt, 10, "")
			if err != nil {
				t.Fatal(err)
			}
			return ids(items)
		}, "[m1 m2 m3 m4]"},
		{"a released row is free", func() string {
			if err := a.ReleaseOutbox(bgt, "A", []string{"m1"}); err != nil {
				t.Fatal(err)
			}
			return claim(b, "C", 10)
		}, "[m1]"},
		{"an expired lease is free", func() string {
			if _, err := a.pool.Exec(bgt, `UPDATE outbox SET claimed_until = 0 WHERE message_id = 'm2'`); err != nil {
				t.Fatal(err)
			}
			return claim(b, "D", 10)
		}, "[m2]"},
		{"a retry frees the row, due later", func() string {
			if err := b.RecordRetry(bgt, "m3", 1, time.Now().Add(time.Hour), "timeout", nil); err != nil {
				t.Fatal(err)
			}
			return claim(a, "A", 10)
		}, "[]"},
		{"PendingOutbox still lists every row", func() string {
			items, err := a.PendingOutbox(bgt, 10, "")
			if err != nil {
				t.Fatal(err)
			}
			return ids(items)
		}, "[m1 m2 m3 m4]"},
	}
	for _, st := range steps {
		if got := st.do(); got != st.want {
			t.Fatalf("%s: got %s, want %s", st.name, got, st.want)
		}
	}
	for _, bad := range []struct {
		owner string
		limit int
		lease time.Duration
	}{{"", 1, time.Second}, {"A", 0, time.Second}, {"A", 1, 0}} {
		if _, err := a.ClaimOutbox(bgt, bad.owner, bad.limit, bad.lease); store.CodeOf(err) != store.CodeInvalidArgument {
			t.Errorf("ClaimOutbox(%q, %d, %v) = %v, want invalid_argument", bad.owner, bad.limit, bad.lease, err)
		}
	}
}

// TestClaimOutboxConcurrent has four replicas claim a shared outbox at once: every row is handed
// out exactly once.
func TestClaimOutboxConcurrent(t *testing.T) {
	dsn := freshSchema(t)
	const rows, replicas = 200, 4
	first := openT(t, dsn, Options{})
	for i := range rows {
		if _, err := first.Accept(bgt, testMsg("pay", fmt.Sprintf("m%03d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	owners := map[string][]string{}
	var wg sync.WaitGroup
	for r := range replicas {
		p := first
		if r > 0 {
			p = openT(t, dsn, Options{MaxConns: 2, Writers: 1})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("replica-%d", r)
			for {
				items, err := p.ClaimOutbox(bgt, owner, 7, time.Hour)
				if err != nil {
					t.Errorf("%s: %v", owner, err)
					return
				}
				if len(items) == 0 {
					return
				}
				mu.Lock()
				for _, it := range items {
					owners[it.MessageID] = append(owners[it.MessageID], owner)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(owners) != rows {
		t.Fatalf("%d rows claimed, want %d", len(owners), rows)
	}
	for id, os := range owners {
		if len(os) != 1 {
			t.Errorf("%s claimed by %v, want one owner", id, os)
		}
	}
}
