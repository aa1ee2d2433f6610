// Package store keeps the durable state of the proxy: messages and their status history, the audit
// trail, the outbox of messages still to dispatch and the correlation of provider message ids.
//
// Every write goes through a single writer goroutine that commits the operations queued at that
// moment in one transaction (group commit), so that many concurrent callers share one fsync. A call
// returns only once the transaction holding its operation is durable. Reads use a separate pool of
// connections and never wait for the writer.
//
// SQLite (modernc.org/sqlite, no cgo) is the embedded implementation; the method set is the Store
// interface, and storetest holds the behaviour every implementation must show.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Message statuses. A message starts "accepted", becomes "sent" once a provider took it, and ends
// "delivered", "failed" or "undeliverable".
const (
	StatusAccepted      = "accepted"
	StatusSent          = "sent"
	StatusDelivered     = "delivered"
	StatusFailed        = "failed"
	StatusUndeliverable = "undeliverable"
)

// Audit event kinds written by the store.
const (
	AuditAccepted      = "message.accepted"
	AuditRefused       = "message.refused"
	AuditSent          = "message.sent"
	AuditRetry         = "message.retry"
	AuditFailed        = "message.failed"
	AuditDelivered     = "message.delivered"
	AuditUndeliverable = "message.undeliverable"
)

// Error codes carried by *Error.
const (
	CodeIdempotencyConflict = "idempotency_conflict"
	CodeDuplicateID         = "duplicate_id"
	CodeInvalidArgument     = "invalid_argument"
	CodeInvalidOptions      = "invalid_options"
	CodeSchemaTooNew        = "schema_too_new"
	CodeMigrationFailed     = "migration_failed"
	CodeClosed              = "store_closed"
	// CodeInUse is a store another process holds open.
	CodeInUse = "store_in_use"
)

// ErrNotFound is returned when a message, outbox row or provider message id does not exist, or
// belongs to another app.
var ErrNotFound = errors.New("store: not found")

// ErrClosed is returned by calls made after Close.
var ErrClosed = &Error{Code: CodeClosed, Message: "the store is closed"}

// Error is a store error with a stable code a caller can branch on.
type Error struct {
	// Code is stable across releases, e.g. "idempotency_conflict".
	Code string
	// Message is a sentence for a person; it never holds a phone number, body or key.
	Message string
}

// Error returns the code and the sentence.
func (e *Error) Error() string { return "store: " + e.Code + ": " + e.Message }

