package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// batchTx drives transactions on the writer's single connection. Only the writer goroutine calls it.
type batchTx interface {
	Begin() error
	Commit() error
	Rollback() error
	Savepoint() error
	ReleaseSavepoint() error
	RollbackToSavepoint() error
}

// setRunner runs operations that have a set-based form (writeOp.set) together: a run of them costs
// a few multi-row statements instead of several statements each. It stores each operation's own
// outcome in res (an error there wrote nothing for that operation) and returns an error when a
// write failed; the writer then undoes the whole run and runs each operation of it alone, so that
// the failure stays with the operation that caused it. Only the writer goroutine calls it.
type setRunner func(ops []*writeOp, res []error) error

// writeOp is one caller's operation waiting for the writer.
type writeOp struct {
	ctx context.Context
	// set, when not nil, is the operation's data for the setRunner, which runs it with the other
	// set operations next to it in the queue.
	set any
	// fn runs an operation without a set form inside the batch transaction. An error undoes fn's
	// writes only; the batch goes on.
	fn func() error
	// lazy marks an operation whose caller is background work (recording a send, a receipt, a
	// retry) rather than an app waiting for its answer: it does not need a commit of its own and
	// rides along with the next one (see lazyWait).
	lazy bool
	done chan error
}

// groupCommitter runs queued operations in as few transactions as possible: each time it wakes it
// takes everything queued, up to maxBatch operations, into one transaction. A lone operation
// commits at once, and operations arriving during a commit form the next batch. Under load, the
// callers of a batch just committed queue their next operations a moment after the writer looks:
// so when recent batches held several operations, the writer lingers while more keep coming (each
// within lingerGap), until the batch is as large as recent ones or its last commit's time has
// passed, rather than spend a whole commit (an fsync) on a few operations. A lone caller never
// waits.
type groupCommitter struct {
	tx     batchTx
	runSet setRunner
	// ended, when not nil, is called after each transaction with whether it committed.
	ended    func(committed bool)
	maxBatch int
	log      *slog.Logger
	// lazyWait is how long lazy operations wait for a commit that is needed anyway (the constant
	// lazyWait; tests change it before the first operation).
	lazyWait time.Duration

	mu      sync.RWMutex // guards closed against sends on a closed ops channel
	closed  bool
	ops     chan *writeOp
	stopped chan struct{}

	commits  atomic.Uint64
	opsDone  atomic.Uint64
	batches  atomic.Uint64
	opsTaken atomic.Uint64
	busy     atomic.Int64 // nanoseconds spent running batches
	// commitBusy is the part of busy spent in COMMIT, which writes the WAL and waits for fsync.
	commitBusy atomic.Int64

	// Scratch space of the writer goroutine.
	live    []*writeOp
	liveRes []error
	liveAt  []int
}

func newGroupCommitter(tx batchTx, runSet setRunner, ended func(bool), maxBatch int, log *slog.Logger) *groupCommitter {
	g := &groupCommitter{
		tx:       tx,
		runSet:   runSet,
		ended:    ended,
		maxBatch: maxBatch,
		log:      log,
		lazyWait: lazyWait,
		ops:      make(chan *writeOp, maxBatch),
		stopped:  make(chan struct{}),
	}
	go g.run()
	return g
}

// submit queues fn and waits until the transaction holding it has committed or failed, so that its
// answer is definitive. ctx bounds the wait for a place in the queue; once queued, fn is skipped
// (and ctx's error returned) only if ctx ended before its batch began.
func (g *groupCommitter) submit(ctx context.Context, fn func() error) error {
	return g.enqueue(&writeOp{ctx: ctx, fn: fn})
}

// submitSet queues an operation run by the setRunner and waits as submit does.
func (g *groupCommitter) submitSet(ctx context.Context, set any) error {
	return g.enqueue(&writeOp{ctx: ctx, set: set})
}

// submitSetLazy is submitSet for background work: the operation waits up to lazyWait for a commit
// that an app's request needs anyway, instead of costing a commit of its own.
func (g *groupCommitter) submitSetLazy(ctx context.Context, set any) error {
	return g.enqueue(&writeOp{ctx: ctx, set: set, lazy: true})
}

// submitLazy is submit for background work, as submitSetLazy.
func (g *groupCommitter) submitLazy(ctx context.Context, fn func() error) error {
	return g.enqueue(&writeOp{ctx: ctx, fn: fn, lazy: true})
}

func (g *groupCommitter) enqueue(op *writeOp) error {
	ctx := op.ctx
	if err := ctx.Err(); err != nil {
		return err
	}
	op.done = make(chan error, 1)
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return ErrClosed
	}
	select {
	case g.ops <- op:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the operation's outcome is what the caller must report: returning early on ctx
	// would answer "failed" for a write that may still commit. The writer skips an operation whose
	// ctx ended before its batch began, and that skip comes back here as ctx's error.
	return <-op.done
}

