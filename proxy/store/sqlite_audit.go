package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/sms"
)

// Error codes of the audit trail's store side.
const (
	// CodeNotSealed is returned by OpenPersonal for a record with no sealed personal part.
	CodeNotSealed = "not_sealed"
	// CodeSubjectErased is the failure code of a message whose outbox payload can no longer be
	// opened because its subject was erased.
	CodeSubjectErased = audit.CodeSubjectErased
	// CodeOutboxCorrupt is the failure code of a message whose sealed outbox payload does not open.
	CodeOutboxCorrupt = "outbox_corrupt"
)

var _ AuditTrail = (*SQLite)(nil)

// qSubjectKey reads a subject's wrapped key.
const qSubjectKey = `SELECT wrapped, key_id FROM subject_keys WHERE ref = ?`

// outboxKind binds a sealed outbox payload to its message (audit.SealAAD with seq 0).
const outboxKind = "outbox.payload"

func outboxAAD(messageID string) []byte { return audit.SealAAD(0, outboxKind, messageID) }

// trail is a store's side of the audit trail: the keyring, the chain the writer advances, the
// sealer and the background checkpointer's state.
type trail struct {
	kr     *audit.Keyring
	region string
	chain  *audit.Chain // the writer goroutine's only
	sealer *audit.Sealer
	keys   *sqliteSubjectKeys
	tx     *chainTx

	committed atomic.Int64 // seq of the last committed record
	cpSeq     atomic.Int64 // head seq of the last checkpoint
	every     int64
	interval  time.Duration
	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
}

// chainTx wraps the writer's transactions so that the chain follows them: a rolled back savepoint
// or transaction moves the chain back to where it was when it began.
type chainTx struct {
	batchTx
	t               *trail
	batchMark, mark audit.Head
}

func (c *chainTx) Begin() error {
	c.batchMark = c.t.chain.Head()
	return c.batchTx.Begin()
}

func (c *chainTx) Savepoint() error {
	c.mark = c.t.chain.Head()
	return c.batchTx.Savepoint()
}

func (c *chainTx) RollbackToSavepoint() error {
	c.t.chain.Reset(c.mark)
	return c.batchTx.RollbackToSavepoint()
}

func (c *chainTx) Rollback() error {
	c.t.chain.Reset(c.batchMark)
	return c.batchTx.Rollback()
}

func (c *chainTx) Commit() error {
	if err := c.batchTx.Commit(); err != nil {
		return err
	}
	c.t.committed.Store(c.t.chain.Head().Seq)
	return nil
}

// moved reports whether records were committed since the last checkpoint.
func (t *trail) moved() bool { return t.committed.Load() > t.cpSeq.Load() }

