package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/store"
)

var _ store.AuditTrail = (*Postgres)(nil)

// outboxKind binds a sealed outbox payload to its message (audit.SealAAD with seq 0), as in the
// SQLite store.
const outboxKind = "outbox.payload"

func outboxAAD(messageID string) []byte { return audit.SealAAD(0, outboxKind, messageID) }

// verifyPage is how many records VerifyAudit reads per query.
const verifyPage = 5000

// AppendEvent appends an event that belongs to no message, such as a policy change, chained with
// the others in one grouped write.
func (p *Postgres) AppendEvent(ctx context.Context, e store.AuditAppend) error {
	if e.Kind == "" || len(e.Kind) > 64 {
		return invalid("an audit event needs a kind of at most 64 characters")
	}
	if err := checkText("the audit event", e.Kind, e.App); err != nil {
		return err
	}
	data, err := jsonText("audit data", e.Data)
	if err != nil {
		return err
	}
	at := orNow(e.At).UnixNano()
	return p.w.submit(ctx, func(b *pgx.Batch) {
		b.Queue(qInsPending, at, e.Kind, nil, e.App, data, "", 0)
	}, execOne)
}

func execOne(br pgx.BatchResults) error {
	_, err := br.Exec()
	return err
}

const qRecordCols = `e.seq, e.at, e.kind, COALESCE(e.message_id, ''), e.app, e.data::text, e.sealed, e.subject_ref, e.prev_hash, e.hash`

// scanRecord reads one row of qRecordCols (and extra).
func scanRecord(rows pgx.Rows, rec *store.AuditRecord, extra ...any) error {
	var at int64
	var data string
	dst := append([]any{&rec.Seq, &at, &rec.Kind, &rec.MessageID, &rec.App, &data, &rec.Sealed, &rec.SubjectRef, &rec.PrevHash, &rec.Hash}, extra...)
	if err := rows.Scan(dst...); err != nil {
		return err
	}
	// time.Unix, not fromNanos: an event at the Unix epoch (at 0) was hashed as such (trail.link).
	rec.At, rec.Data = time.Unix(0, at), []byte(data)
	return nil
}

// AuditRange lists stored events in seq order that match q, with the id of the data key that wrapped
// each sealed record's subject key (empty once the subject was erased).
func (p *Postgres) AuditRange(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	if p.closed.Load() {
		return nil, store.ErrClosed
	}
	if q.Limit < 0 || q.AfterSeq < 0 {
		return nil, invalid("limit and after must not be negative")
	}
	if q.Limit == 0 {
		q.Limit = 1000
	}
	if err := checkText("the audit query", q.MessageID); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(`SELECT ` + qRecordCols + `, COALESCE(k.key_id, '') FROM audit_events e
 LEFT JOIN subject_keys k ON length(e.sealed) > 0 AND k.ref = e.subject_ref WHERE e.seq > $1`)
	args := []any{q.AfterSeq}
	arg := func(cond string, v any) {
		args = append(args, v)
		b.WriteString(" AND " + cond + " $" + strconv.Itoa(len(args)))
	}
	if !q.From.IsZero() {
		arg("e.at >=", q.From.UnixNano())
	}
	if !q.To.IsZero() {
		arg("e.at <", q.To.UnixNano())
	}
	if q.Recipient != "" {
		// subject_ref <> '' (always true of a lookup hash) lets a generic plan use the partial
		// index audit_events_subject_ref.
		arg("e.subject_ref <> '' AND e.subject_ref =", p.tr.kr.LookupHash(q.Recipient))
	}
	if q.MessageID != "" {
		arg("e.message_id =", q.MessageID)
	}
	args = append(args, q.Limit)
	b.WriteString(` ORDER BY e.seq LIMIT $` + strconv.Itoa(len(args)))
	rows, err := p.pool.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: audit range: %w", err)
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var rec store.AuditRecord
		if err := scanRecord(rows, &rec, &rec.KeyID); err != nil {
			return nil, fmt.Errorf("store: audit range: %w", err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: audit range: %w", err)
	}
	return out, nil
}

// OpenPersonal decrypts rec's sealed personal part. After the subject's erasure it fails with an
// *audit.Error of code "subject_erased"; a record with nothing sealed gives code "not_sealed".
func (p *Postgres) OpenPersonal(ctx context.Context, rec store.AuditRecord) ([]byte, error) {
	if len(rec.Sealed) == 0 {
		return nil, &store.Error{Code: store.CodeNotSealed, Message: "the record has no sealed personal data"}
	}
	return p.tr.sealer.Open(ctx, rec.SubjectRef, rec.Sealed, audit.SealAAD(rec.Seq, rec.Kind, rec.MessageID))
}

const qCheckpoints = `SELECT region, seq, hash, first_seq, first_prev_hash, at, key_id, signature FROM audit_checkpoints ORDER BY id`

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Checkpoints lists every stored checkpoint, oldest first.
func (p *Postgres) Checkpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	if p.closed.Load() {
		return nil, store.ErrClosed
	}
	return readCheckpoints(ctx, p.pool)
}

