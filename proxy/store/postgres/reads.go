package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/store"
)

const (
	qGetMessage = `SELECT id, app, idempotency_key, request_hash, to_masked, to_hash, country, sender, sender_kind, category,
 body, encoding, segments, status, provider, provider_message_id, attempts, created_at, updated_at, detail::text
 FROM messages WHERE id = $1 AND app = $2`
	// qGetHistory reads the audit events that make a message's status history.
	qGetHistory = `SELECT kind, at, COALESCE(data->>'provider', ''), COALESCE(data->>'code', ''), COALESCE(data->>'repeat', '')
 FROM audit_events WHERE message_id = $1
 AND kind IN ('message.accepted', 'message.sent', 'message.failed', 'message.delivered', 'message.undeliverable')
 ORDER BY seq`
	qPending = `SELECT message_id, payload, attempts, created_at, next_attempt_at, subject_ref, maybe_sent FROM outbox
 WHERE message_id > $1 ORDER BY message_id LIMIT $2`
	qAudit = `SELECT seq, at, kind, COALESCE(message_id, ''), app, data::text FROM audit_events
 WHERE seq > $1 ORDER BY seq LIMIT $2`
)

// readOnlyBegin starts a read-only transaction on one snapshot, so that what a read returns in
// several queries is consistent, without a round trip of its own: it is pipelined with them.
const readOnlyBegin = `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY`

// historyEntry turns one of a message's audit events into an entry of its status history: the
// events the store writes when the status changes are the history; repeated sends are not.
func historyEntry(kind string, at int64, provider, code, repeat string) (store.StatusEntry, bool) {
	e := store.StatusEntry{At: fromNanos(at)}
	switch kind {
	case store.AuditAccepted:
		e.Status = store.StatusAccepted
		return e, true // its data is the caller's, not the store's
	case store.AuditSent:
		if repeat == "true" {
			return e, false
		}
		e.Status, e.Provider = store.StatusSent, provider
	case store.AuditFailed:
		e.Status, e.Provider, e.Code = store.StatusFailed, provider, code
	case store.AuditDelivered:
		e.Status, e.Provider, e.Code = store.StatusDelivered, provider, code
	case store.AuditUndeliverable:
		e.Status, e.Provider, e.Code = store.StatusUndeliverable, provider, code
	default:
		return e, false
	}
	return e, true
}

// Get returns message id of app with its status history, read on one snapshot. A message of
// another app is not found.
func (p *Postgres) Get(ctx context.Context, app, id string) (store.MessageView, error) {
	if p.closed.Load() {
		return store.MessageView{}, store.ErrClosed
	}
	b := &pgx.Batch{}
	b.Queue(readOnlyBegin)
	b.Queue(qGetMessage, id, app)
	b.Queue(qGetHistory, id)
	b.Queue("COMMIT")
	br := p.pool.SendBatch(ctx, b)
	v, err := readMessage(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: get: %w", cerr)
	}
	if err != nil {
		return store.MessageView{}, err
	}
	return v, nil
}

func readMessage(br pgx.BatchResults) (store.MessageView, error) {
	var v store.MessageView
	if _, err := br.Exec(); err != nil {
		return v, fmt.Errorf("store: get: %w", err)
	}
	var key *string
	var created, updated int64
	var detail string
	err := br.QueryRow().Scan(&v.ID, &v.App, &key, &v.RequestHash,
		&v.ToMasked, &v.ToHash, &v.Country, &v.Sender, &v.SenderKind, &v.Category, &v.Body, &v.Encoding, &v.Segments,
		&v.Status, &v.Provider, &v.ProviderMessageID, &v.Attempts, &created, &updated, &detail)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, store.ErrNotFound
	}
	if err != nil {
		return v, fmt.Errorf("store: get: %w", err)
	}
	if key != nil {
		v.IdempotencyKey = *key
	}
	v.CreatedAt, v.UpdatedAt = fromNanos(created), fromNanos(updated)
	v.Detail = json.RawMessage(detail)
	rows, err := br.Query()
	if err != nil {
		return v, fmt.Errorf("store: get history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, provider, code, repeat string
		var at int64
		if err := rows.Scan(&kind, &at, &provider, &code, &repeat); err != nil {
			return v, fmt.Errorf("store: get history: %w", err)
		}
		if e, ok := historyEntry(kind, at, provider, code, repeat); ok {
			e.Seq = len(v.History) + 1
			v.History = append(v.History, e)
		}
	}
	if err := rows.Err(); err != nil {
		return v, fmt.Errorf("store: get history: %w", err)
	}
	return v, nil
}

