package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/smsproxy/smsproxy/proxy/audit"
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

// Accept records a new message with status "accepted", a "message.accepted" audit event holding
// a.Audit (the first entry of its status history) and its outbox row, all in one transaction, and
// returns once that transaction is durable. When the app already has a message with
// a.IdempotencyKey, nothing is written: the earlier message is returned with Duplicate set if its
// request hash is the same, and an *Error with code "idempotency_conflict" is returned if it
// differs. An id already in use gives code "duplicate_id".
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
	op := &acceptOp{a: a, key: nullable(a.IdempotencyKey), detail: detail, audit: audit, payload: a.Payload,
		created: orNow(a.CreatedAt).UnixNano()}
	if op.payload == nil {
		op.payload = []byte{}
	}
	if err := s.seal(ctx, op); err != nil {
		return AcceptResult{}, err
	}
	if err := s.gc.submitSet(ctx, op); err != nil {
		return AcceptResult{}, err
	}
	if op.ref != "" {
		s.trail.keys.settle(op.ref, op.keyGen)
	}
	return op.res, nil
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
	op := &refuseOp{id: nullable(r.MessageID), app: r.App, data: data, at: orNow(r.At).UnixNano(), personal: r.Personal}
	if len(r.Personal) > 0 {
		if !validE164(r.To) {
			return invalid("sealing a refusal's personal data needs its recipient in E.164")
		}
		if op.key, err = s.trail.sealer.Key(ctx, s.trail.kr.LookupHash(r.To)); err != nil {
			return fmt.Errorf("store: refuse: %w", err)
		}
	}
	if err := s.gc.submitSet(ctx, op); err != nil {
		return err
	}
	if op.key != nil {
		s.trail.keys.settle(op.key.Ref(), op.keyGen)
	}
	return nil
}

// seal prepares an Accept's sealing on the caller's goroutine: the recipient's lookup hash becomes
// to_hash, its subject key (created on first use) seals the outbox payload now and the audit event's
// personal part in the writer.
func (s *SQLite) seal(ctx context.Context, op *acceptOp) error {
	a := &op.a
	if a.To == "" {
		if len(a.Personal) > 0 {
			return invalid("sealing a message's personal data needs its recipient")
		}
		return nil
	}
	if !validE164(a.To) {
		return invalid("the recipient must be in E.164")
	}
	op.ref = s.trail.kr.LookupHash(a.To)
	a.ToHash = op.ref
	key, err := s.trail.sealer.Key(ctx, op.ref)
	if err != nil {
		return fmt.Errorf("store: accept: %w", err)
	}
	if op.payload, err = key.Seal(op.payload, outboxAAD(a.ID)); err != nil {
		return fmt.Errorf("store: accept: %w", err)
	}
	op.subject, op.personal = key, a.Personal
	a.To, a.Personal = "", nil
	return nil
}