// Is reports whether target is an *Error with the same code, so errors.Is(err, ErrClosed) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the code of an *Error in err's chain, or "" when there is none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Store is the method set every store implementation offers; storetest checks its behaviour.
type Store interface {
	// Accept records a new message, its first status, its audit event and its outbox row in one
	// transaction, or reports the earlier message with the same idempotency key.
	Accept(ctx context.Context, a Accepted) (AcceptResult, error)
	// Refuse records the audit event of a refused message.
	Refuse(ctx context.Context, r Refused) error
	// FindIdempotent returns app's message stored under an idempotency key, if any.
	FindIdempotent(ctx context.Context, app, key string) (MessageView, bool, error)
	// Get returns one message of app with its status history.
	Get(ctx context.Context, app, id string) (MessageView, error)
	// PendingOutbox lists outbox rows with a message id greater than after, in id order.
	PendingOutbox(ctx context.Context, limit int, after string) ([]OutboxItem, error)
	// RecordSent marks messages as handed to a provider and removes their outbox rows.
	RecordSent(ctx context.Context, sent []Sent) error
	// RecordFailed marks messages as finally failed and removes their outbox rows.
	RecordFailed(ctx context.Context, failed []Failed) error
	// RecordRetry notes a failed attempt and when to try again. maybeSent names the providers that
	// may have taken the message (their Send had no known result); the outbox row keeps them
	// (OutboxItem.MaybeSent), so that after a restart the resend goes to them first.
	RecordRetry(ctx context.Context, id string, attempts int, nextAt time.Time, code string, maybeSent []string) error
	// ApplyReceipt applies a delivery receipt once.
	ApplyReceipt(ctx context.Context, r Receipt) (ReceiptResult, error)
	// Audit lists audit events with a sequence number greater than after, in order.
	Audit(ctx context.Context, after int64, limit int) ([]AuditEvent, error)
	// CountByStatus counts messages per status.
	CountByStatus(ctx context.Context) (map[string]int, error)
	// Commits returns the number of write transactions committed since Open.
	Commits() uint64
	// Close waits for queued writes to commit and releases the database.
	Close() error

	// AddOptOut records one opt-out with its audit event; added is false when it already existed.
	AddOptOut(ctx context.Context, o OptOut) (added bool, err error)
	// ImportOptOuts records many opt-outs, each with its audit event, skipping those already present.
	ImportOptOuts(ctx context.Context, rows []OptOut) (ImportResult, error)
	// RemoveOptOut deletes the opt-outs of number that app recorded, each with its audit event.
	RemoveOptOut(ctx context.Context, app, number string, at time.Time) (int, error)
	// ListOptOuts lists the opt-outs app recorded with a Seq greater than after.
	ListOptOuts(ctx context.Context, app string, after int64, limit int) ([]OptOut, error)
	// RecordConsent appends a consent record with its audit event.
	RecordConsent(ctx context.Context, c Consent) (Consent, error)
	// WithdrawConsent marks app's consent in force for number and category withdrawn, audited.
	WithdrawConsent(ctx context.Context, app, number, category string, at time.Time) (int, error)
	// Consents lists every consent record app holds for number.
	Consents(ctx context.Context, app, number string) ([]Consent, error)
	// RecipientFacts returns what the policy needs to know about number: opt-outs and consents.
	RecipientFacts(ctx context.Context, number string) (RecipientFacts, error)
}

// Accepted is a message the policy allowed, as it is to be recorded.
type Accepted struct {
	// ID is the message id chosen by the caller; it must be unique.
	ID  string
	App string
	// IdempotencyKey is unique per App when not empty.
	IdempotencyKey string
	// RequestHash identifies the request's content, to tell a repeat from a conflicting reuse of a key.
	RequestHash string
	// ToMasked is the destination as the policy masks say, e.g. "+65****4321".
	ToMasked string
	// ToHash is a keyed lookup hash of the destination (not indexed: nothing looks messages up by it). A store with an audit keyring
	// computes it from To itself and ignores this field when To is set.
	ToHash string
	// To is the destination in E.164. The store keeps it only sealed (in the audit event's personal
	// part and the outbox payload) and as its lookup hash; it is never stored in plain text.
	To string
	// Personal is the audit event's personal part, sealed under To's subject key: JSON
	// {"to": E.164, "body": full text}. Empty means nothing is sealed.
	Personal   []byte
	Country    string
	Sender     string
	SenderKind string
	Category   string
	// Body is stored as given: the caller applies the policy's masks first.
	Body     string
	Encoding string
	Segments int
	// Detail is a JSON object of extras (template id, reasons...); empty means {}.
	Detail []byte
	// Audit is the JSON data of the "message.accepted" audit event; empty means {}.
	Audit []byte
	// Payload is what the dispatcher needs to send the message, stored opaque in the outbox.
	Payload []byte
	// CreatedAt is the acceptance time; zero means now.
	CreatedAt time.Time
}

// AcceptResult says which message a request refers to.
type AcceptResult struct {
	// ID is the message id: the new one, or the earlier one for a duplicate.
	ID string
	// Duplicate is true when an earlier message with the same key and request hash was found and
	// nothing was written.
	Duplicate bool
	// Status is the message's current status.
	Status    string
	CreatedAt time.Time
}

// Refused is a message the policy refused; only its audit event is recorded.
type Refused struct {
	// MessageID is the id given to the app, if any.
	MessageID string
	App       string
	// Data is the masked JSON data of the audit event; empty means {}.
	Data []byte
	// To is the destination in E.164, when known; it names the subject Personal is sealed for.
	To string
	// Personal is the audit event's personal part (JSON {"to", "body"}), sealed under To's subject
	// key; it needs To. Empty means nothing is sealed.
	Personal []byte
	// At is the refusal time; zero means now.
	At time.Time
}

