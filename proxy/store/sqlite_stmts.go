package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The SQL below is kept to what SQLite and PostgreSQL share, with "?" placeholders; a PostgreSQL
// store rebinds them to $n. Statements that differ per dialect are marked.
const (
	qInsAudit = `INSERT INTO audit_events (seq, at, kind, message_id, app, data, sealed, subject_ref, prev_hash, hash)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qInsOutbox     = `INSERT INTO outbox (message_id, payload, created_at, attempts, next_attempt_at, subject_ref) VALUES (?, ?, ?, 0, ?, ?)`
	qMsgState      = `SELECT app, status FROM messages WHERE id = ?`
	qInsProviderID = `INSERT INTO provider_ids (provider, provider_message_id, message_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`
	qSetRetry      = `UPDATE outbox SET attempts = ?, next_attempt_at = ?, maybe_sent = ? WHERE message_id = ?`
	qSetAttempts   = `UPDATE messages SET attempts = ?, updated_at = ? WHERE id = ?`

	qGetMessage = `SELECT id, app, idempotency_key, request_hash, to_masked, to_hash, country, sender, sender_kind, category,
 body, encoding, segments, status, provider, provider_message_id, attempts, created_at, updated_at, detail
 FROM messages WHERE id = ? AND app = ?`
	qGetHistory = `SELECT kind, at, data FROM audit_events WHERE message_id = ? ORDER BY seq`
	qPending    = `SELECT message_id, payload, attempts, created_at, next_attempt_at, subject_ref, maybe_sent FROM outbox WHERE message_id > ? ORDER BY message_id LIMIT ?`
	// A provider message id is the message's first one (in messages) or a further one (in provider_ids).
	qCorrelate = `SELECT id, app FROM messages WHERE provider = ? AND provider_message_id = ? AND provider_message_id <> ''
 UNION ALL SELECT p.message_id, m.app FROM provider_ids p JOIN messages m ON m.id = p.message_id
 WHERE p.provider = ? AND p.provider_message_id = ? LIMIT 1`
	qFindIdempotent = `SELECT id FROM messages WHERE app = ? AND idempotency_key = ?`
	qCount          = `SELECT status, COUNT(*) FROM messages GROUP BY status`
	qAudit          = `SELECT seq, at, kind, message_id, app, data FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`
)

// Set-based statements of the writer: each is built for a number of rows (see chunked).
var (
	sqlInsMessages = rowsSQL(`INSERT INTO messages (id, app, idempotency_key, request_hash, to_masked, to_hash, country, sender,
 sender_kind, category, body, encoding, segments, status, attempts, created_at, updated_at, detail) VALUES `,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'accepted', 0, ?, ?, ?)`, ``)
	sqlInsSubjectKeys = rowsSQL(`INSERT OR IGNORE INTO subject_keys (ref, key_id, wrapped) VALUES `, `(?, ?, ?)`, ``)
	sqlInsOutbox      = rowsSQL(`INSERT INTO outbox (message_id, payload, created_at, attempts, next_attempt_at, subject_ref) VALUES `,
		`(?, ?, ?, 0, ?, ?)`, ``)
	sqlInsAudit = rowsSQL(`INSERT INTO audit_events (seq, at, kind, message_id, app, data, sealed, subject_ref, prev_hash, hash) VALUES `,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ``)
	// SQLite-specific: UPDATE ... FROM (VALUES ...) names the columns column1, column2...
	sqlSetSent = rowsSQL(`UPDATE messages SET status = v.column2, provider = v.column3, provider_message_id = v.column4,
 attempts = v.column5, updated_at = v.column6 FROM (VALUES `, `(?, ?, ?, ?, ?, ?)`, `) AS v WHERE messages.id = v.column1`)
	sqlSetStatus = rowsSQL(`UPDATE messages SET status = v.column2, attempts = v.column3, updated_at = v.column4 FROM (VALUES `,
		`(?, ?, ?, ?)`, `) AS v WHERE messages.id = v.column1`)
	sqlDelOutbox = rowsSQL(`DELETE FROM outbox WHERE message_id IN (`, `?`, `)`)
	sqlStates    = rowsSQL(`SELECT id, app, status, provider, provider_message_id, attempts FROM messages WHERE id IN (`, `?`, `)`)
	sqlOwners    = rowsSQL(`SELECT provider, provider_message_id, id FROM messages WHERE provider_message_id <> ''
 AND (provider, provider_message_id) IN (VALUES `, `(?, ?)`, `)`)
	sqlIdempotent = rowsSQL(`SELECT app, idempotency_key, id, request_hash, status, created_at FROM messages
 WHERE idempotency_key IS NOT NULL AND (app, idempotency_key) IN (VALUES `, `(?, ?)`, `)`)
)

// maxChunk is the most rows one set-based statement takes. Statements are prepared for powers of
// two up to it, so a run of n rows takes at most log2(maxChunk)+1 statements plus one per maxChunk.
const maxChunk = 64

