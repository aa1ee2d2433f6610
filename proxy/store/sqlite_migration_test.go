package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigration4DropsMessagesToHash upgrades a version 3 database holding a message's whole life
// (accepted with a sealed recipient and an idempotency key, sent, delivered) and a sealed refusal,
// and checks that the unread index messages_to_hash is gone while every read path still finds
// what it did: the message and its history, the idempotency key, the receipt's correlation without
// the cache, the recipient's audit events, facts and outbox.
func TestMigration4DropsMessagesToHash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	const to = "+6591234567"
	s := openTest(t, path, Options{CorrelationCache: -1})
	a := benchMessage("m1")
	a.To, a.ToHash, a.Personal = to, "", []byte(`{"to":"`+to+`"}`)
	if _, err := s.Accept(ctx, a); err != nil {
		t.Fatal(err)
	}
	b := benchMessage("m2")
	b.To, b.ToHash, b.IdempotencyKey, b.Personal = to, "", "", []byte(`{"to":"`+to+`"}`)
	if _, err := s.Accept(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Refuse(ctx, Refused{App: "payments", To: to, Personal: []byte(`{"to":"` + to + `"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSent(ctx, []Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	// Make the database look as it did at version 3.
	rewind(t, s, path, []string{
		`CREATE INDEX messages_to_hash ON messages (to_hash, created_at) WHERE to_hash <> ''`,
		`ALTER TABLE outbox DROP COLUMN maybe_sent`, // 0005
		`DELETE FROM schema_migrations WHERE version >= 4`,
	}, nil)

	s = openTest(t, path, Options{CorrelationCache: -1})
	defer s.Close()
	var n int
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'messages_to_hash'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("messages_to_hash still there after migration 4 (%d, %v)", n, err)
	}
	if err := s.rdb.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&n); err != nil || n < 4 {
		t.Fatalf("schema version = %d, %v; want at least 4", n, err)
	}

	r, err := s.ApplyReceipt(ctx, Receipt{Provider: "sim", ProviderMessageID: "p1", Status: StatusDelivered})
	if err != nil || !r.Applied || r.MessageID != "m1" {
		t.Fatalf("ApplyReceipt after migration = %+v, %v", r, err)
	}
	v, err := s.Get(ctx, "payments", "m1")
	if err != nil {
		t.Fatal(err)
	}
	var hist []string
	for _, h := range v.History {
		hist = append(hist, h.Status)
	}
	if v.Status != StatusDelivered || strings.Join(hist, ",") != "accepted,sent,delivered" || v.ToHash != s.trail.kr.LookupHash(to) {
		t.Fatalf("Get after migration = status %s, history %v, to_hash %q", v.Status, hist, v.ToHash)
	}
	if v, found, err := s.FindIdempotent(ctx, "payments", a.IdempotencyKey); err != nil || !found || v.ID != "m1" {
		t.Fatalf("FindIdempotent after migration = %v, %v, %v", v.ID, found, err)
	}
	// The recipient's events: both acceptances and the refusal, all sealed for the recipient.
	recs, err := s.AuditRange(ctx, AuditQuery{Recipient: to})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, rec := range recs {
		kinds = append(kinds, rec.Kind)
		if _, err := s.OpenPersonal(ctx, rec); err != nil {
			t.Fatalf("seq %d: %v", rec.Seq, err)
		}
	}
	if strings.Join(kinds, ",") != "message.accepted,message.accepted,message.refused" {
		t.Fatalf("recipient's events after migration = %v", kinds)
	}
	if f, err := s.RecipientFacts(ctx, to); err != nil || f.OptedOut("payments") {
		t.Fatalf("RecipientFacts after migration = %+v, %v", f, err)
	}
	if items, err := s.PendingOutbox(ctx, 10, ""); err != nil || len(items) != 1 || items[0].MessageID != "m2" {
		t.Fatalf("PendingOutbox after migration = %+v, %v", items, err)
	}
}

// TestQueryPlansUseIndexes checks that no statement run per message, per receipt or per recipient
// lookup scans a table (only its own VALUES list): each finds its rows through an index, and the
// audit searches by recipient and by message through theirs rather than the trail in seq order.
func TestQueryPlansUseIndexes(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	recipientQuery, _ := s.auditRangeSQL(AuditQuery{Recipient: "+6591234567", Limit: 10})
	messageQuery, _ := s.auditRangeSQL(AuditQuery{MessageID: "m1", Limit: 10})
	queries := map[string]string{
		"get": qGetMessage, "history": qGetHistory, "correlate": qCorrelate, "findIdempotent": qFindIdempotent,
		"msgState": qMsgState, "facts": qRecipientFacts, "subjectKey": qSubjectKey, "pending": qPending,
		"setRetry": qSetRetry, "setAttempts": qSetAttempts, "auditByRecipient": recipientQuery, "auditByMessage": messageQuery,
		"states": sqlStates(4), "owners": sqlOwners(4), "idempotent": sqlIdempotent(4), "setSent": sqlSetSent(4),
		"setStatus": sqlSetStatus(4), "delOutbox": sqlDelOutbox(4),
	}
	// Where the plan could find the rows another way, the index it must use.
	wantIndex := map[string]string{
		"auditByRecipient": "INDEX audit_events_subject_ref", "auditByMessage": "INDEX audit_events_message_id",
		"history": "INDEX audit_events_message_id", "correlate": "INDEX messages_provider_message_id",
		"owners": "INDEX messages_provider_message_id", "idempotent": "INDEX messages_app_idempotency_key",
	}
	for name, q := range queries {
		args := make([]any, strings.Count(q, "?"))
		for i := range args {
			args[i] = fmt.Sprint(i)
		}
		rows, err := s.wconn.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN ") && !strings.Contains(step, "VALUES CLAUSE") {
				t.Errorf("%s scans a table: %q (plan %q)", name, step, plan)
			}
		}
		if idx := wantIndex[name]; idx != "" && !strings.Contains(strings.Join(plan, " | "), idx) {
			t.Errorf("%s does not use %s: plan %q", name, idx, plan)
		}
		t.Logf("%s: %s", name, strings.Join(plan, " | "))
	}
}

// TestMigration6KeepsTheChain checks the rebuild of audit_events without AUTOINCREMENT: a trail
// written before it verifies after it with the same records and head, new events continue its
// numbering, and commits no longer write a sqlite_sequence row for it.
func TestMigration6KeepsTheChain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	s := openTest(t, path, Options{})
	for _, id := range []string{"m1", "m2", "m3"} {
		if _, err := s.Accept(ctx, benchMessage(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordSent(ctx, []Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	before, err := s.VerifyAudit(ctx, nil)
	if err != nil || !before.OK() || before.Records < 4 {
		t.Fatalf("trail before = %+v, %v", before, err)
	}
	// Make audit_events look as it did at version 5, with its sqlite_sequence row.
	rewind(t, s, path, []string{
		`ALTER TABLE audit_events RENAME TO audit_events_v6`,
		`CREATE TABLE audit_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, kind TEXT NOT NULL,
		 message_id TEXT, app TEXT NOT NULL DEFAULT '', data TEXT NOT NULL DEFAULT '{}', sealed BLOB,
		 subject_ref TEXT NOT NULL DEFAULT '', prev_hash BLOB, hash BLOB)`,
		`INSERT INTO audit_events SELECT * FROM audit_events_v6`,
		`DROP TABLE audit_events_v6`,
		`CREATE INDEX audit_events_message_id ON audit_events (message_id) WHERE message_id IS NOT NULL`,
		`CREATE INDEX audit_events_subject_ref ON audit_events (subject_ref, seq) WHERE subject_ref <> ''`,
		`DELETE FROM schema_migrations WHERE version >= 6`,
	}, func(db *sql.DB) {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'audit_events'`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("version 5 set-up: sqlite_sequence rows = %d, %v", n, err)
		}
	})

	s = openTest(t, path, Options{})
	defer s.Close()
	var n int
	after, err := s.VerifyAudit(ctx, nil)
	if err != nil || !after.OK() || after.Records != before.Records || after.LastSeq != before.LastSeq ||
		string(after.Head) != string(before.Head) {
		t.Fatalf("trail after migration 6 = %+v, %v; want the same as before (%+v)", after, err, before)
	}
	var ddl string
	if err := s.rdb.QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'audit_events'`).Scan(&ddl); err != nil ||
		strings.Contains(strings.ToUpper(ddl), "AUTOINCREMENT") {
		t.Fatalf("audit_events after migration 6: %q, %v", ddl, err)
	}
	if _, err := s.Accept(ctx, benchMessage("m4")); err != nil {
		t.Fatal(err)
	}
	next, err := s.VerifyAudit(ctx, nil)
	if err != nil || !next.OK() || next.LastSeq != before.LastSeq+1 {
		t.Fatalf("trail after a new message = %+v, %v; want it to go on at %d", next, err, before.LastSeq+1)
	}
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'audit_events'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("sqlite_sequence rows for audit_events after a commit = %d, %v; want none", n, err)
	}
}

// rewind closes s and runs stmts on its database file directly, to make it look as an older version
// left it; check, when not nil, then looks at the result before the file is closed.
func rewind(t *testing.T, s *SQLite, path string, stmts []string, check func(*sql.DB)) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if check != nil {
		check(db)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrationLeavesNoFreedCopies checks that a migration that rebuilds a table wipes the old
// table's pages: an audit event present at the upgrade and purged after it must not survive in
// the free pages of the file, as secure_delete promises for every DELETE.
func TestMigrationLeavesNoFreedCopies(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	const marker = "LINGERING-AUDIT-DATA-7f3a"
	s := openTest(t, path, Options{})
	rewind(t, s, path, []string{
		`DROP TABLE audit_events`,
		`CREATE TABLE audit_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, kind TEXT NOT NULL,
		 message_id TEXT, app TEXT NOT NULL DEFAULT '', data TEXT NOT NULL DEFAULT '{}', sealed BLOB,
		 subject_ref TEXT NOT NULL DEFAULT '', prev_hash BLOB, hash BLOB)`,
		`INSERT INTO audit_events (at, kind, app, data) VALUES (1, 'test', 'a', '{"note":"` + marker + `"}')`,
		`DELETE FROM schema_migrations WHERE version >= 6`,
	}, nil)

	s = openTest(t, path, Options{}) // migration 0006 copies the row and drops the old table
	if err := s.gc.submit(ctx, func() error {
		_, err := s.wconn.ExecContext(ctx, `DELETE FROM audit_events WHERE kind = 'test'`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // the last connection checkpoints and removes the WAL
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte(marker)); n > 0 {
			t.Errorf("%s holds %d copies of a deleted audit event", filepath.Base(f), n)
		}
	}
}
