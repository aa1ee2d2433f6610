package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

const (
	// qLockHead locks the chain's head row until the batch commits or rolls back.
	qLockHead = `SELECT seq, hash FROM chain_head FOR UPDATE`
	// qPendingEvents reads the batch's own pending events (others' are uncommitted, so invisible, and
	// every batch empties the table before it commits).
	qPendingEvents = `SELECT id, at, kind, COALESCE(message_id, ''), app, data::text, subject_ref, tag FROM audit_pending ORDER BY id`
	// qMovePending moves the pending events into the trail with their seq, sealed part and hashes.
	qMovePending = `INSERT INTO audit_events (seq, at, kind, message_id, app, data, sealed, subject_ref, prev_hash, hash)
SELECT u.seq, p.at, p.kind, p.message_id, p.app, p.data, u.sealed, u.ref, u.prev, u.hash
FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[], $5::bytea[], $6::bytea[]) AS u(id, seq, sealed, ref, prev, hash)
JOIN audit_pending p ON p.id = u.id ORDER BY u.seq`
	// qInsPending inserts one pending event with a tag (0: none).
	qInsPending = `INSERT INTO audit_pending (at, kind, message_id, app, data, subject_ref, tag) VALUES ($1, $2, $3, $4, $5, $6, $7)`
)

// sealReq is an operation's request to the writer about its one audit event: seal personal under
// key once the event's seq is known, and report that seq.
type sealReq struct {
	key      *audit.SubjectKey // nil: nothing to seal
	personal []byte
	tag      int64 // set by the writer for each send
	seq      int64 // set by the writer when it links the event
}

// pendingEvent is an audit event an operation wrote in the current batch, not yet linked.
type pendingEvent struct {
	id  int64
	at  int64
	e   audit.Event
	tag int64
}

// readPending reads the locked chain head and the batch's pending events.
func readPending(br pgx.BatchResults) (audit.Head, []pendingEvent, error) {
	var head audit.Head
	if err := br.QueryRow().Scan(&head.Seq, &head.Hash); err != nil {
		return head, nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return head, nil, err
	}
	defer rows.Close()
	var out []pendingEvent
	for rows.Next() {
		var p pendingEvent
		var data string
		if err := rows.Scan(&p.id, &p.at, &p.e.Kind, &p.e.MessageID, &p.e.App, &data, &p.e.SubjectRef, &p.tag); err != nil {
			return head, nil, err
		}
		p.e.Data = []byte(data)
		out = append(out, p)
	}
	return head, out, rows.Err()
}

// links is a batch's pending events linked into the chain, as qMovePending's arrays.
type links struct {
	ids, seqs  []int64
	sealed     [][]byte
	refs       []string
	prev, hash [][]byte
	head       audit.Head
}

// link chains pending after head, in order, sealing the personal part of tagged events.
func (t *trail) link(head audit.Head, pending []pendingEvent, tags map[int64]*sealReq) (links, error) {
	chain := audit.NewChain(t.region, head)
	n := len(pending)
	l := links{ids: make([]int64, n), seqs: make([]int64, n), sealed: make([][]byte, n), refs: make([]string, n),
		prev: make([][]byte, n), hash: make([][]byte, n)}
	for i := range pending {
		p := &pending[i]
		e := p.e
		e.At = time.Unix(0, p.at) // not fromNanos: an event at the Unix epoch (at 0) is one
		e.Seq = chain.Next()
		if r := tags[p.tag]; p.tag != 0 && r != nil {
			r.seq = e.Seq
			if r.key != nil && len(r.personal) > 0 {
				sealed, err := r.key.Seal(r.personal, audit.SealAAD(e.Seq, e.Kind, e.MessageID))
				if err != nil {
					return l, err
				}
				e.Sealed, e.SubjectRef = sealed, r.key.Ref()
			}
		}
		chain.Link(&e)
		l.ids[i], l.seqs[i], l.sealed[i], l.refs[i], l.prev[i], l.hash[i] = p.id, e.Seq, e.Sealed, e.SubjectRef, e.PrevHash, e.Hash
	}
	l.head = chain.Head()
	return l, nil
}

