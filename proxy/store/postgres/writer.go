package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// bg is the writer's own context: a caller's cancellation must not break a batch others share.
var bg = context.Background()

// maxBatchRetries bounds how often a batch is sent again after a deadlock or serialization
// failure with another replica's transaction.
const maxBatchRetries = 5

// writeOp is one caller's operation waiting for the writer. queue adds the operation's
// statements to the batch; read reads their results in the same order and returns only a
// statement's error (the operation's own outcomes, such as "not found", stay in its closure).
// Both may run more than once, when the batch is sent again, so read must reset what it sets.
type writeOp struct {
	ctx   context.Context
	queue func(b *pgx.Batch)
	read  func(br pgx.BatchResults) error
	// seal, when set, is tagged before queue runs; queue puts its tag on the operation's one audit
	// event, whose personal part the writer seals once the event's seq is known.
	seal *sealReq
	done chan error
}

// writer sends the operations queued at each moment, up to maxBatch, as one pipelined batch: one
// round trip and one implicit transaction. There is no timer: a lone operation is sent at once,
// and operations arriving meanwhile form the next batch.
type writer struct {
	pool     *pgxpool.Pool
	maxBatch int
	log      *slog.Logger
	tr       *trail // links each batch's audit events into the chain

	mu      sync.RWMutex // guards closed against sends on a closed ops channel
	closed  bool
	ops     chan *writeOp
	stopped chan struct{}

	commits atomic.Uint64
}

// newWriter starts writers goroutines that take batches from one queue: while one batch waits for
// its commit to reach the disk, the next one is already being sent.
func newWriter(pool *pgxpool.Pool, tr *trail, maxBatch, writers int, log *slog.Logger) *writer {
	w := &writer{
		pool:     pool,
		tr:       tr,
		maxBatch: maxBatch,
		log:      log,
		ops:      make(chan *writeOp, maxBatch),
		stopped:  make(chan struct{}),
	}
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	go func() {
		wg.Wait()
		close(w.stopped)
	}()
	return w
}

// submit queues an operation and waits until the transaction holding it has committed or failed.
// When ctx ends after the operation was queued, submit returns ctx's error at once; the operation
// is skipped if its batch has not been sent yet, but may still commit if it has.
func (w *writer) submit(ctx context.Context, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	return w.submitOp(ctx, &writeOp{ctx: ctx, queue: queue, read: read})
}

// submitOp is submit for an operation built by the caller (one with a sealReq).
func (w *writer) submitOp(ctx context.Context, op *writeOp) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op.ctx, op.done = ctx, make(chan error, 1)
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return store.ErrClosed
	}
	select {
	case w.ops <- op:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the operation's outcome is what the caller must report: returning early on ctx
	// would answer "failed" for a write that may still commit.
	return <-op.done
}

// close stops accepting operations, lets the writer commit everything already queued and waits.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ops)
	}
	w.mu.Unlock()
	<-w.stopped
}

func (w *writer) run() {
	batch := make([]*writeOp, 0, w.maxBatch)
	for {
		op, ok := <-w.ops
		if !ok {
			return
		}
		batch = append(batch[:0], op)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		res := w.runBatch(batch)
		for i, op := range batch {
			op.done <- res[i]
			batch[i] = nil
		}
	}
}

// runBatch commits batch in as few transactions as it can and returns each operation's outcome.
// An operation whose statement fails is taken out and the others are sent again; a transient
// conflict with another transaction sends them all again; a broken connection fails them all.
func (w *writer) runBatch(batch []*writeOp) []error {
	res := make([]error, len(batch))
	live := make([]int, 0, len(batch))
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			res[i] = err
			continue
		}
		live = append(live, i)
	}
	retries := 0
	for len(live) > 0 {
		failed, err := w.send(batch, live)
		switch {
		case err == nil:
			w.commits.Add(1)
			return res
		case failed >= 0 && isTransient(err) && retries < maxBatchRetries:
			retries++
			w.log.Warn("store write batch conflicted with another transaction; sending it again",
				"backend", "postgres", "ops", len(live), "sqlstate", sqlState(err))
		case failed >= 0 && isStatementError(err):
			res[live[failed]] = fmt.Errorf("store: write failed: %w", err)
			live = append(live[:failed], live[failed+1:]...)
		default:
			err = fmt.Errorf("store: write transaction failed: %w", err)
			w.log.Error("store write batch failed", "backend", "postgres", "ops", len(live), "err", err)
			for _, i := range live {
				res[i] = err
			}
			return res
		}
	}
	return res
}

// send runs the live operations of batch as one transaction in two pipelined round trips. The
// first begins it, runs the operations (whose audit events go to audit_pending), locks the chain
// head and reads the pending events; the second moves them into audit_events linked after the
// head, advances the head and commits. The head's row lock orders the chain by commit across every
// writer and replica, and a rolled back batch leaves the head as it was. send returns the index in
// live of the operation whose statement failed first, or -1 when the failure is not an operation's.
func (w *writer) send(batch []*writeOp, live []int) (failed int, err error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	tags := map[int64]*sealReq{}
	for _, i := range live {
		if s := batch[i].seal; s != nil {
			s.tag = int64(len(tags) + 1)
			tags[s.tag] = s
		}
		batch[i].queue(b)
	}
	b.Queue(qLockHead)
	b.Queue(qPendingEvents)
	conn, err := w.pool.Acquire(bg)
	if err != nil {
		return -1, err
	}
	defer conn.Release()
	rollback := func() { _, _ = conn.Exec(bg, "ROLLBACK") }
	br := conn.SendBatch(bg, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		rollback()
		return -1, err
	}
	for k, i := range live {
		if err := batch[i].read(br); err != nil {
			_ = br.Close()
			rollback()
			return k, err
		}
	}
	head, pending, err := readPending(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		rollback()
		return -1, err
	}
	b = &pgx.Batch{}
	var newHead audit.Head
	if len(pending) > 0 {
		l, err := w.tr.link(head, pending, tags)
		if err != nil {
			rollback()
			return -1, err
		}
		l.queueAdvance(b)
		newHead = l.head
	}
	b.Queue("COMMIT")
	// Close reads the end of the pipeline: the transaction has committed when it returns nil.
	if err := conn.SendBatch(bg, b).Close(); err != nil {
		rollback()
		return -1, err
	}
	if newHead.Seq > 0 {
		w.tr.committedUpTo(newHead.Seq)
	}
	return -1, nil
}

// isStatementError reports whether err is the server refusing one statement (bad data, a
// constraint), as opposed to the connection or the server failing.
func isStatementError(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "42", "P0", "2B": // data exception, integrity, syntax/access, PL/pgSQL, dependent objects
		return true
	}
	return false
}

// isTransient reports a deadlock or serialization failure, which sending the batch again resolves.
func isTransient(err error) bool {
	switch sqlState(err) {
	case "40001", "40P01":
		return true
	}
	return false
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
