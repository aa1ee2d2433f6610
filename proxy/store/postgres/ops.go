package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/smsproxy/smsproxy/proxy/store"
)

func invalid(msg string) error { return &store.Error{Code: store.CodeInvalidArgument, Message: msg} }

// jsonText returns b as JSON text for a json column, "{}" when empty, or an error when b is not JSON.
func jsonText(field string, b []byte) (string, error) {
	if len(b) == 0 {
		return "{}", nil
	}
	if !json.Valid(b) || strings.Contains(string(b), `\u0000`) {
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

// checkText refuses strings PostgreSQL's text type cannot hold (a NUL, invalid UTF-8), so that
// such input fails as invalid_argument before it reaches a shared batch.
func checkText(what string, ss ...string) error {
	for _, s := range ss {
		if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
			return invalid(what + " holds a NUL byte or invalid UTF-8")
		}
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// finalStatuses is the SQL list of statuses a message never leaves.
const finalStatuses = `('delivered', 'failed', 'undeliverable')`

// purgedStatuses is the SQL list of statuses whose messages the retention purge takes: the final
// ones, and sent never confirmed by a receipt. A message still in the outbox stays.
const purgedStatuses = `('delivered', 'failed', 'undeliverable', 'sent')`

// qAccept inserts a message with its audit event and outbox row unless its id or its app's
// idempotency key is taken; it returns the new message, or the one holding the key.
const qAccept = `WITH ins AS (
  INSERT INTO messages (id, app, idempotency_key, request_hash, to_masked, to_hash, country, sender, sender_kind,
    category, body, encoding, segments, status, created_at, updated_at, detail)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'accepted', $14, $14, $15)
  ON CONFLICT DO NOTHING
  RETURNING id
), audit AS (
  INSERT INTO audit_pending (at, kind, message_id, app, data, tag) SELECT $14, 'message.accepted', id, $2, $16, $19 FROM ins
), ob AS (
  INSERT INTO outbox (message_id, payload, created_at, next_attempt_at, subject_ref) SELECT id, $17, $14, $14, $18 FROM ins
)
SELECT true, id, ''::text, 'accepted'::text, $14::bigint FROM ins
UNION ALL
SELECT false, id, request_hash, status, created_at FROM messages
WHERE app = $2 AND idempotency_key = $3 AND NOT EXISTS (SELECT 1 FROM ins)`

// Accept records a new message with status "accepted", a "message.accepted" audit event holding
// a.Audit and its outbox row, all in one transaction, and returns once that transaction is
// durable. When the app already has a message with a.IdempotencyKey, nothing is written: the
// earlier message is returned with Duplicate set if its request hash is the same, and an
// *store.Error with code "idempotency_conflict" is returned if it differs. An id already in use
// gives code "duplicate_id". Two replicas accepting the same key at once get the same answers.
// With a.To set, to_hash is its lookup hash, the outbox payload is sealed under the recipient's
// subject key (created on first use, here on the caller's goroutine) and a.Personal is sealed into
// the audit event once its seq is known; neither a.To nor a.Personal is stored in plain text.
func (p *Postgres) Accept(ctx context.Context, a store.Accepted) (store.AcceptResult, error) {
	if a.ID == "" || a.App == "" {
		return store.AcceptResult{}, invalid("a message needs an id and an app")
	}
	if a.Segments < 0 {
		return store.AcceptResult{}, invalid("segments must not be negative")
	}
	var req *sealReq
	ref := ""
	payload := a.Payload
	if payload == nil {
		payload = []byte{}
	}
	if a.To != "" {
		// The recipient's subject key is read or created here, on the caller's goroutine: it seals
		// the outbox payload now and the audit event's personal part in the writer.
		if !validE164(a.To) {
			return store.AcceptResult{}, invalid("the recipient must be in E.164")
		}
		ref = p.tr.kr.LookupHash(a.To)
		a.ToHash = ref
		key, err := p.tr.sealer.Key(ctx, ref)
		if err != nil {
			return store.AcceptResult{}, fmt.Errorf("store: accept: %w", err)
		}
		if payload, err = key.Seal(payload, outboxAAD(a.ID)); err != nil {
			return store.AcceptResult{}, fmt.Errorf("store: accept: %w", err)
		}
		req = &sealReq{key: key, personal: a.Personal}
	} else if len(a.Personal) > 0 {
		return store.AcceptResult{}, invalid("sealing a message's personal data needs its recipient")
	}
	a.To, a.Personal = "", nil
	if err := checkText("the message", a.ID, a.App, a.IdempotencyKey, a.RequestHash, a.ToMasked, a.ToHash,
		a.Country, a.Sender, a.SenderKind, a.Category, a.Body, a.Encoding); err != nil {
		return store.AcceptResult{}, err
	}
	detail, err := jsonText("detail", a.Detail)
	if err != nil {
		return store.AcceptResult{}, err
	}
	audit, err := jsonText("audit data", a.Audit)
	if err != nil {
		return store.AcceptResult{}, err
	}
	created := orNow(a.CreatedAt).UnixNano()
	key := nullable(a.IdempotencyKey)
	var (
		found          bool
		inserted       bool
		id, hash, stat string
		at             int64
	)
	err = p.w.submitOp(ctx, &writeOp{seal: req, queue: func(b *pgx.Batch) {
		tag := int64(0)
		if req != nil {
			tag = req.tag
		}
		b.Queue(qAccept, a.ID, a.App, key, a.RequestHash, a.ToMasked, a.ToHash, a.Country, a.Sender, a.SenderKind,
			a.Category, a.Body, a.Encoding, a.Segments, created, detail, audit, payload, ref, tag)
	}, read: func(br pgx.BatchResults) error {
		found = false
		err := br.QueryRow().Scan(&inserted, &id, &hash, &stat, &at)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	}})
	if err != nil {
		return store.AcceptResult{}, err
	}
	if !found {
		// Nothing was written and the row in the way was not in the statement's snapshot (another
		// replica committed it meanwhile), or the id is taken: look again with a fresh snapshot.
		return p.acceptConflict(ctx, a)
	}
	if !inserted {
		return duplicateOf(a, id, hash, stat, at)
	}
	return store.AcceptResult{ID: id, Status: stat, CreatedAt: time.Unix(0, at)}, nil
}

func duplicateOf(a store.Accepted, id, hash, status string, at int64) (store.AcceptResult, error) {
	if hash != a.RequestHash {
		return store.AcceptResult{}, &store.Error{Code: store.CodeIdempotencyConflict,
			Message: "the idempotency key was already used for a different request"}
	}
	return store.AcceptResult{ID: id, Duplicate: true, Status: status, CreatedAt: fromNanos(at)}, nil
}

// acceptConflict tells why an Accept wrote nothing: its key is taken, or its id is.
func (p *Postgres) acceptConflict(ctx context.Context, a store.Accepted) (store.AcceptResult, error) {
	if a.IdempotencyKey != "" {
		var id, hash, status string
		var at int64
		err := p.pool.QueryRow(ctx, `SELECT id, request_hash, status, created_at FROM messages WHERE app = $1 AND idempotency_key = $2`,
			a.App, a.IdempotencyKey).Scan(&id, &hash, &status, &at)
		if err == nil {
			return duplicateOf(a, id, hash, status, at)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return store.AcceptResult{}, fmt.Errorf("store: accept: %w", err)
		}
	}
	return store.AcceptResult{}, &store.Error{Code: store.CodeDuplicateID, Message: "a message with this id already exists"}
}

const qInsAudit = `INSERT INTO audit_pending (at, kind, message_id, app, data) VALUES ($1, $2, $3, $4, $5)`

// Refuse records a "message.refused" audit event with r.Data, grouped with other writes; r.Personal
// is sealed under r.To's subject key.
func (p *Postgres) Refuse(ctx context.Context, r store.Refused) error {
	if r.App == "" {
		return invalid("a refusal needs an app")
	}
	if err := checkText("the refusal", r.App, r.MessageID); err != nil {
		return err
	}
	data, err := jsonText("audit data", r.Data)
	if err != nil {
		return err
	}
	at := orNow(r.At).UnixNano()
	req := &sealReq{}
	if len(r.Personal) > 0 {
		if !validE164(r.To) {
			return invalid("sealing a refusal's personal data needs its recipient in E.164")
		}
		if req.key, err = p.tr.sealer.Key(ctx, p.tr.kr.LookupHash(r.To)); err != nil {
			return fmt.Errorf("store: refuse: %w", err)
		}
		req.personal = r.Personal
	}
	return p.w.submitOp(ctx, &writeOp{seal: req, queue: func(b *pgx.Batch) {
		b.Queue(qInsPending, at, store.AuditRefused, nullable(r.MessageID), r.App, data, "", req.tag)
	}, read: execOne})
}

func notFoundIn(missing []string, total int) error {
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("store: %d of %d messages not found (first %q): %w", len(missing), total, missing[0], store.ErrNotFound)
}

type sentAudit struct {
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	Attempts          int    `json:"attempts,omitempty"`
	Repeat            bool   `json:"repeat,omitempty"`
	PossibleDuplicate bool   `json:"possible_duplicate,omitempty"`
}

// qSent records one send: it locks the message, keeps the provider message id for receipts, moves
// an accepted message to "sent", audits the send (a repeat when the message had moved on already
// but the id is new) and removes the outbox row. It returns the message's app and status before,
// and whether the provider message id was new; no row means no such message.
const qSent = `WITH m AS (
  SELECT id, app, status FROM messages WHERE id = $1 FOR UPDATE
), pid AS (
  INSERT INTO provider_ids (provider, provider_message_id, message_id) SELECT $2, $3, id FROM m
  ON CONFLICT DO NOTHING RETURNING message_id
), upd AS (
  UPDATE messages SET status = 'sent', provider = $2, provider_message_id = $3,
    attempts = CASE WHEN $4::integer > 0 THEN $4::integer ELSE messages.attempts END, updated_at = $5
  FROM m WHERE messages.id = m.id AND m.status = 'accepted'
  RETURNING messages.id
), audit AS (
  INSERT INTO audit_pending (at, kind, message_id, app, data)
  SELECT $5, 'message.sent', m.id, m.app, CASE WHEN m.status = 'accepted' THEN $6::json ELSE $7::json END
  FROM m WHERE m.status = 'accepted' OR EXISTS (SELECT 1 FROM pid)
), del AS (
  DELETE FROM outbox WHERE message_id IN (SELECT id FROM m)
)
SELECT app, status, EXISTS (SELECT 1 FROM pid) FROM m`

// RecordSent records, in one grouped write, that providers took the given messages: each accepted
// message becomes "sent" with its provider and provider message id, gains a "message.sent" audit
// event (its status history entry), and loses its outbox row; the provider message id is kept for
// receipts. Recording a send again is harmless: a known provider message id changes nothing, and a
// further provider message id for a message already sent is only added for correlation (with a
// "message.sent" event marked repeat). Messages that do not exist are skipped and reported in an
// error matching store.ErrNotFound after the others have committed.
func (p *Postgres) RecordSent(ctx context.Context, sent []store.Sent) error {
	if len(sent) == 0 {
		return nil
	}
	type args struct {
		at           int64
		data, repeat string
	}
	prepared := make([]args, len(sent))
	for i, x := range sent {
		if x.MessageID == "" || x.Provider == "" || x.ProviderMessageID == "" {
			return invalid("a sent record needs a message id, a provider and a provider message id")
		}
		if err := checkText("a sent record", x.MessageID, x.Provider, x.ProviderMessageID); err != nil {
			return err
		}
		prepared[i] = args{
			at:     orNow(x.At).UnixNano(),
			data:   mustJSON(sentAudit{x.Provider, x.ProviderMessageID, x.Attempts, false, x.PossibleDuplicate}),
			repeat: mustJSON(sentAudit{x.Provider, x.ProviderMessageID, x.Attempts, true, x.PossibleDuplicate}),
		}
	}
	var missing, stolen []string
	err := p.w.submit(ctx, func(b *pgx.Batch) {
		for i, x := range sent {
			a := prepared[i]
			b.Queue(qSent, x.MessageID, x.Provider, x.ProviderMessageID, x.Attempts, a.at, a.data, a.repeat)
		}
	}, func(br pgx.BatchResults) error {
		missing, stolen = missing[:0], stolen[:0]
		for _, x := range sent {
			var app, status string
			var added bool
			err := br.QueryRow().Scan(&app, &status, &added)
			if errors.Is(err, pgx.ErrNoRows) {
				missing = append(missing, x.MessageID)
				continue
			}
			if err != nil {
				return err
			}
			if status == store.StatusAccepted && !added {
				stolen = append(stolen, x.MessageID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range stolen {
		p.log.Warn("store: provider message id already belongs to another message", "backend", "postgres", "message_id", id)
	}
	return notFoundIn(missing, len(sent))
}

type failedAudit struct {
	Provider       string `json:"provider,omitempty"`
	Code           string `json:"code"`
	Attempts       int    `json:"attempts,omitempty"`
	MaybeDelivered bool   `json:"maybe_delivered,omitempty"`
}

// qFailed fails one message unless it is final already, audits it and removes its outbox row.
const qFailed = `WITH m AS (
  SELECT id, app, status FROM messages WHERE id = $1 FOR UPDATE
), upd AS (
  UPDATE messages SET status = 'failed', provider = CASE WHEN $2::text <> '' THEN $2::text ELSE messages.provider END,
    attempts = CASE WHEN $3::integer > 0 THEN $3::integer ELSE messages.attempts END, updated_at = $4
  FROM m WHERE messages.id = m.id AND m.status NOT IN ` + finalStatuses + `
  RETURNING messages.id
), audit AS (
  INSERT INTO audit_pending (at, kind, message_id, app, data)
  SELECT $4, 'message.failed', m.id, m.app, $5 FROM m WHERE m.status NOT IN ` + finalStatuses + `
), del AS (
  DELETE FROM outbox WHERE message_id IN (SELECT id FROM m)
)
SELECT status FROM m`

// RecordFailed records, in one grouped write, that the given messages will not be sent: each one
// not yet final becomes "failed" with the code, gains a "message.failed" audit event, and loses
// its outbox row. Messages already final are left as they are. Messages that do not exist are
// skipped and reported in an error matching store.ErrNotFound after the others have committed.
func (p *Postgres) RecordFailed(ctx context.Context, failed []store.Failed) error {
	if len(failed) == 0 {
		return nil
	}
	data := make([]string, len(failed))
	ats := make([]int64, len(failed))
	for i, x := range failed {
		if x.MessageID == "" {
			return invalid("a failed record needs a message id")
		}
		if err := checkText("a failed record", x.MessageID, x.Provider, x.Code); err != nil {
			return err
		}
		data[i] = mustJSON(failedAudit{x.Provider, x.Code, x.Attempts, x.MaybeDelivered})
		ats[i] = orNow(x.At).UnixNano()
	}
	var missing []string
	err := p.w.submit(ctx, func(b *pgx.Batch) {
		for i, x := range failed {
			b.Queue(qFailed, x.MessageID, x.Provider, x.Attempts, ats[i], data[i])
		}
	}, func(br pgx.BatchResults) error {
		missing = missing[:0]
		for _, x := range failed {
			var status string
			err := br.QueryRow().Scan(&status)
			if errors.Is(err, pgx.ErrNoRows) {
				missing = append(missing, x.MessageID)
				continue
			}
			if err != nil {
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
	Attempts      int      `json:"attempts"`
	NextAttemptAt int64    `json:"next_attempt_at"`
	Code          string   `json:"code,omitempty"`
	MaybeSent     []string `json:"maybe_sent,omitempty"`
}

// qRetry updates an outbox row for the next attempt (and frees its claim), the message's attempt
// count and audits the retry; it returns the number of outbox rows changed.
const qRetry = `WITH m AS (
  SELECT id, app FROM messages WHERE id = $1 FOR UPDATE
), ob AS (
  UPDATE outbox SET attempts = $2, next_attempt_at = $3, maybe_sent = $6, claimed_by = NULL, claimed_until = 0
  WHERE message_id IN (SELECT id FROM m) RETURNING message_id
), upd AS (
  UPDATE messages SET attempts = $2, updated_at = $4 WHERE id IN (SELECT message_id FROM ob)
), audit AS (
  INSERT INTO audit_pending (at, kind, message_id, app, data)
  SELECT $4, 'message.retry', m.id, m.app, $5 FROM m WHERE EXISTS (SELECT 1 FROM ob)
)
SELECT count(*) FROM ob`

// RecordRetry notes that attempt number attempts of message id failed and that the next one is due
// at nextAt: it updates the outbox row (releasing any claim on it) and the message's attempt count
// and writes a "message.retry" audit event. It returns store.ErrNotFound when the message has no
// outbox row (it does not exist or is no longer waiting to be sent).
func (p *Postgres) RecordRetry(ctx context.Context, id string, attempts int, nextAt time.Time, code string, maybeSent []string) error {
	if id == "" || attempts < 0 {
		return invalid("a retry needs a message id and a non-negative attempt count")
	}
	maybe := store.JoinProviders(maybeSent)
	if err := checkText("a retry", id, code, maybe); err != nil {
		return err
	}
	next := nanos(nextAt)
	now := time.Now().UnixNano()
	data := mustJSON(retryAudit{attempts, next, code, maybeSent})
	var n int
	err := p.w.submit(ctx, func(b *pgx.Batch) {
		b.Queue(qRetry, id, attempts, next, now, data, maybe)
	}, func(br pgx.BatchResults) error {
		return br.QueryRow().Scan(&n)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

type receiptAudit struct {
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	Code              string `json:"code,omitempty"`
	// ProviderAt is the time the provider put on the receipt, in unix nanoseconds; absent when it
	// gave none. It is kept as data only: the event's time and updated_at are the store's clock.
	ProviderAt int64 `json:"provider_at,omitempty"`
}

// qReceipt finds a receipt's message through its provider message id, locks it, and unless it is
// final moves it to the receipt's status with an audit event; it returns the message as it was.
const qReceipt = `WITH m AS (
  SELECT msg.id, msg.app, msg.status FROM provider_ids p JOIN messages msg ON msg.id = p.message_id
  WHERE p.provider = $1 AND p.provider_message_id = $2 FOR UPDATE OF msg
), upd AS (
  UPDATE messages SET status = $3, updated_at = $4 FROM m
  WHERE messages.id = m.id AND m.status NOT IN ` + finalStatuses + `
  RETURNING messages.id
), audit AS (
  INSERT INTO audit_pending (at, kind, message_id, app, data)
  SELECT $4, $5, m.id, m.app, $6 FROM m WHERE m.status NOT IN ` + finalStatuses + `
)
SELECT id, app, status FROM m`

// ApplyReceipt applies a delivery receipt to the message it correlates with through the provider
// message id: the status changes and a "message.<status>" audit event is written, in one statement
// that finds, locks and changes the message. A receipt for a message already final changes nothing
// and returns Applied false, since providers repeat receipts. An unknown provider message id gives
// store.ErrNotFound. The status change and its event are timed by the store's clock, not the
// receipt's: a provider's clock must not decide retention or where the event falls in an export by
// time. The receipt's own time is kept in the event's data.
func (p *Postgres) ApplyReceipt(ctx context.Context, r store.Receipt) (store.ReceiptResult, error) {
	var kind string
	switch r.Status {
	case store.StatusDelivered:
		kind = store.AuditDelivered
	case store.StatusFailed:
		kind = store.AuditFailed
	case store.StatusUndeliverable:
		kind = store.AuditUndeliverable
	default:
		return store.ReceiptResult{}, invalid("a receipt status must be delivered, failed or undeliverable")
	}
	if r.Provider == "" || r.ProviderMessageID == "" {
		return store.ReceiptResult{}, invalid("a receipt needs a provider and a provider message id")
	}
	if err := checkText("a receipt", r.Provider, r.ProviderMessageID, r.Code); err != nil {
		return store.ReceiptResult{}, err
	}
	at := time.Now().UnixNano()
	data := mustJSON(receiptAudit{r.Provider, r.ProviderMessageID, r.Code, r.ProviderAt()})
	var res store.ReceiptResult
	var found bool
	err := p.w.submit(ctx, func(b *pgx.Batch) {
		b.Queue(qReceipt, r.Provider, r.ProviderMessageID, r.Status, at, kind, data)
	}, func(br pgx.BatchResults) error {
		var before string
		err := br.QueryRow().Scan(&res.MessageID, &res.App, &before)
		found = err == nil
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if store.IsFinal(before) {
			res.Status, res.Applied = before, false
		} else {
			res.Status, res.Applied = r.Status, true
		}
		return nil
	})
	if err != nil {
		return store.ReceiptResult{}, err
	}
	if !found {
		return store.ReceiptResult{}, store.ErrNotFound
	}
	return res, nil
}
