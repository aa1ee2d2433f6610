package store

import (
	"context"
	"time"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/sms"
)

// AuditTrail is the tamper-evident audit trail a store keeps beside its messages (package audit does the
// cryptography): every event it writes is hash-chained, personal fields are sealed under the data
// subject's key, checkpoints are signed with the region's key, old records are purged by retention and
// a subject can be erased by destroying their key. SQLite and PostgreSQL implement it; the conformance
// suite checks both.
type AuditTrail interface {
	// AppendEvent appends an event that is not part of a message write, such as a policy bundle change
	// or a configuration change.
	AppendEvent(ctx context.Context, e AuditAppend) error
	// AuditRange lists stored events in seq order that match q.
	AuditRange(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
	// OpenPersonal decrypts a record's sealed personal fields; after an erasure it fails with code
	// "subject_erased".
	OpenPersonal(ctx context.Context, rec AuditRecord) ([]byte, error)
	// Checkpoints lists every stored checkpoint, oldest first.
	Checkpoints(ctx context.Context) ([]audit.Checkpoint, error)
	// WriteCheckpoint signs the chain head at now and stores the checkpoint.
	WriteCheckpoint(ctx context.Context, now time.Time) (audit.Checkpoint, error)
	// Purge deletes final messages and audit events older than their retention, in batches, each batch
	// anchored by a checkpoint so that what remains still verifies.
	Purge(ctx context.Context, p PurgePolicy) (PurgeResult, error)
	// EraseSubject destroys the subject key of a phone number (E.164) and appends a "subject.erased"
	// event naming who asked. Opt-outs of the number keep blocking sends (they hold only its lookup hash).
	EraseSubject(ctx context.Context, e164, requestedBy string) (EraseResult, error)
	// VerifyAudit streams every event in seq order, with the stored checkpoints, through audit's verifier
	// and reports the first bad record. It never loads the whole trail.
	VerifyAudit(ctx context.Context, keys *audit.Keyring) (audit.Report, error)
}

// Audit event kinds that are not message writes.
const (
	AuditConfigLoaded  = "config.loaded"
	AuditPolicyChanged = "policy.changed"
	AuditPolicyRefused = "policy.refused"
	AuditSubjectErased = "subject.erased"
)

// AuditAppend is an event that carries no personal data.
type AuditAppend struct {
	Kind string
	App  string
	// Data is the event's masked JSON; empty means {}.
	Data []byte
	// At is the event's time; zero means now.
	At time.Time
}

// AuditQuery selects events. Zero fields do not restrict.
type AuditQuery struct {
	// AfterSeq lists events with a greater seq, for paging.
	AfterSeq int64
	// From and To bound the event time: From <= at < To.
	From, To time.Time
	// Recipient is an E.164 number; only events sealed for that subject (its lookup hash) match.
	Recipient string
	// MessageID restricts to one message's events.
	MessageID string
	// Limit bounds the page; 0 means 1000.
	Limit int
}

// AuditRecord is one stored event: the chained fields and the key that sealed its personal part.
type AuditRecord struct {
	audit.Event
	// KeyID names the data key that wrapped the subject key, empty when nothing is sealed.
	KeyID string
}

// PurgePolicy says how long records are kept.
type PurgePolicy struct {
	// Now is the purge time.
	Now time.Time
	// Default is the retention of every category not in PerCategory; at least 365 days.
	Default time.Duration
	// PerCategory overrides Default per message category; each at least 365 days.
	PerCategory map[string]time.Duration
	// BatchSize bounds the records deleted per transaction; 0 means 1000.
	BatchSize int
}

// PurgeResult counts what a purge deleted.
type PurgeResult struct {
	Messages int
	Events   int
	Batches  int
}

// EraseResult says what an erasure did.
type EraseResult struct {
	// Seq is the seq of the "subject.erased" event.
	Seq int64
	// Existed is false when the number had no subject key (nothing was ever sealed for it).
	Existed bool
}

// BodyRows is the part of a query's rows MaskedBodies reads: (message id, body) pairs.
type BodyRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// MaskedBodies reads the (id, body) rows of an erased subject's messages and returns the ids and
// full masks (sms.MaskAll, as mask style "full") of the bodies not masked yet, so that erasing
// again writes nothing. The caller closes rows.
func MaskedBodies(rows BodyRows) (ids, bodies []string, err error) {
	for rows.Next() {
		var id, body string
		if err := rows.Scan(&id, &body); err != nil {
			return nil, nil, err
		}
		if masked := sms.MaskAll(body); masked != body {
			ids, bodies = append(ids, id), append(bodies, masked)
		}
	}
	return ids, bodies, rows.Err()
}