// ended is the writer's end-of-transaction hook.
func (s *SQLite) ended(committed bool) {
	s.live.ended(committed)
	t := s.trail
	if committed && t.every > 0 && t.committed.Load()-t.cpSeq.Load() >= t.every {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

func (t *trail) startCheckpointer(run func()) {
	t.kick, t.stop, t.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go run()
}

func (t *trail) stopCheckpointer() {
	close(t.stop)
	<-t.done
}

// auditCheckpointer signs a checkpoint every CheckpointEvery records or CheckpointInterval when the
// head moved, until Close.
func (s *SQLite) auditCheckpointer() {
	t := s.trail
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
		if _, err := s.writeCheckpoint(context.Background(), time.Now()); err != nil {
			s.log.Warn("store: audit checkpoint failed; will try again", "err", err)
		}
	}
}

// openTrail loads the chain head and the last checkpoint, chains records written before the trail
// was chained, and converts opt-outs and consents still keyed by plain numbers.
func (s *SQLite) openTrail(ctx context.Context, opts Options) (*trail, error) {
	kr := opts.Audit
	if kr == nil {
		region := opts.Region
		if region == "" {
			region = "dev"
		}
		var err error
		if kr, err = audit.GenerateKeyring(region, time.Now()); err != nil {
			return nil, fmt.Errorf("store: audit keyring: %w", err)
		}
		s.log.Warn("store: no audit keyring configured; using an ephemeral one, so sealed data and checkpoints of this run cannot be read or verified after a restart")
	}
	t := &trail{kr: kr, region: kr.Region(), every: int64(opts.CheckpointEvery), interval: opts.CheckpointInterval}
	keys := &sqliteSubjectKeys{s: s, pending: map[string]pendingKey{}}
	sealer, err := audit.NewSealer(kr, keys, audit.SealerOptions{})
	if err != nil {
		return nil, fmt.Errorf("store: audit sealer: %w", err)
	}
	t.sealer, t.keys = sealer, keys
	head, err := s.chainLegacy(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("store: chain the audit trail: %w", err)
	}
	t.chain = audit.NewChain(t.region, head)
	t.committed.Store(head.Seq)
	var cp sql.NullInt64
	if err := s.wconn.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit_checkpoints`).Scan(&cp); err != nil {
		return nil, fmt.Errorf("store: read checkpoints: %w", err)
	}
	t.cpSeq.Store(cp.Int64)
	if err := s.hashLegacyNumbers(ctx, kr); err != nil {
		return nil, fmt.Errorf("store: hash opt-out and consent numbers: %w", err)
	}
	t.tx = &chainTx{batchTx: s.w, t: t}
	return t, nil
}

// chainLegacy links the records written before the trail was chained (hash NULL), in seq order, and
// returns the head.
func (s *SQLite) chainLegacy(ctx context.Context, t *trail) (audit.Head, error) {
	var head audit.Head
	var seq sql.NullInt64
	var hash []byte
	err := s.wconn.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return head, err
	}
	head = audit.Head{Seq: seq.Int64, Hash: hash}
	// A purge that removed every record leaves the head in its checkpoint only.
	var cpSeq int64
	var cpHash []byte
	err = s.wconn.QueryRowContext(ctx, `SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC, id DESC LIMIT 1`).Scan(&cpSeq, &cpHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return head, err
	}
	if cpSeq > head.Seq {
		head = audit.Head{Seq: cpSeq, Hash: cpHash}
	}
	var legacy int
	if err := s.wconn.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_events WHERE hash IS NULL`).Scan(&legacy); err != nil || legacy == 0 {
		return head, err
	}
	chain := audit.NewChain(t.region, head)
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return head, err
	}
	type row struct {
		seq  int64
		e    audit.Event
		id   sql.NullString
		data string
	}
	last := int64(-1)
	for {
		rows, err := s.wconn.QueryContext(ctx, `SELECT seq, at, kind, message_id, app, data FROM audit_events
 WHERE hash IS NULL AND seq > ? ORDER BY seq LIMIT 1000`, last)
		if err != nil {
			_, _ = s.wconn.ExecContext(ctx, "ROLLBACK")
			return head, err
		}
		var page []row
		for rows.Next() {
			var r row
			var at int64
			if err := rows.Scan(&r.seq, &at, &r.e.Kind, &r.id, &r.e.App, &r.data); err != nil {
				rows.Close()
				_, _ = s.wconn.ExecContext(ctx, "ROLLBACK")
				return head, err
			}
			r.e.At, r.e.MessageID, r.e.Data = time.Unix(0, at), r.id.String, []byte(r.data)
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			_, _ = s.wconn.ExecContext(ctx, "ROLLBACK")
			return head, err
		}
		if len(page) == 0 {
			break
		}
		for i := range page {
			r := &page[i]
			chain.Link(&r.e)
			if _, err := s.wconn.ExecContext(ctx, `UPDATE audit_events SET seq = ?, prev_hash = ?, hash = ? WHERE seq = ?`,
				r.e.Seq, r.e.PrevHash, r.e.Hash, r.seq); err != nil {
				_, _ = s.wconn.ExecContext(ctx, "ROLLBACK")
				return head, err
			}
			last = r.seq
		}
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = s.wconn.ExecContext(ctx, "ROLLBACK")
		return head, err
	}
	s.log.Info("store: chained audit events written before the trail was chained", "records", legacy)
	return chain.Head(), nil
}

