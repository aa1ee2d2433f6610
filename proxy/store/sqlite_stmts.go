package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The SQL below is kept to what SQLite and PostgreSQL share, with "?" placeholders; a PostgreSQL
// store rebinds them to $n. Statements that differ per dialect are marked.
const (
	qIdempotency = `SELECT id, request_hash, status, created_at FROM messages WHERE app = ? AND idempotency_key = ?`
	qInsMessage  = `INSERT INTO messages (id, app, idempotency_key, request_hash, to_masked, to_hash, country, sender,
 sender_kind, category, body, encoding, segments, status, attempts, created_at, updated_at, detail)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'accepted', 0, ?, ?, ?)`
	qInsStatus = `INSERT INTO message_status (message_id, seq, status, at, provider, code, detail)
 SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ? FROM message_status WHERE message_id = ?`
	qInsAudit      = `INSERT INTO audit_events (at, kind, message_id, app, data) VALUES (?, ?, ?, ?, ?)`
	qInsOutbox     = `INSERT INTO outbox (message_id, payload, created_at, attempts, next_attempt_at) VALUES (?, ?, ?, 0, ?)`
	qMsgState      = `SELECT app, status FROM messages WHERE id = ?`
	qSetSent       = `UPDATE messages SET status = 'sent', provider = ?, provider_message_id = ?, attempts = CASE WHEN ? > 0 THEN ? ELSE attempts END, updated_at = ? WHERE id = ?`
	qInsProviderID = `INSERT INTO provider_ids (provider, provider_message_id, message_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`
	qDelOutbox     = `DELETE FROM outbox WHERE message_id = ?`
	qSetFailed     = `UPDATE messages SET status = 'failed', provider = CASE WHEN ? <> '' THEN ? ELSE provider END, attempts = CASE WHEN ? > 0 THEN ? ELSE attempts END, updated_at = ? WHERE id = ?`
	qSetRetry      = `UPDATE outbox SET attempts = ?, next_attempt_at = ? WHERE message_id = ?`
	qSetAttempts   = `UPDATE messages SET attempts = ?, updated_at = ? WHERE id = ?`
	qSetStatus     = `UPDATE messages SET status = ?, updated_at = ? WHERE id = ?`

	qGetMessage = `SELECT id, app, idempotency_key, request_hash, to_masked, to_hash, country, sender, sender_kind, category,
 body, encoding, segments, status, provider, provider_message_id, attempts, created_at, updated_at, detail
 FROM messages WHERE id = ? AND app = ?`
	qGetHistory     = `SELECT seq, status, at, provider, code, detail FROM message_status WHERE message_id = ? ORDER BY seq`
	qPending        = `SELECT message_id, payload, attempts, created_at, next_attempt_at FROM outbox WHERE message_id > ? ORDER BY message_id LIMIT ?`
	qCorrelate      = `SELECT p.message_id, m.app FROM provider_ids p JOIN messages m ON m.id = p.message_id WHERE p.provider = ? AND p.provider_message_id = ?`
	qFindIdempotent = `SELECT id FROM messages WHERE app = ? AND idempotency_key = ?`
	qCount          = `SELECT status, COUNT(*) FROM messages GROUP BY status`
	qAudit          = `SELECT seq, at, kind, message_id, app, data FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`
)

// sqliteWriteStmts are the writer connection's prepared statements. It also drives the writer's
// transactions (batchTx); SQLite-specific: BEGIN IMMEDIATE takes the write lock up front.
type sqliteWriteStmts struct {
	begin, commit, rollback, savepoint, release, rollbackTo *sql.Stmt

	idempotency, insMessage, insStatus, insAudit, insOutbox, msgState, setSent, insProviderID,
	delOutbox, setFailed, setRetry, setAttempts, setStatus *sql.Stmt

	all []*sql.Stmt
}

var _ batchTx = (*sqliteWriteStmts)(nil)

func prepareSQLiteWrite(ctx context.Context, conn *sql.Conn) (*sqliteWriteStmts, error) {
	w := &sqliteWriteStmts{}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&w.begin, "BEGIN IMMEDIATE"}, {&w.commit, "COMMIT"}, {&w.rollback, "ROLLBACK"},
		{&w.savepoint, "SAVEPOINT op"}, {&w.release, "RELEASE op"}, {&w.rollbackTo, "ROLLBACK TO op"},
		{&w.idempotency, qIdempotency}, {&w.insMessage, qInsMessage}, {&w.insStatus, qInsStatus},
		{&w.insAudit, qInsAudit}, {&w.insOutbox, qInsOutbox}, {&w.msgState, qMsgState},
		{&w.setSent, qSetSent}, {&w.insProviderID, qInsProviderID}, {&w.delOutbox, qDelOutbox},
		{&w.setFailed, qSetFailed}, {&w.setRetry, qSetRetry}, {&w.setAttempts, qSetAttempts},
		{&w.setStatus, qSetStatus},
	} {
		st, err := conn.PrepareContext(ctx, p.q)
		if err != nil {
			_ = w.close()
			return nil, fmt.Errorf("%w (%.40s)", err, p.q)
		}
		*p.dst = st
		w.all = append(w.all, st)
	}
	return w, nil
}

func (w *sqliteWriteStmts) close() error {
	var errs []error
	for _, st := range w.all {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// The writer's own context: a caller's cancellation must not break a transaction others share.
var bg = context.Background()

func (w *sqliteWriteStmts) exec(st *sql.Stmt) error {
	_, err := st.ExecContext(bg)
	return err
}

func (w *sqliteWriteStmts) Begin() error               { return w.exec(w.begin) }
func (w *sqliteWriteStmts) Commit() error              { return w.exec(w.commit) }
func (w *sqliteWriteStmts) Rollback() error            { return w.exec(w.rollback) }
func (w *sqliteWriteStmts) Savepoint() error           { return w.exec(w.savepoint) }
func (w *sqliteWriteStmts) ReleaseSavepoint() error    { return w.exec(w.release) }
func (w *sqliteWriteStmts) RollbackToSavepoint() error { return w.exec(w.rollbackTo) }

// sqliteReadStmts are prepared on the read-only pool.
type sqliteReadStmts struct {
	getMessage, getHistory, pending, correlate, count, audit *sql.Stmt
	all                                                      []*sql.Stmt
}

func prepareSQLiteRead(ctx context.Context, db *sql.DB) (*sqliteReadStmts, error) {
	r := &sqliteReadStmts{}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&r.getMessage, qGetMessage}, {&r.getHistory, qGetHistory}, {&r.pending, qPending},
		{&r.correlate, qCorrelate}, {&r.count, qCount}, {&r.audit, qAudit},
	} {
		st, err := db.PrepareContext(ctx, p.q)
		if err != nil {
			_ = r.close()
			return nil, fmt.Errorf("%w (%.40s)", err, p.q)
		}
		*p.dst = st
		r.all = append(r.all, st)
	}
	return r, nil
}

func (r *sqliteReadStmts) close() error {
	var errs []error
	for _, st := range r.all {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}