// state returns a message's app and status on the writer's connection.
func (s *SQLite) state(id string) (app, status string, err error) {
	err = s.w.msgState.QueryRowContext(bg, id).Scan(&app, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	return app, status, err
}

func (s *SQLite) audit(at int64, kind, id, app string, data any) error {
	_, err := s.appendEvent(auditRow{at: at, kind: kind, id: id, app: app, data: mustJSON(data)})
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
	PossibleDuplicate bool   `json:"possible_duplicate,omitempty"`
}

// RecordSent records, in one grouped write, that providers took the given messages: each accepted
// message becomes "sent" with its provider and provider message id, gains a "message.sent" audit
// event, and loses its outbox row; the provider message id is kept for receipts. Recording a send
// again is harmless: a known provider message id changes nothing, and a further provider message id
// for a message already sent is only added for correlation (with a "message.sent" event marked
// repeat). A provider message id that already belongs to another message is not recorded again.
// Messages that do not exist are skipped and reported in an error matching ErrNotFound after the
// others have committed.
func (s *SQLite) RecordSent(ctx context.Context, sent []Sent) error {
	if len(sent) == 0 {
		return nil
	}
	for _, x := range sent {
		if x.MessageID == "" || x.Provider == "" || x.ProviderMessageID == "" {
			return invalid("a sent record needs a message id, a provider and a provider message id")
		}
	}
	op := &sentOp{sent: sent, data: make([]string, len(sent))}
	for i, x := range sent {
		op.data[i] = mustJSON(sentAudit{x.Provider, x.ProviderMessageID, x.Attempts, false, x.PossibleDuplicate})
	}
	if err := s.gc.submitSetLazy(ctx, op); err != nil {
		return err
	}
	if s.corr != nil {
		for _, l := range op.learned {
			s.corr.Add(l.key, l.c)
		}
	}
	return notFoundIn(op.missing, len(sent))
}

type failedAudit struct {
	Provider       string `json:"provider,omitempty"`
	Code           string `json:"code"`
	Attempts       int    `json:"attempts,omitempty"`
	MaybeDelivered bool   `json:"maybe_delivered,omitempty"`
}

// RecordFailed records, in one grouped write, that the given messages will not be sent: each one
// not yet final becomes "failed" with the code, gains a "message.failed" audit event, and loses its
// outbox row. Messages already final are left as they are. Messages that do not exist are skipped
// and reported in an error matching ErrNotFound after the others have committed.
func (s *SQLite) RecordFailed(ctx context.Context, failed []Failed) error {
	if len(failed) == 0 {
		return nil
	}
	for _, x := range failed {
		if x.MessageID == "" || x.Code == "" {
			return invalid("a failed record needs a message id and a code")
		}
	}
	op := &failedOp{failed: failed, data: make([]string, len(failed))}
	for i, x := range failed {
		op.data[i] = mustJSON(failedAudit{x.Provider, x.Code, x.Attempts, x.MaybeDelivered})
	}
	if err := s.gc.submitSetLazy(ctx, op); err != nil {
		return err
	}
	return notFoundIn(op.missing, len(failed))
}

type retryAudit struct {
	Attempts      int      `json:"attempts"`
	NextAttemptAt int64    `json:"next_attempt_at"`
	Code          string   `json:"code,omitempty"`
	MaybeSent     []string `json:"maybe_sent,omitempty"`
}

// RecordRetry notes that attempt number attempts of message id failed and that the next one is due
// at nextAt: it updates the outbox row and the message's attempt count and writes a
// "message.retry" audit event. It returns ErrNotFound when the message has no outbox row (it does
// not exist or is no longer waiting to be sent).
func (s *SQLite) RecordRetry(ctx context.Context, id string, attempts int, nextAt time.Time, code string, maybeSent []string) error {
	if id == "" || attempts < 0 {
		return invalid("a retry needs a message id and a non-negative attempt count")
	}
	next := nanos(nextAt)
	now := time.Now().UnixNano()
	w := s.w
	return s.gc.submitLazy(ctx, func() error {
		s.live.forget(id)
		app, _, err := s.state(id)
		if err != nil {
			return err
		}
		r, err := w.setRetry.ExecContext(bg, attempts, next, JoinProviders(maybeSent), id)
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
		return s.audit(now, AuditRetry, id, app, retryAudit{attempts, next, code, maybeSent})
	})
}

func corrKey(provider, providerMessageID string) string {
	return provider + "\x00" + providerMessageID
}

type receiptAudit struct {
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	Code              string `json:"code,omitempty"`
	// ProviderAt is the time the provider put on the receipt, in unix nanoseconds; absent when it
	// gave none. It is kept as data only: the event's time and updated_at are the store's clock.
	ProviderAt int64 `json:"provider_at,omitempty"`
}

// ApplyReceipt applies a delivery receipt to the message it correlates with through the provider
// message id: the status changes and a "message.<status>" audit event is written. A receipt for a
// message already final changes nothing and returns Applied false, since providers repeat
// receipts. An unknown provider message id gives ErrNotFound. The status change and its event are
// timed by the store's clock, not the receipt's: a provider's clock must not decide retention or
// where the event falls in an export by time. The receipt's own time is kept in the event's data.
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
	op := &receiptOp{r: r, kind: kind, c: c, at: time.Now().UnixNano(),
		data: mustJSON(receiptAudit{r.Provider, r.ProviderMessageID, r.Code, r.ProviderAt()})}
	if err := s.gc.submitSetLazy(ctx, op); err != nil {
		return ReceiptResult{}, err
	}
	return op.res, nil
}

// historyData holds the fields of the store's own audit events that a status history shows.
type historyData struct {
	Provider string `json:"provider"`
	Code     string `json:"code"`
	Repeat   bool   `json:"repeat"`
}