// hashLegacyNumbers replaces the plain E.164 numbers of opt-outs and consents written before the
// lookup hash with the hash and the masked number.
func (s *SQLite) hashLegacyNumbers(ctx context.Context, kr *audit.Keyring) error {
	for _, table := range []string{"opt_outs", "consents"} {
		rows, err := s.wconn.QueryContext(ctx, `SELECT seq, number FROM `+table+` WHERE number LIKE '+%'`)
		if err != nil {
			return err
		}
		type row struct {
			seq    int64
			number string
		}
		var found []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.seq, &r.number); err != nil {
				rows.Close()
				return err
			}
			found = append(found, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range found {
			if _, err := s.wconn.ExecContext(ctx, `UPDATE `+table+` SET number = ?, masked = ? WHERE seq = ?`,
				kr.LookupHash(r.number), sms.MaskPhone(r.number), r.seq); err != nil {
				return err
			}
		}
	}
	return nil
}

// sqliteSubjectKeys is the subject key table: reads on the read pool, writes through the writer.
//
// A new subject key is not written on its own: Put keeps it pending, and the first write that seals
// data under it (an Accept or a Refuse) inserts it in the same transaction. A key thus costs no commit
// of its own, and no sealed record is ever durable without its key. The Sealer creates at most one key
// per subject at a time in this process, and only this process writes the file, so a pending key
// cannot clash with another writer's.
type sqliteSubjectKeys struct {
	s *SQLite

	mu      sync.Mutex
	pending map[string]pendingKey // created, not yet known to be committed
	gen     uint64
	// hints holds what RecipientFacts just read of a subject's key (or that it has none), for the
	// Accept that follows it to use instead of reading the key again; each is used once.
	hints *simplelru.LRU[string, keyHint]
	// changes counts Delete and Replace calls: a hint read before one of them may be stale.
	changes uint64
}

// keyHint is a subject key as read with the recipient's facts: wrapped is nil when it had none.
type keyHint struct {
	wrapped []byte
	keyID   string
	at      time.Time
	changes uint64 // sqliteSubjectKeys.changes when the read began
}

// A key hint is used within hintTTL of its read, or read again: the facts read and the Accept that
// seals under the key follow each other within one request. Only this process creates and
// deletes subject keys in the file (Put keeps new ones pending, checked before any hint, and
// Delete drops the hint), so a fresh hint says what a read would.
const (
	hintTTL   = time.Second
	hintSlots = 4096
)

// readStarts returns what a hint read from now on records as its changes.
func (k *sqliteSubjectKeys) readStarts() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.changes
}

// hint keeps what RecipientFacts read of ref's key, unless a key was deleted or replaced since the
// read began (h.changes).
func (k *sqliteSubjectKeys) hint(ref string, h keyHint) {
	h.at = time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if h.changes != k.changes {
		return
	}
	if k.hints == nil {
		k.hints, _ = simplelru.NewLRU[string, keyHint](hintSlots, nil)
	}
	k.hints.Add(ref, h)
}

// takeHint returns and forgets a fresh hint for ref.
func (k *sqliteSubjectKeys) takeHint(ref string) (keyHint, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.hints == nil {
		return keyHint{}, false
	}
	h, ok := k.hints.Peek(ref)
	if ok {
		k.hints.Remove(ref)
	}
	return h, ok && h.changes == k.changes && time.Since(h.at) < hintTTL
}

type pendingKey struct {
	wrapped []byte
	keyID   string
	gen     uint64 // tells a key from a later one of the same subject (after an erasure)
}

var (
	_ audit.SubjectKeys        = (*sqliteSubjectKeys)(nil)
	_ audit.SubjectKeyReplacer = (*sqliteSubjectKeys)(nil)
)

