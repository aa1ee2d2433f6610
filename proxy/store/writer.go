package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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

// writeOp is one caller's operation waiting for the writer.
type writeOp struct {
	ctx context.Context
	// fn runs inside the batch transaction. An error undoes fn's writes only; the batch goes on.
	fn   func() error
	done chan error
}

// groupCommitter runs queued operations in as few transactions as possible: each time it wakes it
// takes everything queued, up to maxBatch operations, into one transaction. There is no timer: a
// lone operation commits at once, and operations arriving during a commit form the next batch.
type groupCommitter struct {
	tx       batchTx
	maxBatch int
	log      *slog.Logger

	mu      sync.RWMutex // guards closed against sends on a closed ops channel
	closed  bool
	ops     chan *writeOp
	stopped chan struct{}

	commits atomic.Uint64
	opsDone atomic.Uint64
}

func newGroupCommitter(tx batchTx, maxBatch int, log *slog.Logger) *groupCommitter {
	g := &groupCommitter{
		tx:       tx,
		maxBatch: maxBatch,
		log:      log,
		ops:      make(chan *writeOp, maxBatch),
		stopped:  make(chan struct{}),
	}
	go g.run()
	return g
}

// submit queues fn and waits until the transaction holding it has committed or failed. When ctx
// ends after fn was queued, submit returns ctx's error at once; fn is skipped if the writer has not
// started it yet, but may still commit if it has.
func (g *groupCommitter) submit(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
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
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
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

func (g *groupCommitter) run() {
	defer close(g.stopped)
	batch := make([]*writeOp, 0, g.maxBatch)
	results := make([]error, g.maxBatch)
	for {
		op, ok := <-g.ops
		if !ok {
			return
		}
		batch = append(batch[:0], op)
	fill:
		for len(batch) < g.maxBatch {
			select {
			case op, ok := <-g.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		res := results[:len(batch)]
		g.runBatch(batch, res)
		for i, op := range batch {
			op.done <- res[i]
			res[i] = nil
			batch[i] = nil
		}
	}
}

// runBatch runs batch in one transaction and leaves each operation's outcome in res.
func (g *groupCommitter) runBatch(batch []*writeOp, res []error) {
	live := 0
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			res[i] = err
			continue
		}
		live++
	}
	if live == 0 {
		return
	}
	fail := func(stage string, err error) {
		err = fmt.Errorf("store: write transaction failed at %s: %w", stage, err)
		g.log.Error("store write batch failed", "stage", stage, "ops", live, "err", err)
		for i := range res {
			if res[i] == nil {
				res[i] = err
			}
		}
	}
	if err := g.tx.Begin(); err != nil {
		fail("begin", err)
		return
	}
	// A lone operation needs no savepoint: if it fails, the whole transaction is rolled back.
	savepoints := live > 1
	ok := 0
	for i, op := range batch {
		if res[i] != nil {
			continue
		}
		if savepoints {
			if err := g.tx.Savepoint(); err != nil {
				_ = g.tx.Rollback()
				fail("savepoint", err)
				return
			}
		}
		err := op.fn()
		if err == nil {
			ok++
		} else {
			res[i] = err
			if savepoints {
				if rerr := g.tx.RollbackToSavepoint(); rerr != nil {
					_ = g.tx.Rollback()
					fail("rollback to savepoint", rerr)
					return
				}
			}
		}
		if savepoints {
			if err := g.tx.ReleaseSavepoint(); err != nil {
				_ = g.tx.Rollback()
				fail("release savepoint", err)
				return
			}
		}
	}
	if ok == 0 {
		if err := g.tx.Rollback(); err != nil {
			g.log.Error("store rollback failed", "err", err)
		}
		return
	}
	if err := g.tx.Commit(); err != nil {
		_ = g.tx.Rollback()
		fail("commit", err)
		return
	}
	g.commits.Add(1)
	g.opsDone.Add(uint64(ok))
}