// rowsSQL returns a builder of a statement for n rows: head, n copies of row joined by commas, tail.
func rowsSQL(head, row, tail string) func(n int) string {
	return func(n int) string {
		var b strings.Builder
		b.Grow(len(head) + n*(len(row)+2) + len(tail))
		b.WriteString(head)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
		}
		b.WriteString(tail)
		return b.String()
	}
}

// chunkSize returns the largest power of two not above min(rows, maxChunk).
func chunkSize(rows int) int {
	n := 1
	for n*2 <= rows && n*2 <= maxChunk {
		n *= 2
	}
	return n
}

// sqliteWriteStmts are the writer connection's prepared statements. It also drives the writer's
// transactions (batchTx); SQLite-specific: BEGIN IMMEDIATE takes the write lock up front.
type sqliteWriteStmts struct {
	conn *sql.Conn

	begin, commit, rollback, savepoint, release, rollbackTo *sql.Stmt

	insAudit, insOutbox, msgState, insProviderID, setRetry, setAttempts *sql.Stmt

	all []*sql.Stmt
	// sized caches the set-based statements by builder and row count.
	sized map[sizedKey]*sql.Stmt
	args  []any
}

type sizedKey struct {
	q *func(int) string
	n int
}

var _ batchTx = (*sqliteWriteStmts)(nil)

func prepareSQLiteWrite(ctx context.Context, conn *sql.Conn) (*sqliteWriteStmts, error) {
	w := &sqliteWriteStmts{conn: conn, sized: map[sizedKey]*sql.Stmt{}}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&w.begin, "BEGIN IMMEDIATE"}, {&w.commit, "COMMIT"}, {&w.rollback, "ROLLBACK"},
		{&w.savepoint, "SAVEPOINT op"}, {&w.release, "RELEASE op"}, {&w.rollbackTo, "ROLLBACK TO op"},
		{&w.insAudit, qInsAudit}, {&w.insOutbox, qInsOutbox}, {&w.msgState, qMsgState},
		{&w.insProviderID, qInsProviderID}, {&w.setRetry, qSetRetry}, {&w.setAttempts, qSetAttempts},
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
	for _, st := range w.sized {
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

// stmt returns the statement of q for n rows, preparing it the first time.
func (w *sqliteWriteStmts) stmt(q *func(int) string, n int) (*sql.Stmt, error) {
	k := sizedKey{q, n}
	if st, ok := w.sized[k]; ok {
		return st, nil
	}
	st, err := w.conn.PrepareContext(bg, (*q)(n))
	if err != nil {
		return nil, err
	}
	w.sized[k] = st
	return st, nil
}

// chunks runs q over rows 0..n-1 in chunks: bind appends row i's arguments, run executes one chunk.
func (w *sqliteWriteStmts) chunks(q *func(int) string, n int, bind func(i int, args []any) []any,
	run func(st *sql.Stmt, args []any) error) error {
	for i := 0; i < n; {
		size := chunkSize(n - i)
		st, err := w.stmt(q, size)
		if err != nil {
			return err
		}
		args := w.args[:0]
		for k := i; k < i+size; k++ {
			args = bind(k, args)
		}
		err = run(st, args)
		clear(args)
		w.args = args[:0]
		if err != nil {
			return err
		}
		i += size
	}
	return nil
}

// execChunks executes q over rows 0..n-1 in chunks.
func (w *sqliteWriteStmts) execChunks(q *func(int) string, n int, bind func(i int, args []any) []any) error {
	return w.chunks(q, n, bind, func(st *sql.Stmt, args []any) error {
		_, err := st.ExecContext(bg, args...)
		return err
	})
}

// queryChunks runs the query q over rows 0..n-1 in chunks and calls scan for every result row.
func (w *sqliteWriteStmts) queryChunks(q *func(int) string, n int, bind func(i int, args []any) []any,
	scan func(rows *sql.Rows) error) error {
	return w.chunks(q, n, bind, func(st *sql.Stmt, args []any) error {
		rows, err := st.QueryContext(bg, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// sqliteReadStmts are prepared on the read-only pool.
type sqliteReadStmts struct {
	getMessage, getHistory, pending, correlate, count, audit, findIdempotent *sql.Stmt
	// facts and subjectKey run for every recipient the proxy has not seen lately: prepared once,
	// they cost no SQL parsing per message.
	facts, subjectKey *sql.Stmt
	all               []*sql.Stmt
}

func prepareSQLiteRead(ctx context.Context, db *sql.DB) (*sqliteReadStmts, error) {
	r := &sqliteReadStmts{}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&r.getMessage, qGetMessage}, {&r.getHistory, qGetHistory}, {&r.pending, qPending},
		{&r.correlate, qCorrelate}, {&r.count, qCount}, {&r.audit, qAudit}, {&r.findIdempotent, qFindIdempotent},
		{&r.facts, qRecipientFacts}, {&r.subjectKey, qSubjectKey},
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