func (k *sqliteSubjectKeys) Get(ctx context.Context, ref string) ([]byte, string, error) {
	if pk, ok := k.pendingFor(ref); ok {
		return pk.wrapped, pk.keyID, nil
	}
	if h, ok := k.takeHint(ref); ok {
		if h.wrapped == nil {
			return nil, "", audit.ErrNoSubjectKey
		}
		return h.wrapped, h.keyID, nil
	}
	var wrapped []byte
	var keyID string
	err := k.s.r.subjectKey.QueryRowContext(ctx, ref).Scan(&wrapped, &keyID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", audit.ErrNoSubjectKey
	}
	return wrapped, keyID, err
}

// Put keeps a new key pending until a write that uses it inserts it (see the type's comment).
func (k *sqliteSubjectKeys) Put(ctx context.Context, ref string, wrapped []byte, keyID string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.pending[ref]; ok {
		return audit.ErrSubjectKeyExists
	}
	k.gen++
	k.pending[ref] = pendingKey{wrapped: wrapped, keyID: keyID, gen: k.gen}
	return nil
}

// pendingFor returns the pending key of ref, if it has one.
func (k *sqliteSubjectKeys) pendingFor(ref string) (pendingKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	pk, ok := k.pending[ref]
	return pk, ok
}

// settle forgets the pending key of ref once a write that inserted it (generation gen) has committed.
func (k *sqliteSubjectKeys) settle(ref string, gen uint64) {
	if gen == 0 {
		return
	}
	k.mu.Lock()
	if pk, ok := k.pending[ref]; ok && pk.gen == gen {
		delete(k.pending, ref)
	}
	k.mu.Unlock()
}

// Delete destroys ref's key, as the PostgreSQL store's does. EraseSubject erases through erase,
// which also masks the subject's message bodies and appends the "subject.erased" event.
func (k *sqliteSubjectKeys) Delete(ctx context.Context, ref string) error {
	return k.erase(ctx, ref, nil)
}

// erase destroys ref's key and, when req is not nil, masks the subject's message bodies and appends
// req's "subject.erased" event, in one writer transaction that commits all or none.
//
// Hints taken before the DELETE commits are void: changes moves on both before it is queued and
// after it has committed, so a facts read that found the key while the DELETE waited for the
// writer cannot hand the erased key back to the sealer.
func (k *sqliteSubjectKeys) erase(ctx context.Context, ref string, req *erasure) error {
	k.mu.Lock()
	delete(k.pending, ref)
	k.changes++
	k.mu.Unlock()
	err := k.s.gc.submit(ctx, func() error {
		r, err := k.s.wconn.ExecContext(bg, `DELETE FROM subject_keys WHERE ref = ?`, ref)
		if err != nil {
			return err
		}
		if req == nil {
			return nil
		}
		if err := k.s.eraseBodies(ref); err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		req.existed = n > 0
		req.seq, err = k.s.appendEvent(auditRow{at: req.at.UnixNano(), kind: AuditSubjectErased, ref: ref,
			data: mustJSON(subjectErasedData{RequestedBy: req.by, Existed: req.existed})})
		return err
	})
	k.mu.Lock()
	k.changes++
	k.mu.Unlock()
	return err
}

// qSubjectBodies lists the id and body of the stored messages to subject ref (both arguments). It
// goes from the subject's audit events, through the partial index audit_events_subject_ref, to
// their messages by primary key: messages has no index on to_hash, and a scan of it would read the
// whole table for every erasure. to_hash = ref keeps out an event's id that names another message.
const qSubjectBodies = `SELECT id, body FROM messages WHERE id IN (SELECT message_id FROM audit_events
 WHERE subject_ref = ? AND subject_ref <> '' AND message_id IS NOT NULL) AND to_hash = ?`