// close stops accepting operations, lets the writer commit everything already queued and waits for it.
func (g *groupCommitter) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.ops)
	}
	g.mu.Unlock()
	<-g.stopped
}

// maxLinger bounds how long the writer waits for more operations before a commit, and lingerGap
// how long it waits for the next one: when none comes within it, every caller that was going to
// come soon has come.
const (
	maxLinger = time.Millisecond
	lingerGap = 100 * time.Microsecond
)

// lazyWait bounds how long background operations (lazy) wait for a commit that an app's request
// needs anyway, and lazyBatch how many may wait. Every commit costs the single writer the same
// WAL write and fsync however few operations it holds, and an app's message that arrives during
// a commit waits for it: at 1,000 messages a second, sends and receipts committed on their own
// made three times the commits the messages needed and kept the writer 70 % busy, which is what
// an app's request waited for at the 99th percentile.
const (
	lazyWait  = 5 * time.Millisecond
	lazyBatch = 64
)

func (g *groupCommitter) run() {
	defer close(g.stopped)
	batch := make([]*writeOp, 0, g.maxBatch)
	results := make([]error, g.maxBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	load := 0.0                  // operations per batch, a moving average over recent batches
	var lastCommit time.Duration // how long the last commit took
	for {
		op, ok := <-g.ops
		if !ok {
			return
		}
		batch = append(batch[:0], op)
		open := g.drain(&batch)
		if open && onlyLazy(batch) {
			open = g.awaitUrgent(&batch, linger)
		}
		if want := min(int(load+0.5), g.maxBatch); open && load >= 2 && len(batch) < want && lastCommit > 0 {
			deadline := time.Now().Add(min(lastCommit, maxLinger))
		wait:
			for len(batch) < want {
				d := min(lingerGap, time.Until(deadline))
				if d <= 0 {
					break
				}
				linger.Reset(d)
				select {
				case op, ok := <-g.ops:
					linger.Stop()
					if !ok {
						break wait
					}
					batch = append(batch, op)
					if !g.drain(&batch) {
						break wait
					}
				case <-linger.C:
					break wait
				}
			}
		}
		load += (float64(len(batch)) - load) / 4
		res := results[:len(batch)]
		start := time.Now()
		committing := g.commitBusy.Load()
		g.runBatch(batch, res)
		lastCommit = time.Duration(g.commitBusy.Load() - committing)
		g.busy.Add(int64(time.Since(start)))
		g.batches.Add(1)
		g.opsTaken.Add(uint64(len(batch)))
		for i, op := range batch {
			op.done <- res[i]
			res[i] = nil
			batch[i] = nil
		}
	}
}

// onlyLazy reports whether no operation of batch has a caller waiting for a prompt commit.
func onlyLazy(batch []*writeOp) bool {
	for _, op := range batch {
		if !op.lazy {
			return false
		}
	}
	return true
}

// awaitUrgent adds arriving operations to a batch of lazy ones until one that is not lazy comes,
// the batch holds lazyBatch operations or lazyWait has passed. It returns false once the queue is
// closed.
func (g *groupCommitter) awaitUrgent(batch *[]*writeOp, t *time.Timer) bool {
	t.Reset(g.lazyWait)
	defer t.Stop()
	for len(*batch) < min(lazyBatch, g.maxBatch) {
		select {
		case op, ok := <-g.ops:
			if !ok {
				return false
			}
			*batch = append(*batch, op)
			if !op.lazy {
				return g.drain(batch)
			}
		case <-t.C:
			return true
		}
	}
	return true
}

// drain appends what is queued to batch, up to maxBatch operations, without waiting. It returns
// false once the queue is closed.
func (g *groupCommitter) drain(batch *[]*writeOp) bool {
	for len(*batch) < g.maxBatch {
		select {
		case op, ok := <-g.ops:
			if !ok {
				return false
			}
			*batch = append(*batch, op)
		default:
			return true
		}
	}
	return true
}

// errAbort stops a batch: the transaction is rolled back and every operation without an outcome
// gets err.
type errAbort struct {
	stage string
	err   error
}

// runBatch runs batch in one transaction and leaves each operation's outcome in res.
func (g *groupCommitter) runBatch(batch []*writeOp, res []error) {
	live, liveRes, liveAt := g.live[:0], g.liveRes[:0], g.liveAt[:0]
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			res[i] = err
			continue
		}
		live, liveRes, liveAt = append(live, op), append(liveRes, nil), append(liveAt, i)
	}
	g.live, g.liveRes, g.liveAt = live, liveRes, liveAt
	defer func() {
		for k := range live {
			live[k] = nil
		}
	}()
	if len(live) == 0 {
		return
	}
	fail := func(a *errAbort) {
		err := fmt.Errorf("store: write transaction failed at %s: %w", a.stage, a.err)
		g.log.Error("store write batch failed", "stage", a.stage, "ops", len(live), "err", err)
		for k, i := range liveAt {
			if liveRes[k] == nil {
				res[i] = err
			} else {
				res[i] = liveRes[k]
			}
		}
	}
	if err := g.tx.Begin(); err != nil {
		fail(&errAbort{"begin", err})
		return
	}
	committed := false
	if g.ended != nil {
		defer func() { g.ended(committed) }()
	}
	ok, abort := g.runLive(live, liveRes)
	if abort != nil {
		_ = g.tx.Rollback()
		fail(abort)
		return
	}
	for k, i := range liveAt {
		res[i] = liveRes[k]
	}
	if ok == 0 {
		if err := g.tx.Rollback(); err != nil {
			g.log.Error("store rollback failed", "err", err)
		}
		return
	}
	start := time.Now()
	err := g.tx.Commit()
	g.commitBusy.Add(int64(time.Since(start)))
	if err != nil {
		_ = g.tx.Rollback()
		fail(&errAbort{"commit", err})
		return
	}
	committed = true
	g.commits.Add(1)
	g.opsDone.Add(uint64(ok))
}

