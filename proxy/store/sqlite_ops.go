package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

func invalid(msg string) error { return &Error{Code: CodeInvalidArgument, Message: msg} }

// jsonText returns b as JSON text for a JSON column, "{}" when empty, or an error when b is not JSON.
func jsonText(field string, b []byte) (string, error) {
	if len(b) == 0 {
		return "{}", nil
	}
	if !json.Valid(b) {
		return "", invalid(field + " is not valid JSON")
	}
	return string(b), nil
}

// mustJSON encodes values the store builds itself; they always encode.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Accept records a new message with status "accepted", its first status row, a "message.accepted"
// audit event holding a.Audit and its outbox row, all in one transaction, and returns once that
// transaction is durable. When the app already has a message with a.IdempotencyKey, nothing is
// written: the earlier message is returned with Duplicate set if its request hash is the same, and
// an *Error with code "idempotency_conflict" is returned if it differs. An id already in use gives
// code "duplicate_id".
func (s *SQLite) Accept(ctx context.Context, a Accepted) (AcceptResult, error) {
	if a.ID == "" || a.App == "" {
		return AcceptResult{}, invalid("a message needs an id and an app")
	}
	if a.Segments < 0 {
		return AcceptResult{}, invalid("segments must not be negative")
	}
	detail, err := jsonText("detail", a.Detail)
	if err != nil {
		return AcceptResult{}, err
	}
	audit, err := jsonText("audit data", a.Audit)
	if err != nil {
		return AcceptResult{}, err
	}
	payload := a.Payload
	if payload == nil {
		payload = []byte{}
	}
	created := orNow(a.CreatedAt).UnixNano()
	key := nullable(a.IdempotencyKey)
	w := s.w
	var res AcceptResult
	err = s.gc.submit(ctx, func() error {
		if key != nil {
			var id, hash, status string
			var at int64
			err := w.idempotency.QueryRowContext(bg, a.App, key).Scan(&id, &hash, &status, &at)
			switch {
			case err == nil:
				if hash != a.RequestHash {
					return &Error{Code: CodeIdempotencyConflict, Message: "the idempotency key was already used for a different request"}
				}
				res = AcceptResult{ID: id, Duplicate: true, Status: status, CreatedAt: fromNanos(at)}
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		if _, err := w.insMessage.ExecContext(bg, a.ID, a.App, key, a.RequestHash, a.ToMasked, a.ToHash, a.Country,
			a.Sender, a.SenderKind, a.Category, a.Body, a.Encoding, a.Segments, created, created, detail); err != nil {
			if isUniqueViolation(err) {
				return &Error{Code: CodeDuplicateID, Message: "a message with this id already exists"}
			}
			return err
		}
		if _, err := w.insStatus.ExecContext(bg, a.ID, StatusAccepted, created, "", "", "", a.ID); err != nil {
			return err
		}
		if _, err := w.insAudit.ExecContext(bg, created, AuditAccepted, a.ID, a.App, audit); err != nil {
			return err
		}
		if _, err := w.insOutbox.ExecContext(bg, a.ID, payload, created, created); err != nil {
			return err
		}
		res = AcceptResult{ID: a.ID, Status: StatusAccepted, CreatedAt: time.Unix(0, created)}
		return nil
	})
	if err != nil {
		return AcceptResult{}, err
	}
	return res, nil
}

// Refuse records a "message.refused" audit event with r.Data, grouped with other writes.
func (s *SQLite) Refuse(ctx context.Context, r Refused) error {
	if r.App == "" {
		return invalid("a refusal needs an app")
	}
	data, err := jsonText("audit data", r.Data)
	if err != nil {
		return err
	}
	at := orNow(r.At).UnixNano()
	return s.gc.submit(ctx, func() error {
		_, err := s.w.insAudit.ExecContext(bg, at, AuditRefused, nullable(r.MessageID), r.App, data)
		return err
	})
}

// state returns a message's app and status on the writer's connection.
func (s *SQLite) state(id string) (app, status string, err error) {
	err = s.w.msgState.QueryRowContext(bg, id).Scan(&app, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	return app, status, err
}

func (s *SQLite) history(id string, status string, at int64, provider, code, detail string) error {
	_, err := s.w.insStatus.ExecContext(bg, id, status, at, provider, code, detail, id)
	return err
}

func (s *SQLite) audit(at int64, kind, id, app string, data any) error {
	_, err := s.w.insAudit.ExecContext(bg, at, kind, id, app, mustJSON(data))
	return err
}

func notFoundIn(missing []string, total int) error {
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("store: %d of %d messages not found (first %q): %w", len(missing), total, missing[0], ErrNotFound)
}

type sentAudit struct {
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	Attempts          int    `json:"attempts,omitempty"`
	Repeat            bool   `json:"repeat,omitempty"`
}

// RecordSent records, in one grouped write, that providers took the given messages: each accepted
// message becomes "sent" with its provider and provider message id, gains a status row and a
// "message.sent" audit event, and loses its outbox row; the provider message id is kept for
// receipts. Recording a send again is harmless: a known provider message id changes nothing, and a
// further provider message id for a message already sent is only added for correlation (with a
// "message.sent" event marked repeat). Messages that do not exist are skipped and reported in an
// error matching ErrNotFound after the others have committed.
func (s *SQLite) RecordSent(ctx context.Context, sent []Sent) error {
	if len(sent) == 0 {
		return nil
	}
	for _, x := range sent {
		if x.MessageID == "" || x.Provider == "" || x.ProviderMessageID == "" {
			return invalid("a sent record needs a message id, a provider and a provider message id")
		}
	}
	w := s.w
	var missing []string
	var learned []correlation
	var keys []string
	err := s.gc.submit(ctx, func() error {
		missing, learned, keys = missing[:0], learned[:0], keys[:0]
		for _, x := range sent {
			app, status, err := s.state(x.MessageID)
			if errors.Is(err, ErrNotFound) {
				missing = append(missing, x.MessageID)
				continue
			} else if err != nil {
				return err
			}
			at := orNow(x.At).UnixNano()
			r, err := w.insProviderID.ExecContext(bg, x.Provider, x.ProviderMessageID, x.MessageID)
			if err != nil {
				return err
			}
			added, err := r.RowsAffected()
			if err != nil {
				return err
			}
			if added > 0 {
				learned = append(learned, correlation{messageID: x.MessageID, app: app})
				keys = append(keys, corrKey(x.Provider, x.ProviderMessageID))
			}
			switch {
			case status == StatusAccepted:
				if added == 0 {
					s.log.Warn("store: provider message id already belongs to another message",
						"provider", x.Provider, "message_id", x.MessageID)
				}
				if _, err := w.setSent.ExecContext(bg, x.Provider, x.ProviderMessageID, x.Attempts, x.Attempts, at, x.MessageID); err != nil {
					return err
				}
				if err := s.history(x.MessageID, StatusSent, at, x.Provider, "", ""); err != nil {
					return err
				}
				if err := s.audit(at, AuditSent, x.MessageID, app, sentAudit{x.Provider, x.ProviderMessageID, x.Attempts, false}); err != nil {
					return err
				}
			case added > 0:
				if err := s.audit(at, AuditSent, x.MessageID, app, sentAudit{x.Provider, x.ProviderMessageID, x.Attempts, true}); err != nil {
					return err
				}
			}
			if _, err := w.delOutbox.ExecContext(bg, x.MessageID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.corr != nil {
		for i, c := range learned {
			s.corr.Add(keys[i], c)
		}
	}
	return notFoundIn(missing, len(sent))
}

type failedAudit struct {
	Provider string `json:"provider,omitempty"`
	Code     string `json:"code"`
	Attempts int    `json:"attempts,omitempty"`
}

// RecordFailed records, in one grouped write, that the given messages will not be sent: each one
// not yet final becomes "failed" with the code, gains a status row and a "message.failed" audit
// event, and loses its outbox row. Messages already final are left as they are. Messages that do
// not exist are skipped and reported in an error matching ErrNotFound after the others have committed.
func (s *SQLite) RecordFailed(ctx context.Context, failed []Failed) error {
	if len(failed) == 0 {
		return nil
	}
	for _, x := range failed {
		if x.MessageID == "" || x.Code == "" {
			return invalid("a failed record needs a message id and a code")
		}
	}
	w := s.w
	var missing []string
	err := s.gc.submit(ctx, func() error {
		missing = missing[:0]
		for _, x := range failed {
			app, status, err := s.state(x.MessageID)
			if errors.Is(err, ErrNotFound) {
				missing = append(missing, x.MessageID)
				continue
			} else if err != nil {
				return err
			}
			if IsFinal(status) {
				continue
			}
			at := orNow(x.At).UnixNano()
			if _, err := w.setFailed.ExecContext(bg, x.Provider, x.Provider, x.Attempts, x.Attempts, at, x.MessageID); err != nil {
				return err
			}
			if err := s.history(x.MessageID, StatusFailed, at, x.Provider, x.Code, ""); err != nil {
				return err
			}
			if err := s.audit(at, AuditFailed, x.MessageID, app, failedAudit{x.Provider, x.Code, x.Attempts}); err != nil {
				return err
			}
			if _, err := w.delOutbox.ExecContext(bg, x.MessageID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return notFoundIn(missing, len(failed))
}

type retryAudit struct {
	Attempts      int    `json:"attempts"`
	NextAttemptAt int64  `json:"next_attempt_at"`
	Code          string `json:"code,omitempty"`
}

// RecordRetry notes that attempt number attempts of message id failed and that the next one is due
// at nextAt: it updates the outbox row and the message's attempt count and writes a
// "message.retry" audit event. It returns ErrNotFound when the message has no outbox row (it does
// not exist or is no longer waiting to be sent).
func (s *SQLite) RecordRetry(ctx context.Context, id string, attempts int, nextAt time.Time, code string) error {
	if id == "" || attempts < 0 {
		return invalid("a retry needs a message id and a non-negative attempt count")
	}
	next := nanos(nextAt)
	now := time.Now().UnixNano()
	w := s.w
	return s.gc.submit(ctx, func() error {
		app, _, err := s.state(id)
		if err != nil {
			return err
		}
		r, err := w.setRetry.ExecContext(bg, attempts, next, id)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		if _, err := w.setAttempts.ExecContext(bg, attempts, now, id); err != nil {
			return err
		}
		return s.audit(now, AuditRetry, id, app, retryAudit{attempts, next, code})
	})
}

func corrKey(provider, providerMessageID string) string {
	return provider + "\x00" + providerMessageID
}

type receiptAudit struct {
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	Code              string `json:"code,omitempty"`
}

// ApplyReceipt applies a delivery receipt to the message it correlates with through the provider
// message id: the status changes, a status row and a "message.<status>" audit event are written.
// A receipt for a message already final changes nothing and returns Applied false, since providers
// repeat receipts. An unknown provider message id gives ErrNotFound.
func (s *SQLite) ApplyReceipt(ctx context.Context, r Receipt) (ReceiptResult, error) {
	var kind string
	switch r.Status {
	case StatusDelivered:
		kind = AuditDelivered
	case StatusFailed:
		kind = AuditFailed
	case StatusUndeliverable:
		kind = AuditUndeliverable
	default:
		return ReceiptResult{}, invalid("a receipt status must be delivered, failed or undeliverable")
	}
	if r.Provider == "" || r.ProviderMessageID == "" {
		return ReceiptResult{}, invalid("a receipt needs a provider and a provider message id")
	}
	c, err := s.correlate(ctx, r.Provider, r.ProviderMessageID)
	if err != nil {
		return ReceiptResult{}, err
	}
	at := orNow(r.At).UnixNano()
	res := ReceiptResult{MessageID: c.messageID, App: c.app}
	err = s.gc.submit(ctx, func() error {
		_, status, err := s.state(c.messageID)
		if err != nil {
			return err
		}
		if IsFinal(status) {
			res.Status, res.Applied = status, false
			return nil
		}
		if _, err := s.w.setStatus.ExecContext(bg, r.Status, at, c.messageID); err != nil {
			return err
		}
		if err := s.history(c.messageID, r.Status, at, r.Provider, r.Code, ""); err != nil {
			return err
		}
		if err := s.audit(at, kind, c.messageID, c.app, receiptAudit{r.Provider, r.ProviderMessageID, r.Code}); err != nil {
			return err
		}
		res.Status, res.Applied = r.Status, true
		return nil
	})
	if err != nil {
		return ReceiptResult{}, err
	}
	return res, nil
}

// correlate resolves a provider message id through the cache, then the read pool.
func (s *SQLite) correlate(ctx context.Context, provider, pmid string) (correlation, error) {
	if s.closed.Load() {
		return correlation{}, ErrClosed
	}
	key := corrKey(provider, pmid)
	if s.corr != nil {
		if c, ok := s.corr.Get(key); ok {
			return c, nil
		}
	}
	var c correlation
	err := s.r.correlate.QueryRowContext(ctx, provider, pmid).Scan(&c.messageID, &c.app)
	if errors.Is(err, sql.ErrNoRows) {
		return correlation{}, ErrNotFound
	}
	if err != nil {
		return correlation{}, fmt.Errorf("store: correlate receipt: %w", err)
	}
	if s.corr != nil {
		s.corr.Add(key, c)
	}
	return c, nil
}

// Get returns message id of app with its status history. A message of another app is not found.
func (s *SQLite) Get(ctx context.Context, app, id string) (MessageView, error) {
	if s.closed.Load() {
		return MessageView{}, ErrClosed
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return MessageView{}, fmt.Errorf("store: get: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var v MessageView
	var key sql.NullString
	var created, updated int64
	var detail string
	err = tx.StmtContext(ctx, s.r.getMessage).QueryRowContext(ctx, id, app).Scan(&v.ID, &v.App, &key, &v.RequestHash,
		&v.ToMasked, &v.ToHash, &v.Country, &v.Sender, &v.SenderKind, &v.Category, &v.Body, &v.Encoding, &v.Segments,
		&v.Status, &v.Provider, &v.ProviderMessageID, &v.Attempts, &created, &updated, &detail)
	if errors.Is(err, sql.ErrNoRows) {
		return MessageView{}, ErrNotFound
	}
	if err != nil {
		return MessageView{}, fmt.Errorf("store: get: %w", err)
	}
	v.IdempotencyKey = key.String
	v.CreatedAt, v.UpdatedAt = fromNanos(created), fromNanos(updated)
	v.Detail = json.RawMessage(detail)
	rows, err := tx.StmtContext(ctx, s.r.getHistory).QueryContext(ctx, id)
	if err != nil {
		return MessageView{}, fmt.Errorf("store: get history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e StatusEntry
		var at int64
		if err := rows.Scan(&e.Seq, &e.Status, &at, &e.Provider, &e.Code, &e.Detail); err != nil {
			return MessageView{}, fmt.Errorf("store: get history: %w", err)
		}
		e.At = fromNanos(at)
		v.History = append(v.History, e)
	}
	if err := rows.Err(); err != nil {
		return MessageView{}, fmt.Errorf("store: get history: %w", err)
	}
	return v, nil
}

// PendingOutbox lists up to limit outbox rows whose message id sorts after after, in message id
// order; pass the last id seen to get the next page. These are the messages still to dispatch.
func (s *SQLite) PendingOutbox(ctx context.Context, limit int, after string) ([]OutboxItem, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		return nil, invalid("limit must be positive")
	}
	rows, err := s.r.pending.QueryContext(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: pending outbox: %w", err)
	}
	defer rows.Close()
	var items []OutboxItem
	for rows.Next() {
		var it OutboxItem
		var created, next int64
		if err := rows.Scan(&it.MessageID, &it.Payload, &it.Attempts, &created, &next); err != nil {
			return nil, fmt.Errorf("store: pending outbox: %w", err)
		}
		it.CreatedAt, it.NextAttemptAt = fromNanos(created), fromNanos(next)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: pending outbox: %w", err)
	}
	return items, nil
}

// Audit lists up to limit audit events whose sequence number is greater than after, oldest first.
func (s *SQLite) Audit(ctx context.Context, after int64, limit int) ([]AuditEvent, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		return nil, invalid("limit must be positive")
	}
	rows, err := s.r.audit.QueryContext(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	defer rows.Close()
	var evs []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var at int64
		var id sql.NullString
		var data string
		if err := rows.Scan(&e.Seq, &at, &e.Kind, &id, &e.App, &data); err != nil {
			return nil, fmt.Errorf("store: audit: %w", err)
		}
		e.At, e.MessageID, e.Data = fromNanos(at), id.String, json.RawMessage(data)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	return evs, nil
}

// CountByStatus counts the stored messages per status.
func (s *SQLite) CountByStatus(ctx context.Context) (map[string]int, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := s.r.count.QueryContext(ctx)
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

// FindIdempotent returns app's message stored under the idempotency key, if there is one, so that a
// repeated request is answered as the first was before anything else is decided.
func (s *SQLite) FindIdempotent(ctx context.Context, app, key string) (MessageView, bool, error) {
	if s.closed.Load() {
		return MessageView{}, false, ErrClosed
	}
	if key == "" {
		return MessageView{}, false, nil
	}
	var id string
	err := s.rdb.QueryRowContext(ctx, qFindIdempotent, app, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return MessageView{}, false, nil
	}
	if err != nil {
		return MessageView{}, false, fmt.Errorf("store: find idempotent: %w", err)
	}
	v, err := s.Get(ctx, app, id)
	if errors.Is(err, ErrNotFound) {
		return MessageView{}, false, nil
	}
	return v, err == nil, err
}