// eraseBodies replaces the body of every stored message to subject ref with its full mask
// (sms.MaskAll, as mask style "full"), so that nothing of it is left in clear once the subject's
// key is gone. A body already masked is left alone, so erasing again writes nothing; updated_at
// stays, as the message's retention runs from it. Only the writer calls it.
func (s *SQLite) eraseBodies(ref string) error {
	rows, err := s.wconn.QueryContext(bg, qSubjectBodies, ref, ref)
	if err != nil {
		return err
	}
	ids, bodies, err := MaskedBodies(rows)
	rows.Close()
	if err != nil {
		return err
	}
	for i, id := range ids {
		if _, err := s.wconn.ExecContext(bg, `UPDATE messages SET body = ? WHERE id = ?`, bodies[i], id); err != nil {
			return err
		}
	}
	return nil
}

func (k *sqliteSubjectKeys) Replace(ctx context.Context, ref string, wrapped []byte, keyID string) error {
	k.mu.Lock()
	k.changes++
	k.mu.Unlock()
	return k.s.gc.submit(ctx, func() error {
		_, err := k.s.wconn.ExecContext(bg, `UPDATE subject_keys SET wrapped = ?, key_id = ? WHERE ref = ?`, wrapped, keyID, ref)
		return err
	})
}

// link makes row the chain's next record: it seals the personal part under the row's subject key,
// rounds the time to what the hash covers and fills seq and hashes. Only the writer calls it.
func (t *trail) link(r *auditRow) error {
	e := audit.Event{At: time.Unix(0, r.at), Kind: r.kind, App: r.app, Data: []byte(r.data), SubjectRef: r.ref}
	if id, ok := r.id.(string); ok {
		e.MessageID = id
	}
	e.Seq = t.chain.Next()
	if r.key != nil && len(r.personal) > 0 {
		sealed, err := r.key.Seal(r.personal, audit.SealAAD(e.Seq, e.Kind, e.MessageID))
		if err != nil {
			return err
		}
		e.Sealed, e.SubjectRef = sealed, r.key.Ref()
	}
	t.chain.Link(&e)
	// at keeps its nanoseconds: the hash covers its microseconds, which truncating again gives back.
	r.seq, r.sealed, r.ref, r.prev, r.hash = e.Seq, e.Sealed, e.SubjectRef, e.PrevHash, e.Hash
	return nil
}

// appendEvent links and inserts one record on the writer's connection and returns its seq.
func (s *SQLite) appendEvent(r auditRow) (int64, error) {
	if err := s.trail.link(&r); err != nil {
		return 0, err
	}
	_, err := s.w.insAudit.ExecContext(bg, r.seq, r.at, r.kind, r.id, r.app, r.data, r.sealed, r.ref, r.prev, r.hash)
	return r.seq, err
}

// AppendEvent appends an event that belongs to no message, such as a policy change, chained with
// the others in one grouped write.
func (s *SQLite) AppendEvent(ctx context.Context, e AuditAppend) error {
	if e.Kind == "" || len(e.Kind) > 64 {
		return invalid("an audit event needs a kind of at most 64 characters")
	}
	data, err := jsonText("audit data", e.Data)
	if err != nil {
		return err
	}
	at := orNow(e.At).UnixNano()
	return s.gc.submit(ctx, func() error {
		_, err := s.appendEvent(auditRow{at: at, kind: e.Kind, app: e.App, data: data})
		return err
	})
}

const qRecordCols = `e.seq, e.at, e.kind, e.message_id, e.app, e.data, e.sealed, e.subject_ref, e.prev_hash, e.hash`

// scanRecord reads one row of qRecordCols.
func scanRecord(rows *sql.Rows, rec *AuditRecord, extra ...any) error {
	var at int64
	var id sql.NullString
	var data string
	dst := append([]any{&rec.Seq, &at, &rec.Kind, &id, &rec.App, &data, &rec.Sealed, &rec.SubjectRef, &rec.PrevHash, &rec.Hash}, extra...)
	if err := rows.Scan(dst...); err != nil {
		return err
	}
	// time.Unix, not fromNanos: an event at the Unix epoch (at 0) was hashed as such (trail.link).
	rec.At, rec.MessageID, rec.Data = time.Unix(0, at), id.String, []byte(data)
	return nil
}