func readCheckpoints(ctx context.Context, db querier) ([]audit.Checkpoint, error) {
	rows, err := db.Query(ctx, qCheckpoints)
	if err != nil {
		return nil, fmt.Errorf("store: checkpoints: %w", err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var at int64
		if err := rows.Scan(&c.Region, &c.Seq, &c.Hash, &c.FirstSeq, &c.FirstPrevHash, &at, &c.KeyID, &c.Signature); err != nil {
			return nil, fmt.Errorf("store: checkpoints: %w", err)
		}
		c.At = fromNanos(at)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: checkpoints: %w", err)
	}
	return out, nil
}

// WriteCheckpoint signs the chain head at now, with the anchor of the last purge, and stores it.
// An empty trail has no head to sign and gives code "checkpoint_invalid".
func (p *Postgres) WriteCheckpoint(ctx context.Context, now time.Time) (audit.Checkpoint, error) {
	if p.closed.Load() {
		return audit.Checkpoint{}, store.ErrClosed
	}
	return p.writeCheckpoint(ctx, now)
}

// writeCheckpoint signs and stores a checkpoint of the head while holding the head's lock, so that
// checkpoints are stored in head order and never race a purge's anchor.
func (p *Postgres) writeCheckpoint(ctx context.Context, now time.Time) (audit.Checkpoint, error) {
	var cp audit.Checkpoint
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		head, err := lockHead(ctx, tx)
		if err != nil {
			return err
		}
		var anchor audit.Anchor
		err = tx.QueryRow(ctx, `SELECT first_seq, first_prev_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1`).
			Scan(&anchor.Seq, &anchor.PrevHash)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		cp, err = p.insertCheckpoint(ctx, tx, head, anchor, now)
		return err
	})
	if err != nil {
		if audit.CodeOf(err) != "" {
			return audit.Checkpoint{}, err
		}
		return audit.Checkpoint{}, fmt.Errorf("store: checkpoint: %w", err)
	}
	for {
		c := p.tr.cpSeq.Load()
		if cp.Seq <= c || p.tr.cpSeq.CompareAndSwap(c, cp.Seq) {
			break
		}
	}
	return cp, nil
}

func lockHead(ctx context.Context, tx pgx.Tx) (audit.Head, error) {
	var head audit.Head
	err := tx.QueryRow(ctx, qLockHead).Scan(&head.Seq, &head.Hash)
	return head, err
}

func (p *Postgres) insertCheckpoint(ctx context.Context, tx pgx.Tx, head audit.Head, anchor audit.Anchor, now time.Time) (audit.Checkpoint, error) {
	cp, err := p.tr.kr.Checkpoint(head, anchor, now)
	if err != nil {
		return cp, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit_checkpoints (region, seq, hash, first_seq, first_prev_hash, at, key_id, signature)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, cp.Region, cp.Seq, cp.Hash, cp.FirstSeq, cp.FirstPrevHash, cp.At.UnixNano(), cp.KeyID, cp.Signature)
	return cp, err
}

// checkpointer signs a checkpoint every CheckpointEvery records or CheckpointInterval when the head
// moved, until Close.
func (p *Postgres) checkpointer() {
	t := p.tr
	defer close(t.done)
	var tick <-chan time.Time
	if t.interval > 0 {
		tk := time.NewTicker(t.interval)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case <-t.stop:
			return
		case <-t.kick:
		case <-tick:
		}
		if !t.moved() {
			continue
		}
		if _, err := p.writeCheckpoint(context.Background(), time.Now()); err != nil {
			p.log.Warn("store: audit checkpoint failed; will try again", "backend", "postgres", "err", err)
		}
	}
}

// minRetention is the shortest retention a purge accepts.
const minRetention = 365 * 24 * time.Hour

// checkPurge validates pp and fills its defaults, as the SQLite store does.
func checkPurge(pp *store.PurgePolicy) error {
	if pp.Default < minRetention {
		return invalid("the default retention must be at least 365 days")
	}
	for cat, d := range pp.PerCategory {
		if d < minRetention {
			return invalid("the retention of category " + cat + " must be at least 365 days")
		}
	}
	if pp.BatchSize < 0 {
		return invalid("the purge batch size must not be negative")
	}
	if pp.BatchSize == 0 {
		pp.BatchSize = 1000
	}
	if pp.Now.IsZero() {
		pp.Now = time.Now()
	}
	return nil
}