// FindIdempotent returns app's message stored under the idempotency key, if there is one, so that a
// repeated request is answered as the first was before anything else is decided.
func (p *Postgres) FindIdempotent(ctx context.Context, app, key string) (store.MessageView, bool, error) {
	if p.closed.Load() {
		return store.MessageView{}, false, store.ErrClosed
	}
	if key == "" {
		return store.MessageView{}, false, nil
	}
	var id string
	err := p.pool.QueryRow(ctx, `SELECT id FROM messages WHERE app = $1 AND idempotency_key = $2`, app, key).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.MessageView{}, false, nil
	}
	if err != nil {
		return store.MessageView{}, false, fmt.Errorf("store: find idempotent: %w", err)
	}
	v, err := p.Get(ctx, app, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.MessageView{}, false, nil
	}
	return v, err == nil, err
}

// PendingOutbox lists up to limit outbox rows whose message id sorts (bytewise) after after, in
// message id order; pass the last id seen to get the next page. These are the messages still to
// dispatch, claimed or not: replicas sharing the database use ClaimOutbox instead.
func (p *Postgres) PendingOutbox(ctx context.Context, limit int, after string) ([]store.OutboxItem, error) {
	if p.closed.Load() {
		return nil, store.ErrClosed
	}
	if limit <= 0 {
		return nil, invalid("limit must be positive")
	}
	rows, err := p.pool.Query(ctx, qPending, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: pending outbox: %w", err)
	}
	items, refs, err := scanOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("store: pending outbox: %w", err)
	}
	return p.openOutbox(ctx, items, refs)
}

// openOutbox opens the sealed payloads of items (refs[i] is item i's subject, "" when not sealed),
// fails the messages whose payload cannot be opened any more (code "subject_erased" after an
// erasure, "outbox_corrupt" when it does not authenticate) and returns the others.
func (p *Postgres) openOutbox(ctx context.Context, items []store.OutboxItem, refs []string) ([]store.OutboxItem, error) {
	out := items[:0]
	var failed []store.Failed
	for i, it := range items {
		if refs[i] != "" {
			pl, err := p.tr.sealer.Open(ctx, refs[i], it.Payload, outboxAAD(it.MessageID))
			switch audit.CodeOf(err) {
			case "":
				it.Payload = pl
			case audit.CodeSubjectErased:
				failed = append(failed, store.Failed{MessageID: it.MessageID, Code: store.CodeSubjectErased, Attempts: it.Attempts})
				continue
			case audit.CodeSealedInvalid:
				failed = append(failed, store.Failed{MessageID: it.MessageID, Code: store.CodeOutboxCorrupt, Attempts: it.Attempts})
				continue
			default: // the keyring lacks a data key, or the key table is unreadable: nothing to fail
				return nil, fmt.Errorf("store: outbox: %w", err)
			}
		}
		out = append(out, it)
	}
	if len(failed) > 0 {
		if err := p.RecordFailed(ctx, failed); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("store: outbox: fail unopenable payloads: %w", err)
		}
	}
	return out, nil
}

// scanOutbox reads rows of (message_id, payload, attempts, created_at, next_attempt_at,
// subject_ref) and closes them; it returns the items and their subjects.
func scanOutbox(rows pgx.Rows) ([]store.OutboxItem, []string, error) {
	defer rows.Close()
	var items []store.OutboxItem
	var refs []string
	for rows.Next() {
		var it store.OutboxItem
		var created, next int64
		var ref, maybe string
		if err := rows.Scan(&it.MessageID, &it.Payload, &it.Attempts, &created, &next, &ref, &maybe); err != nil {
			return nil, nil, err
		}
		it.CreatedAt, it.NextAttemptAt, it.MaybeSent = fromNanos(created), fromNanos(next), store.SplitProviders(maybe)
		items, refs = append(items, it), append(refs, ref)
	}
	return items, refs, rows.Err()
}

// Audit lists up to limit audit events whose sequence number is greater than after, oldest first.
//
// Sequence numbers are handed out under the chain head's lock as each batch commits, so events
// become visible in seq order, whichever replica wrote them.
func (p *Postgres) Audit(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	if p.closed.Load() {
		return nil, store.ErrClosed
	}
	if limit <= 0 {
		return nil, invalid("limit must be positive")
	}
	rows, err := p.pool.Query(ctx, qAudit, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	defer rows.Close()
	var evs []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var at int64
		var data string
		if err := rows.Scan(&e.Seq, &at, &e.Kind, &e.MessageID, &e.App, &data); err != nil {
			return nil, fmt.Errorf("store: audit: %w", err)
		}
		e.At, e.Data = fromNanos(at), json.RawMessage(data)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	return evs, nil
}

// CountByStatus counts the stored messages per status.
func (p *Postgres) CountByStatus(ctx context.Context) (map[string]int, error) {
	if p.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := p.pool.Query(ctx, `SELECT status, count(*) FROM messages GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: count: %w", err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("store: count: %w", err)
		}
		m[st] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: count: %w", err)
	}
	return m, nil
}
