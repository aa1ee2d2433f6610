// Package postgres is the PostgreSQL implementation of store.Store (pgx), for a region that runs
// several replicas of the proxy against one database.
//
// It behaves as the embedded SQLite store does, and storetest checks both the same way. What
// differs follows from several processes writing at once:
//
//   - Correctness comes from constraints, not from a single writer: message ids are primary keys,
//     (app, idempotency_key) is unique, provider message ids are unique per provider, and every
//     write is one statement that uses ON CONFLICT or locks the message row it changes (FOR UPDATE),
//     so two replicas racing on the same message or key give the same outcomes as one would.
//   - Writes are still grouped: writer goroutines (two by default) send the operations queued at
//     that moment as one transaction in two pipelined round trips, with one commit. An operation
//     whose statement fails is taken out and the rest of the batch is sent again, so a failing
//     operation fails alone; a deadlock or serialization failure with another replica's batch
//     sends the whole batch again.
//   - The audit trail is one hash chain for every writer of every replica (store.AuditTrail). Each
//     batch's events are linked at the end of its transaction under the lock of the single
//     chain_head row, so the chain's order is the commit order and a batch that rolls back leaves
//     the head as it was; the head's lock is held only for the last round trip and the commit.
//     Personal fields are sealed under per-subject keys (fetched on the caller's goroutine) and
//     opt-outs and consents hold numbers only as lookup hashes and masked forms.
//   - The outbox can be shared: ClaimOutbox hands a row to one replica at a time under a lease,
//     while PendingOutbox keeps listing every row as the Store contract says.
//
// The schema is versioned: Open applies the embedded migrations it has not applied yet, in one
// transaction under an advisory lock, so that replicas starting together migrate once, and it
// refuses a database whose schema is newer than the build ("schema_too_new").
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// Defaults for Options.
const (
	DefaultMaxBatch = 512
	DefaultMaxConns = 8
	DefaultWriters  = 2
)

// Options tune a PostgreSQL store. The zero value is valid.
type Options struct {
	// MaxBatch is the largest number of operations sent in one batch transaction; 0 means 512.
	MaxBatch int
	// MaxConns is the size of the connection pool shared by reads and the writers; 0 means 8.
	MaxConns int
	// Writers is the number of batches this process may have in flight at once; 0 means 2. One
	// batch at a time leaves the server idle while each commit is flushed.
	Writers int
	// Logger receives the store's own events; nil means slog.Default().
	Logger *slog.Logger
	// Audit is the region's audit keyring: it seals personal fields, signs checkpoints and keys the
	// lookup hashes of numbers. nil means an ephemeral keyring, for development only: what it sealed
	// and signed cannot be read or verified after a restart, and replicas each have their own.
	Audit *audit.Keyring
	// Region is the region whose trail the store keeps; empty means the keyring's region.
	Region string
	// CheckpointEvery makes the store sign a checkpoint once this process moved the chain head by
	// this many events; 0 means 10,000 and a negative value turns it off.
	CheckpointEvery int
	// CheckpointInterval makes the store sign a checkpoint this often when this process moved the
	// head; 0 means one minute and a negative value turns it off.
	CheckpointInterval time.Duration
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch {
	case o.MaxBatch < 0:
		return &store.Error{Code: store.CodeInvalidOptions, Message: "MaxBatch must not be negative"}
	case o.MaxConns < 0:
		return &store.Error{Code: store.CodeInvalidOptions, Message: "MaxConns must not be negative"}
	case o.Writers < 0:
		return &store.Error{Code: store.CodeInvalidOptions, Message: "Writers must not be negative"}
	case o.Audit != nil && o.Region != "" && o.Region != o.Audit.Region():
		return &store.Error{Code: store.CodeInvalidOptions, Message: "Region differs from the audit keyring's region"}
	}
	o = o.withDefaults()
	if o.MaxConns <= o.Writers {
		return &store.Error{Code: store.CodeInvalidOptions, Message: "MaxConns must be greater than Writers, to leave connections for reads"}
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Writers == 0 {
		o.Writers = DefaultWriters
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = store.DefaultCheckpointEvery
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = store.DefaultCheckpointInterval
	}
	return o
}

// Postgres is the store on a PostgreSQL database, safe for several processes at once.
type Postgres struct {
	log  *slog.Logger
	pool *pgxpool.Pool
	w    *writer
	tr   *trail

	closed    atomic.Bool // set first thing in Close; reads check it
	closeOnce sync.Once
}

var _ store.Store = (*Postgres)(nil)

// Open connects to the database named by dsn (a postgres:// URL or key=value string, as pgx reads
// it; a search_path parameter selects the schema), applies pending migrations and starts the
// writer. The password in dsn never appears in an error.
func Open(ctx context.Context, dsn string, opts Options) (*Postgres, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	ms, err := store.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		return nil, &store.Error{Code: store.CodeMigrationFailed, Message: err.Error()}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the connection string, password included.
		return nil, &store.Error{Code: store.CodeInvalidArgument, Message: "the PostgreSQL connection string cannot be parsed"}
	}
	cfg.MaxConns = int32(opts.MaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect to PostgreSQL: %w", redact(err, cfg.ConnConfig.Password))
	}
	applied, err := migrate(ctx, pool, ms)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if applied > 0 {
		opts.Logger.Info("store schema migrated", "backend", "postgres", "applied", applied, "version", len(ms))
	}
	tr, err := openTrail(ctx, pool, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	p := &Postgres{log: opts.Logger, pool: pool, tr: tr}
	p.w = newWriter(pool, tr, opts.MaxBatch, opts.Writers, opts.Logger)
	tr.kick, tr.stop, tr.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go p.checkpointer()
	return p, nil
}

// redact removes a password from an error's text; pgx connection errors can hold the config.
func redact(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "xxxxx"))
}

// Close commits the writes already queued, stops the writer and the checkpointer, signs a last
// checkpoint when this process moved the head since the last one, and closes the connections.
// Calls made after Close return store.ErrClosed.
func (p *Postgres) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.tr.stop)
		<-p.tr.done
		p.w.close()
		if p.tr.moved() {
			if _, err := p.writeCheckpoint(context.Background(), time.Now()); err != nil {
				p.log.Warn("store: final audit checkpoint failed", "backend", "postgres", "err", err)
			}
		}
		p.pool.Close()
	})
	return nil
}

// Commits returns the number of write transactions this process committed since Open.
func (p *Postgres) Commits() uint64 { return p.w.commits.Load() }