// cutoff returns the time before which a record of category is past its retention.
func cutoff(pp *store.PurgePolicy, category string) int64 {
	d, ok := pp.PerCategory[category]
	if !ok {
		d = pp.Default
	}
	return pp.Now.Add(-d).UnixNano()
}

// Purge deletes audit events and final messages past their retention, in transactions of at most
// p.BatchSize records. Events go first, oldest first, and only as a prefix of the trail (the first
// event still retained stops the purge of events): each batch locks the chain head, writes a
// checkpoint anchored at the first record it keeps and deletes the records before it, so the rest
// still verifies. An event's retention is its message's category's when the message is still
// stored, Default otherwise. Then final messages whose last change is past their category's
// retention are deleted.
func (p *Postgres) Purge(ctx context.Context, pp store.PurgePolicy) (store.PurgeResult, error) {
	var res store.PurgeResult
	if p.closed.Load() {
		return res, store.ErrClosed
	}
	if err := checkPurge(&pp); err != nil {
		return res, err
	}
	for {
		n := 0
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			var err error
			n, err = p.purgeEvents(ctx, tx, &pp)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("store: purge: %w", err)
		}
		if n == 0 {
			break
		}
		res.Events += n
		res.Batches++
	}
	args := []any{cutoff(&pp, "")}
	expr := "$1"
	if len(pp.PerCategory) > 0 {
		var b strings.Builder
		b.WriteString("CASE category")
		for cat := range pp.PerCategory {
			args = append(args, cat, cutoff(&pp, cat))
			fmt.Fprintf(&b, " WHEN $%d THEN $%d::bigint", len(args)-1, len(args))
		}
		b.WriteString(" ELSE $1::bigint END")
		expr = b.String()
	}
	args = append(args, pp.BatchSize)
	q := `DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE status IN ` + purgedStatuses + `
 AND updated_at < ` + expr + ` LIMIT $` + strconv.Itoa(len(args)) + `)`
	for {
		tag, err := p.pool.Exec(ctx, q, args...)
		if err != nil {
			return res, fmt.Errorf("store: purge: %w", err)
		}
		if tag.RowsAffected() == 0 {
			break
		}
		res.Messages += int(tag.RowsAffected())
		res.Batches++
	}
	return res, nil
}