// linkPendingTx links the pending events of tx after the chain head, which it locks, moves them
// into the trail and advances the head, as the writer does for a batch (send), and returns the new
// head. The caller commits tx.
func (t *trail) linkPendingTx(ctx context.Context, tx pgx.Tx, tags map[int64]*sealReq) (audit.Head, error) {
	b := &pgx.Batch{}
	b.Queue(qLockHead)
	b.Queue(qPendingEvents)
	br := tx.SendBatch(ctx, b)
	head, pending, err := readPending(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil || len(pending) == 0 {
		return head, err
	}
	l, err := t.link(head, pending, tags)
	if err != nil {
		return head, err
	}
	b = &pgx.Batch{}
	l.queueAdvance(b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return head, err
	}
	return l.head, nil
}

// queueAdvance queues what makes l the trail: the linked events moved from audit_pending into
// audit_events, and the chain head moved to l's last event.
func (l links) queueAdvance(b *pgx.Batch) {
	b.Queue(qMovePending, l.ids, l.seqs, l.sealed, l.refs, l.prev, l.hash)
	b.Queue(`DELETE FROM audit_pending`)
	b.Queue(`UPDATE chain_head SET seq = $1, hash = $2`, l.head.Seq, l.head.Hash)
}

// trail is the store's side of the audit trail: the keyring, the sealer and the background
// checkpointer's state. The chain itself lives in the chain_head row, shared by every replica.
type trail struct {
	kr     *audit.Keyring
	region string
	sealer *audit.Sealer
	keys   *pgSubjectKeys // the sealer's key store

	committed atomic.Int64 // head seq of the last batch this process committed
	cpSeq     atomic.Int64 // head seq of the last checkpoint this process knows of
	every     int64
	interval  time.Duration
	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
}

// committedUpTo notes a commit that moved the head to seq and wakes the checkpointer when the head
// moved by CheckpointEvery since the last checkpoint.
func (t *trail) committedUpTo(seq int64) {
	for {
		c := t.committed.Load()
		if seq <= c || t.committed.CompareAndSwap(c, seq) {
			break
		}
	}
	if t.every > 0 && t.committed.Load()-t.cpSeq.Load() >= t.every && t.kick != nil {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// moved reports whether this process committed records since the last checkpoint.
func (t *trail) moved() bool { return t.committed.Load() > t.cpSeq.Load() }

// pgSubjectKeys is the subject_keys table.
type pgSubjectKeys struct {
	pool *pgxpool.Pool
	tr   *trail
}

func (k *pgSubjectKeys) Get(ctx context.Context, ref string) ([]byte, string, error) {
	var wrapped []byte
	var keyID string
	err := k.pool.QueryRow(ctx, `SELECT wrapped, key_id FROM subject_keys WHERE ref = $1`, ref).Scan(&wrapped, &keyID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", audit.ErrNoSubjectKey
	}
	return wrapped, keyID, err
}

// Put inserts a subject key and never overwrites one: a key already stored gives
// audit.ErrSubjectKeyExists, so that replicas racing to create a subject's key agree on one.
func (k *pgSubjectKeys) Put(ctx context.Context, ref string, wrapped []byte, keyID string) error {
	_, err := k.pool.Exec(ctx, `INSERT INTO subject_keys (ref, key_id, wrapped) VALUES ($1, $2, $3)`, ref, keyID, wrapped)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return audit.ErrSubjectKeyExists
	}
	return err
}

// Delete destroys ref's key. EraseSubject erases through erase instead, which also masks the
// subject's message bodies and appends the "subject.erased" event in the same transaction.
func (k *pgSubjectKeys) Delete(ctx context.Context, ref string) error {
	_, err := k.pool.Exec(ctx, `DELETE FROM subject_keys WHERE ref = $1`, ref)
	return err
}

// erase destroys ref's key, masks the subject's message bodies and appends req's event, linked
// after the chain head, in one transaction. It locks the head last, as the writer's batches do.
func (k *pgSubjectKeys) erase(ctx context.Context, ref string, req *erasure) error {
	var head audit.Head
	err := pgx.BeginFunc(ctx, k.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM subject_keys WHERE ref = $1`, ref)
		if err != nil {
			return err
		}
		req.existed = tag.RowsAffected() > 0
		if err := eraseBodies(ctx, tx, ref); err != nil {
			return err
		}
		data := mustJSON(subjectErasedData{RequestedBy: req.by, Existed: req.existed})
		seal := &sealReq{tag: 1}
		if _, err := tx.Exec(ctx, qInsPending, req.at.UnixNano(), store.AuditSubjectErased, nil, "", data, ref, seal.tag); err != nil {
			return err
		}
		head, err = k.tr.linkPendingTx(ctx, tx, map[int64]*sealReq{seal.tag: seal})
		req.seq = seal.seq
		return err
	})
	if err != nil {
		return err
	}
	k.tr.committedUpTo(head.Seq)
	return nil
}

func (k *pgSubjectKeys) Replace(ctx context.Context, ref string, wrapped []byte, keyID string) error {
	_, err := k.pool.Exec(ctx, `UPDATE subject_keys SET wrapped = $1, key_id = $2 WHERE ref = $3`, wrapped, keyID, ref)
	return err
}

// openTrail prepares the audit trail: the keyring (an ephemeral one when none is configured), the
// sealer, the chaining of events written before the trail was chained and the conversion of
// opt-outs and consents still keyed by plain numbers. Both conversions run once, under an
// advisory lock, whichever replica opens first.
func openTrail(ctx context.Context, pool *pgxpool.Pool, opts Options) (*trail, error) {
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
		opts.Logger.Warn("store: no audit keyring configured; using an ephemeral one, so sealed data and checkpoints of this run cannot be read or verified after a restart, nor by other replicas")
	}
	t := &trail{kr: kr, region: kr.Region(), every: int64(opts.CheckpointEvery), interval: opts.CheckpointInterval}
	t.keys = &pgSubjectKeys{pool: pool, tr: t}
	sealer, err := audit.NewSealer(kr, t.keys, audit.SealerOptions{})
	if err != nil {
		return nil, fmt.Errorf("store: audit sealer: %w", err)
	}
	t.sealer = sealer
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('smsproxy.trail.' || COALESCE(current_schema(), '')))`); err != nil {
			return err
		}
		if err := chainLegacy(ctx, tx, t); err != nil {
			return fmt.Errorf("chain the audit trail: %w", err)
		}
		return hashLegacyNumbers(ctx, tx, kr)
	})
	if err != nil {
		return nil, fmt.Errorf("store: open the audit trail: %w", err)
	}
	var head, cp int64
	if err := pool.QueryRow(ctx, `SELECT seq, (SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints) FROM chain_head`).Scan(&head, &cp); err != nil {
		return nil, fmt.Errorf("store: read the chain head: %w", err)
	}
	t.committed.Store(head)
	t.cpSeq.Store(cp)
	return t, nil
}