// historyEntry turns one of a message's audit events into an entry of its status history: the
// events the store writes when the status changes are the history, and the others (retries,
// repeated sends) are not part of it.
func historyEntry(kind string, at int64, data string) (StatusEntry, bool) {
	e := StatusEntry{At: fromNanos(at)}
	switch kind {
	case AuditAccepted:
		e.Status = StatusAccepted
		return e, true // its data is the caller's, not the store's
	case AuditSent:
		e.Status = StatusSent
	case AuditFailed:
		e.Status = StatusFailed
	case AuditDelivered:
		e.Status = StatusDelivered
	case AuditUndeliverable:
		e.Status = StatusUndeliverable
	default:
		return e, false
	}
	var d historyData
	if json.Unmarshal([]byte(data), &d) == nil {
		if d.Repeat {
			return e, false
		}
		e.Provider, e.Code = d.Provider, d.Code
	}
	if e.Status == StatusSent {
		e.Code = ""
	}
	return e, true
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
	err := s.r.correlate.QueryRowContext(ctx, provider, pmid, provider, pmid).Scan(&c.messageID, &c.app)
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
		var kind, data string
		var at int64
		if err := rows.Scan(&kind, &at, &data); err != nil {
			return MessageView{}, fmt.Errorf("store: get history: %w", err)
		}
		if e, ok := historyEntry(kind, at, data); ok {
			e.Seq = len(v.History) + 1
			v.History = append(v.History, e)
		}
	}
	if err := rows.Err(); err != nil {
		return MessageView{}, fmt.Errorf("store: get history: %w", err)
	}
	return v, nil
}

// PendingOutbox lists up to limit outbox rows whose message id sorts after after, in message id
// order; pass the last id seen to get the next page. These are the messages still to dispatch, with
// their payloads opened. A payload whose subject was erased is not listed: its message is failed
// with code "subject_erased" (and one that does not open, with "outbox_corrupt") instead.
func (s *SQLite) PendingOutbox(ctx context.Context, limit int, after string) ([]OutboxItem, error) {
	items, refs, err := s.pendingOutbox(ctx, limit, after)
	if err != nil {
		return nil, err
	}
	return openOutbox(ctx, s.trail.sealer, items, refs, s.RecordFailed)
}

// openOutbox opens the sealed payloads of items (refs[i] is item i's subject, "" when not sealed),
// fails the messages whose payload cannot be opened any more and returns the others.
func openOutbox(ctx context.Context, sealer *audit.Sealer, items []OutboxItem, refs []string,
	fail func(context.Context, []Failed) error) ([]OutboxItem, error) {
	out := items[:0]
	var failed []Failed
	for i, it := range items {
		if refs[i] != "" {
			pl, err := sealer.Open(ctx, refs[i], it.Payload, outboxAAD(it.MessageID))
			switch audit.CodeOf(err) {
			case "":
				it.Payload = pl
			case audit.CodeSubjectErased:
				failed = append(failed, Failed{MessageID: it.MessageID, Code: CodeSubjectErased, Attempts: it.Attempts})
				continue
			case audit.CodeSealedInvalid:
				failed = append(failed, Failed{MessageID: it.MessageID, Code: CodeOutboxCorrupt, Attempts: it.Attempts})
				continue
			default: // the keyring lacks a data key, or the key table is unreadable: nothing to fail
				return nil, fmt.Errorf("store: pending outbox: %w", err)
			}
		}
		out = append(out, it)
	}
	if len(failed) > 0 {
		if err := fail(ctx, failed); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("store: pending outbox: fail unopenable payloads: %w", err)
		}
	}
	return out, nil
}

func (s *SQLite) pendingOutbox(ctx context.Context, limit int, after string) ([]OutboxItem, []string, error) {
	if s.closed.Load() {
		return nil, nil, ErrClosed
	}
	if limit <= 0 {
		return nil, nil, invalid("limit must be positive")
	}
	rows, err := s.r.pending.QueryContext(ctx, after, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: pending outbox: %w", err)
	}
	defer rows.Close()
	var items []OutboxItem
	var refs []string
	for rows.Next() {
		var it OutboxItem
		var created, next int64
		var ref, maybe string
		if err := rows.Scan(&it.MessageID, &it.Payload, &it.Attempts, &created, &next, &ref, &maybe); err != nil {
			return nil, nil, fmt.Errorf("store: pending outbox: %w", err)
		}
		it.CreatedAt, it.NextAttemptAt, it.MaybeSent = fromNanos(created), fromNanos(next), SplitProviders(maybe)
		items, refs = append(items, it), append(refs, ref)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("store: pending outbox: %w", err)
	}
	return items, refs, nil
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
	err := s.r.findIdempotent.QueryRowContext(ctx, app, key).Scan(&id)
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