// purgeEvents deletes one batch of expired events from the start of the trail, after a checkpoint
// anchored at the first record kept, and returns how many it deleted.
func (p *Postgres) purgeEvents(ctx context.Context, tx pgx.Tx, pp *store.PurgePolicy) (int, error) {
	head, err := lockHead(ctx, tx)
	if err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, `SELECT e.seq, e.at, e.prev_hash, COALESCE(m.category, '') FROM audit_events e
 LEFT JOIN messages m ON m.id = e.message_id ORDER BY e.seq LIMIT $1`, pp.BatchSize+1)
	if err != nil {
		return 0, err
	}
	n := 0
	var keep *audit.Anchor
	for rows.Next() {
		var seq, at int64
		var prev []byte
		var cat string
		if err := rows.Scan(&seq, &at, &prev, &cat); err != nil {
			rows.Close()
			return 0, err
		}
		if n == pp.BatchSize || at >= cutoff(pp, cat) {
			keep = &audit.Anchor{Seq: seq, PrevHash: prev}
			break
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	if keep == nil { // everything up to the head expired
		keep = &audit.Anchor{Seq: head.Seq + 1, PrevHash: head.Hash}
	}
	if _, err := p.insertCheckpoint(ctx, tx, head, *keep, pp.Now); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE seq < $1`, keep.Seq); err != nil {
		return 0, err
	}
	return n, nil
}

// subjectErasedData is the data of a "subject.erased" event.
type subjectErasedData struct {
	RequestedBy string `json:"requested_by"`
	Existed     bool   `json:"existed"`
}

// erasure is an EraseSubject in progress: who asked and when, and, once erase has committed,
// whether a stored key was destroyed and the seq of the "subject.erased" event.
type erasure struct {
	by      string
	at      time.Time
	existed bool
	seq     int64
}

// EraseSubject destroys the subject key of e164, so that every personal field sealed for it (audit
// records, outbox payloads) can no longer be opened, and in the same transaction masks the body of
// its stored messages and appends a "subject.erased" event naming requestedBy and the subject's
// lookup hash: all three commit, or none. Opt-outs keep blocking: they hold only the hash. Other
// replicas stop opening the subject's fields when the key leaves their sealer's cache.
func (p *Postgres) EraseSubject(ctx context.Context, e164, requestedBy string) (store.EraseResult, error) {
	if p.closed.Load() {
		return store.EraseResult{}, store.ErrClosed
	}
	if !validE164(e164) {
		return store.EraseResult{}, invalid("erasure needs a number in E.164")
	}
	if requestedBy == "" || len(requestedBy) > 256 {
		return store.EraseResult{}, invalid("erasure needs who requested it, at most 256 characters")
	}
	if err := checkText("the requester", requestedBy); err != nil {
		return store.EraseResult{}, err
	}
	ref := p.tr.kr.LookupHash(e164)
	req := &erasure{by: requestedBy, at: time.Now()}
	// The sealer holds the subject's lock while the erasure's transaction runs and drops the key from
	// this replica's cache once it has committed.
	keys := p.tr.keys
	if err := p.tr.sealer.EraseWith(ctx, ref, func(ctx context.Context) error { return keys.erase(ctx, ref, req) }); err != nil {
		return store.EraseResult{}, fmt.Errorf("store: erase subject: %w", err)
	}
	return store.EraseResult{Seq: req.seq, Existed: req.existed}, nil
}

// qSubjectBodies lists the id and body of the stored messages to subject $1, locked in id order. It
// goes from the subject's audit events, through the partial index audit_events_subject_ref, to
// their messages by primary key: messages has no index on to_hash, and a scan of it would read the
// whole table for every erasure. to_hash = $1 keeps out an event's id that names another message.
const qSubjectBodies = `SELECT id, body FROM messages WHERE id IN (SELECT message_id FROM audit_events
 WHERE subject_ref = $1 AND subject_ref <> '' AND message_id IS NOT NULL) AND to_hash = $1 ORDER BY id FOR UPDATE`

// eraseBodies replaces, in tx, the body of every stored message to subject ref with its full mask
// (sms.MaskAll, as mask style "full"), so that nothing of it is left in clear once the subject's
// key is gone. A body already masked is left alone, so erasing again writes nothing; updated_at
// stays, as the message's retention runs from it.
func eraseBodies(ctx context.Context, tx pgx.Tx, ref string) error {
	rows, err := tx.Query(ctx, qSubjectBodies, ref)
	if err != nil {
		return err
	}
	ids, bodies, err := store.MaskedBodies(rows)
	rows.Close()
	if err != nil || len(ids) == 0 {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE messages m SET body = u.body FROM unnest($1::text[], $2::text[]) AS u(id, body)
 WHERE m.id = u.id`, ids, bodies)
	return err
}

func validE164(n string) bool {
	if len(n) < 3 || len(n) > 16 || n[0] != '+' || n[1] == '0' {
		return false
	}
	for _, c := range n[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// VerifyAudit streams every event in seq order, with the stored checkpoints, through audit's
// verifier and returns its report; keys nil means the store's keyring. It reads one snapshot (a
// repeatable read transaction) in pages of a few thousand records, so memory stays flat.
func (p *Postgres) VerifyAudit(ctx context.Context, keys *audit.Keyring) (audit.Report, error) {
	if p.closed.Load() {
		return audit.Report{}, store.ErrClosed
	}
	if keys == nil {
		keys = p.tr.kr
	}
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return audit.Report{}, fmt.Errorf("store: verify: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	cps, err := readCheckpoints(ctx, tx)
	if err != nil {
		return audit.Report{}, err
	}
	v, err := audit.NewVerifier(audit.VerifyOptions{Region: keys.Region(), Keys: keys.PublicKeys(), Checkpoints: cps})
	if err != nil {
		return audit.Report{}, err
	}
	after := int64(-1 << 62)
	for {
		rows, err := tx.Query(ctx, `SELECT `+qRecordCols+` FROM audit_events e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2`, after, verifyPage)
		if err != nil {
			return audit.Report{}, fmt.Errorf("store: verify: %w", err)
		}
		n, stop := 0, false
		var rec store.AuditRecord
		for rows.Next() {
			rec = store.AuditRecord{}
			if err := scanRecord(rows, &rec); err != nil {
				rows.Close()
				return audit.Report{}, fmt.Errorf("store: verify: %w", err)
			}
			n++
			after = rec.Seq
			if v.Add(&rec.Event) != nil {
				stop = true
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return audit.Report{}, fmt.Errorf("store: verify: %w", err)
		}
		if stop || n < verifyPage {
			break
		}
	}
	return v.Finish(), nil
}