// AuditRange lists stored events in seq order that match q, with the id of the data key that wrapped
// each sealed record's subject key (empty once the subject was erased).
func (s *SQLite) AuditRange(ctx context.Context, q AuditQuery) ([]AuditRecord, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if q.Limit < 0 || q.AfterSeq < 0 {
		return nil, invalid("limit and after must not be negative")
	}
	if q.Limit == 0 {
		q.Limit = 1000
	}
	query, args := s.auditRangeSQL(q)
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: audit range: %w", err)
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		var rec AuditRecord
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

// auditRangeSQL builds AuditRange's statement for q.
func (s *SQLite) auditRangeSQL(q AuditQuery) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT ` + qRecordCols + `, COALESCE(k.key_id, '') FROM audit_events e
 LEFT JOIN subject_keys k ON length(e.sealed) > 0 AND k.ref = e.subject_ref WHERE e.seq > ?`)
	args := []any{q.AfterSeq}
	if !q.From.IsZero() {
		b.WriteString(` AND e.at >= ?`)
		args = append(args, q.From.UnixNano())
	}
	if !q.To.IsZero() {
		b.WriteString(` AND e.at < ?`)
		args = append(args, q.To.UnixNano())
	}
	if q.Recipient != "" {
		// subject_ref <> '' (always true of a lookup hash) lets SQLite use the partial index
		// audit_events_subject_ref; without it the search scanned the whole trail in seq order.
		b.WriteString(` AND e.subject_ref = ? AND e.subject_ref <> ''`)
		args = append(args, s.trail.kr.LookupHash(q.Recipient))
	}
	if q.MessageID != "" {
		b.WriteString(` AND e.message_id = ?`)
		args = append(args, q.MessageID)
	}
	b.WriteString(` ORDER BY e.seq LIMIT ?`)
	args = append(args, q.Limit)
	return b.String(), args
}

// OpenPersonal decrypts rec's sealed personal part. After the subject's erasure it fails with an
// *audit.Error of code "subject_erased"; a record with nothing sealed gives code "not_sealed".
func (s *SQLite) OpenPersonal(ctx context.Context, rec AuditRecord) ([]byte, error) {
	return openPersonal(ctx, s.trail.sealer, rec)
}

func openPersonal(ctx context.Context, sealer *audit.Sealer, rec AuditRecord) ([]byte, error) {
	if len(rec.Sealed) == 0 {
		return nil, &Error{Code: CodeNotSealed, Message: "the record has no sealed personal data"}
	}
	return sealer.Open(ctx, rec.SubjectRef, rec.Sealed, audit.SealAAD(rec.Seq, rec.Kind, rec.MessageID))
}

const qCheckpoints = `SELECT region, seq, hash, first_seq, first_prev_hash, at, key_id, signature FROM audit_checkpoints ORDER BY id`

// Checkpoints lists every stored checkpoint, oldest first.
func (s *SQLite) Checkpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return readCheckpoints(ctx, s.rdb)
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func readCheckpoints(ctx context.Context, db querier) ([]audit.Checkpoint, error) {
	rows, err := db.QueryContext(ctx, qCheckpoints)
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
func (s *SQLite) WriteCheckpoint(ctx context.Context, now time.Time) (audit.Checkpoint, error) {
	if s.closed.Load() {
		return audit.Checkpoint{}, ErrClosed
	}
	return s.writeCheckpoint(ctx, now)
}

func (s *SQLite) writeCheckpoint(ctx context.Context, now time.Time) (audit.Checkpoint, error) {
	var cp audit.Checkpoint
	err := s.gc.submit(ctx, func() error {
		var anchor audit.Anchor
		err := s.wconn.QueryRowContext(bg, `SELECT first_seq, first_prev_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1`).
			Scan(&anchor.Seq, &anchor.PrevHash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		cp, err = s.insertCheckpoint(s.trail.chain.Head(), anchor, now)
		return err
	})
	if err != nil {
		return audit.Checkpoint{}, err
	}
	s.trail.cpSeq.Store(max(s.trail.cpSeq.Load(), cp.Seq))
	return cp, nil
}

// insertCheckpoint signs and stores a checkpoint on the writer's connection.
func (s *SQLite) insertCheckpoint(head audit.Head, anchor audit.Anchor, now time.Time) (audit.Checkpoint, error) {
	cp, err := s.trail.kr.Checkpoint(head, anchor, now)
	if err != nil {
		return cp, err
	}
	_, err = s.wconn.ExecContext(bg, `INSERT INTO audit_checkpoints (region, seq, hash, first_seq, first_prev_hash, at, key_id, signature)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, cp.Region, cp.Seq, cp.Hash, cp.FirstSeq, cp.FirstPrevHash, cp.At.UnixNano(), cp.KeyID, cp.Signature)
	return cp, err
}