// runLive runs the live operations of a batch inside its transaction: each run of consecutive set
// operations in one pass, the others one by one. It returns how many succeeded.
func (g *groupCommitter) runLive(live []*writeOp, res []error) (ok int, abort *errAbort) {
	// A lone operation needs no savepoint: if it fails, the whole transaction is rolled back.
	alone := len(live) == 1
	for i := 0; i < len(live); {
		if live[i].set == nil || g.runSet == nil {
			n, a := g.runOne(live[i], res[i:i+1], alone)
			if a != nil {
				return ok, a
			}
			ok += n
			i++
			continue
		}
		j := i + 1
		for j < len(live) && live[j].set != nil {
			j++
		}
		n, a := g.runPass(live[i:j], res[i:j], alone)
		if a != nil {
			return ok, a
		}
		ok += n
		i = j
	}
	return ok, nil
}

// runOne runs one operation, in a savepoint unless it is alone in the transaction.
func (g *groupCommitter) runOne(op *writeOp, res []error, alone bool) (int, *errAbort) {
	if !alone {
		if err := g.tx.Savepoint(); err != nil {
			return 0, &errAbort{"savepoint", err}
		}
	}
	var err error
	if op.set != nil {
		err = g.runSet([]*writeOp{op}, res)
	} else {
		err = op.fn()
	}
	if err != nil {
		res[0] = err
		if !alone {
			if rerr := g.tx.RollbackToSavepoint(); rerr != nil {
				return 0, &errAbort{"rollback to savepoint", rerr}
			}
		}
	}
	if !alone {
		if err := g.tx.ReleaseSavepoint(); err != nil {
			return 0, &errAbort{"release savepoint", err}
		}
	}
	if res[0] != nil {
		return 0, nil
	}
	return 1, nil
}

// runPass runs a run of set operations together; when that fails, it undoes the pass and runs
// each operation alone.
func (g *groupCommitter) runPass(ops []*writeOp, res []error, alone bool) (int, *errAbort) {
	if len(ops) == 1 {
		return g.runOne(ops[0], res, alone)
	}
	if err := g.tx.Savepoint(); err != nil {
		return 0, &errAbort{"savepoint", err}
	}
	err := g.runSet(ops, res)
	if err != nil {
		if rerr := g.tx.RollbackToSavepoint(); rerr != nil {
			return 0, &errAbort{"rollback to savepoint", rerr}
		}
	}
	if rerr := g.tx.ReleaseSavepoint(); rerr != nil {
		return 0, &errAbort{"release savepoint", rerr}
	}
	if err == nil {
		ok := 0
		for _, r := range res {
			if r == nil {
				ok++
			}
		}
		return ok, nil
	}
	ok := 0
	for k, op := range ops {
		res[k] = nil
		n, a := g.runOne(op, res[k:k+1], false)
		if a != nil {
			return ok, a
		}
		ok += n
	}
	return ok, nil
}

// WriterStats describes the work of a store's single writer since Open.
type WriterStats struct {
	// Batches is how many times the writer took queued operations, and Ops how many it took.
	Batches, Ops uint64
	// Commits counts the transactions committed and Committed the operations they held.
	Commits, Committed uint64
	// Busy is the time the writer spent running batches, commits included; the writer is the
	// store's bottleneck when it approaches the time elapsed.
	Busy time.Duration
	// Committing is the part of Busy spent committing: writing the WAL and waiting for fsync.
	Committing time.Duration
}

func (g *groupCommitter) stats() WriterStats {
	return WriterStats{
		Batches: g.batches.Load(), Ops: g.opsTaken.Load(), Commits: g.commits.Load(), Committed: g.opsDone.Load(),
		Busy: time.Duration(g.busy.Load()), Committing: time.Duration(g.commitBusy.Load()),
	}
}