// chainLegacy links the events written before the trail was chained (hash NULL), in seq order,
// renumbering them after the head.
func chainLegacy(ctx context.Context, tx pgx.Tx, t *trail) error {
	var head audit.Head
	if err := tx.QueryRow(ctx, qLockHead).Scan(&head.Seq, &head.Hash); err != nil {
		return err
	}
	chain := audit.NewChain(t.region, head)
	last := int64(-1)
	for {
		rows, err := tx.Query(ctx, `SELECT seq, at, kind, COALESCE(message_id, ''), app, data::text FROM audit_events
 WHERE hash IS NULL AND seq > $1 ORDER BY seq LIMIT 1000`, last)
		if err != nil {
			return err
		}
		var page []pendingEvent
		for rows.Next() {
			var p pendingEvent
			var data string
			if err := rows.Scan(&p.id, &p.at, &p.e.Kind, &p.e.MessageID, &p.e.App, &data); err != nil {
				rows.Close()
				return err
			}
			p.e.Data, p.e.At = []byte(data), time.Unix(0, p.at)
			page = append(page, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for i := range page {
			e := &page[i].e
			chain.Link(e)
			if _, err := tx.Exec(ctx, `UPDATE audit_events SET seq = $1, prev_hash = $2, hash = $3 WHERE seq = $4`,
				e.Seq, e.PrevHash, e.Hash, page[i].id); err != nil {
				return err
			}
			last = page[i].id
		}
	}
	if h := chain.Head(); h.Seq != head.Seq {
		_, err := tx.Exec(ctx, `UPDATE chain_head SET seq = $1, hash = $2`, h.Seq, h.Hash)
		return err
	}
	return nil
}

// hashLegacyNumbers replaces the plain E.164 numbers of opt-outs and consents written before the
// lookup hash with the hash and the masked number.
func hashLegacyNumbers(ctx context.Context, tx pgx.Tx, kr *audit.Keyring) error {
	for _, table := range []string{"opt_outs", "consents"} {
		rows, err := tx.Query(ctx, `SELECT seq, number FROM `+table+` WHERE number LIKE '+%'`)
		if err != nil {
			return err
		}
		seqs, numbers, err := scanSeqNumbers(rows)
		if err != nil {
			return err
		}
		for i, n := range numbers {
			if _, err := tx.Exec(ctx, `UPDATE `+table+` SET number = $1, masked = $2 WHERE seq = $3`,
				kr.LookupHash(n), sms.MaskPhone(n), seqs[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func scanSeqNumbers(rows pgx.Rows) ([]int64, []string, error) {
	defer rows.Close()
	var seqs []int64
	var numbers []string
	for rows.Next() {
		var seq int64
		var n string
		if err := rows.Scan(&seq, &n); err != nil {
			return nil, nil, err
		}
		seqs, numbers = append(seqs, seq), append(numbers, n)
	}
	return seqs, numbers, rows.Err()
}