// minRetention is the shortest retention a purge accepts.
const minRetention = 365 * 24 * time.Hour

// check validates p and fills its defaults.
func (p *PurgePolicy) check() error {
	if p.Default < minRetention {
		return invalid("the default retention must be at least 365 days")
	}
	for cat, d := range p.PerCategory {
		if d < minRetention {
			return invalid("the retention of category " + cat + " must be at least 365 days")
		}
	}
	if p.BatchSize < 0 {
		return invalid("the purge batch size must not be negative")
	}
	if p.BatchSize == 0 {
		p.BatchSize = 1000
	}
	if p.Now.IsZero() {
		p.Now = time.Now()
	}
	return nil
}

// cutoff returns the time before which a record of category is past its retention.
func (p *PurgePolicy) cutoff(category string) int64 {
	d, ok := p.PerCategory[category]
	if !ok {
		d = p.Default
	}
	return p.Now.Add(-d).UnixNano()
}

// cutoffSQL returns a SQL expression of col giving the cutoff of its category, and its arguments.
func (p *PurgePolicy) cutoffSQL(col string) (string, []any) {
	if len(p.PerCategory) == 0 {
		return "?", []any{p.cutoff("")}
	}
	var b strings.Builder
	var args []any
	b.WriteString("CASE " + col)
	for cat := range p.PerCategory {
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, cat, p.cutoff(cat))
	}
	b.WriteString(" ELSE ? END")
	return b.String(), append(args, p.cutoff(""))
}

// Purge deletes audit events and final messages past their retention, in transactions of at most
// p.BatchSize records. Events go first, oldest first, and only as a prefix of the trail (the first
// event still retained stops the purge of events): each batch writes a checkpoint anchored at the
// first record it keeps before deleting the records before it, so the rest still verifies. An
// event's retention is its message's category's when the message is still stored, Default
// otherwise. Then final messages whose last change is past their category's retention are deleted.
func (s *SQLite) Purge(ctx context.Context, p PurgePolicy) (PurgeResult, error) {
	var res PurgeResult
	if s.closed.Load() {
		return res, ErrClosed
	}
	if err := p.check(); err != nil {
		return res, err
	}
	for {
		n := 0
		err := s.gc.submit(ctx, func() error {
			var err error
			n, err = s.purgeEvents(&p)
			return err
		})
		if err != nil {
			return res, err
		}
		if n == 0 {
			break
		}
		res.Events += n
		res.Batches++
	}
	expr, cargs := p.cutoffSQL("category")
	// A message goes once its retention has passed since its last change, when nothing more will
	// happen to it: a final status, or sent and never confirmed (a receipt a year late is not
	// coming; keeping the row would keep its body past retention). One still in the outbox stays.
	q := `DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE status IN ('delivered', 'failed', 'undeliverable', 'sent')
 AND updated_at < ` + expr + ` LIMIT ?)`
	for {
		n := int64(0)
		err := s.gc.submit(ctx, func() error {
			r, err := s.wconn.ExecContext(bg, q, append(cargs, p.BatchSize)...)
			if err != nil {
				return err
			}
			n, err = r.RowsAffected()
			return err
		})
		if err != nil {
			return res, err
		}
		if n == 0 {
			break
		}
		res.Messages += int(n)
		res.Batches++
	}
	return res, nil
}