// StatusEntry is one row of a message's status history.
type StatusEntry struct {
	Seq      int
	Status   string
	At       time.Time
	Provider string
	Code     string
	Detail   string
}

// MessageView is a stored message with its status history, oldest first.
type MessageView struct {
	ID                string
	App               string
	IdempotencyKey    string
	RequestHash       string
	ToMasked          string
	ToHash            string
	Country           string
	Sender            string
	SenderKind        string
	Category          string
	Body              string
	Encoding          string
	Segments          int
	Status            string
	Provider          string
	ProviderMessageID string
	Attempts          int
	CreatedAt         time.Time
	UpdatedAt         time.Time
	Detail            json.RawMessage
	History           []StatusEntry
}

// OutboxItem is a message still to dispatch.
type OutboxItem struct {
	MessageID string
	// Payload is the payload given to Accept, opened: a store keeps it sealed under the recipient's
	// subject key, and fails the message with code "subject_erased" instead of listing it once the
	// subject was erased.
	Payload       []byte
	Attempts      int
	CreatedAt     time.Time
	NextAttemptAt time.Time
	// MaybeSent names the providers that may have taken the message, as the last RecordRetry said.
	MaybeSent []string
}

// JoinProviders encodes provider names (lower-case letters, digits, - and _) for a text column.
func JoinProviders(names []string) string { return strings.Join(names, ",") }

// SplitProviders decodes what JoinProviders encoded; "" is none.
func SplitProviders(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// Sent says a provider took a message.
type Sent struct {
	MessageID         string
	Provider          string
	ProviderMessageID string
	// Attempts is the number of send attempts made, this one included; 0 leaves the count as is.
	Attempts int
	// At is when the provider answered; zero means now.
	At time.Time
	// PossibleDuplicate says that another provider's answer for this message was lost (a timeout, a
	// crash during the call), so it may have sent the message too; the audit event says so.
	PossibleDuplicate bool
}

// Failed says a message will not be sent.
type Failed struct {
	MessageID string
	// Provider is the last provider tried, if any.
	Provider string
	// Code is a stable reason, e.g. "no_route" or the provider's error code.
	Code     string
	Attempts int
	// At is when the failure was decided; zero means now.
	At time.Time
	// MaybeDelivered says that a provider's answer for this message was lost (a timeout, a crash
	// during the call), so the message may have reached the recipient anyway; the audit event says so.
	MaybeDelivered bool
}

// Receipt is a delivery receipt from a provider.
type Receipt struct {
	Provider          string
	ProviderMessageID string
	// Status is "delivered", "failed" or "undeliverable".
	Status string
	Code   string
	// At is when the provider says the receipt was issued; zero means it gave no time. It is kept in
	// the event's data ("provider_at"); the status change and its event are timed by the store's clock.
	At time.Time
}

// ProviderAt is At in unix nanoseconds, as a receipt event's data keeps it; 0 when it has none.
func (r Receipt) ProviderAt() int64 {
	if r.At.IsZero() {
		return 0
	}
	return r.At.UnixNano()
}

// ReceiptResult tells which message a receipt belonged to and whether it changed anything.
type ReceiptResult struct {
	MessageID string
	App       string
	// Status is the message's status after the receipt.
	Status string
	// Applied is false when the message already had a final status (a duplicate receipt).
	Applied bool
}

// AuditEvent is one entry of the audit trail.
type AuditEvent struct {
	Seq       int64
	At        time.Time
	Kind      string
	MessageID string
	App       string
	Data      json.RawMessage
}

// IsFinal reports whether status is one a message never leaves.
func IsFinal(status string) bool {
	switch status {
	case StatusDelivered, StatusFailed, StatusUndeliverable:
		return true
	}
	return false
}