// purgeEvents deletes one batch of expired events from the start of the trail, after a checkpoint
// anchored at the first record kept, and returns how many it deleted. Only the writer calls it.
func (s *SQLite) purgeEvents(p *PurgePolicy) (int, error) {
	rows, err := s.wconn.QueryContext(bg, `SELECT e.seq, e.at, e.prev_hash, COALESCE(m.category, '') FROM audit_events e
 LEFT JOIN messages m ON m.id = e.message_id ORDER BY e.seq LIMIT ?`, p.BatchSize+1)
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
		if n == p.BatchSize || at >= p.cutoff(cat) {
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
	head := s.trail.chain.Head()
	if keep == nil { // everything up to the head expired
		keep = &audit.Anchor{Seq: head.Seq + 1, PrevHash: head.Hash}
	}
	if _, err := s.insertCheckpoint(head, *keep, p.Now); err != nil {
		return 0, err
	}
	if _, err := s.wconn.ExecContext(bg, `DELETE FROM audit_events WHERE seq < ?`, keep.Seq); err != nil {
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
// lookup hash: all three commit, or none. Opt-outs keep blocking: they hold only the hash.
func (s *SQLite) EraseSubject(ctx context.Context, e164, requestedBy string) (EraseResult, error) {
	if s.closed.Load() {
		return EraseResult{}, ErrClosed
	}
	if !validE164(e164) {
		return EraseResult{}, invalid("erasure needs a number in E.164")
	}
	if requestedBy == "" || len(requestedBy) > 256 {
		return EraseResult{}, invalid("erasure needs who requested it, at most 256 characters")
	}
	ref := s.trail.kr.LookupHash(e164)
	req := &erasure{by: requestedBy, at: time.Now()}
	// The sealer holds the subject's lock while the erasure's transaction runs and drops the key from
	// its cache once it has committed.
	keys := s.trail.keys
	if err := s.trail.sealer.EraseWith(ctx, ref, func(ctx context.Context) error { return keys.erase(ctx, ref, req) }); err != nil {
		return EraseResult{}, fmt.Errorf("store: erase subject: %w", err)
	}
	return EraseResult{Seq: req.seq, Existed: req.existed}, nil
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

// VerifyAudit streams every event in seq order, in one read transaction with the stored
// checkpoints, through audit's verifier and returns its report; keys nil means the store's keyring.
func (s *SQLite) VerifyAudit(ctx context.Context, keys *audit.Keyring) (audit.Report, error) {
	if s.closed.Load() {
		return audit.Report{}, ErrClosed
	}
	if keys == nil {
		keys = s.trail.kr
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return audit.Report{}, fmt.Errorf("store: verify: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	cps, err := readCheckpoints(ctx, tx)
	if err != nil {
		return audit.Report{}, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+qRecordCols+` FROM audit_events e ORDER BY e.seq`)
	if err != nil {
		return audit.Report{}, fmt.Errorf("store: verify: %w", err)
	}
	defer rows.Close()
	return verifyRows(keys, cps, func(e *audit.Event) (bool, error) {
		if !rows.Next() {
			return false, rows.Err()
		}
		rec := AuditRecord{}
		if err := scanRecord(rows, &rec); err != nil {
			return false, err
		}
		*e = rec.Event
		return true, nil
	})
}

// verifyRows runs a verifier over the events next yields.
func verifyRows(keys *audit.Keyring, cps []audit.Checkpoint, next func(e *audit.Event) (bool, error)) (audit.Report, error) {
	v, err := audit.NewVerifier(audit.VerifyOptions{Region: keys.Region(), Keys: keys.PublicKeys(), Checkpoints: cps})
	if err != nil {
		return audit.Report{}, err
	}
	var e audit.Event
	for {
		ok, err := next(&e)
		if err != nil {
			return audit.Report{}, fmt.Errorf("store: verify: %w", err)
		}
		if !ok {
			break
		}
		if v.Add(&e) != nil {
			break
		}
	}
	return v.Finish(), nil
}
