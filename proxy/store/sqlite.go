package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/smsproxy/smsproxy/proxy/audit"
)

//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

// Defaults for Options.
const (
	DefaultMaxBatch         = 512
	DefaultReadConns        = 4
	DefaultCorrelationCache = 100_000
	DefaultBusyTimeout      = 5 * time.Second
)

// Options tune a store. The zero value is valid.
type Options struct {
	// MaxBatch is the largest number of operations committed in one transaction; 0 means 512.
	MaxBatch int
	// ReadConns is the number of read-only connections; 0 means 4.
	ReadConns int
	// CorrelationCache is the number of provider message ids kept in memory for receipts;
	// 0 means 100,000 and a negative value turns the cache off.
	CorrelationCache int
	// BusyTimeout is how long a connection waits for a lock held by another; 0 means 5 s.
	BusyTimeout time.Duration
	// Logger receives the store's own events; nil means slog.Default().
	Logger *slog.Logger
	// Audit is the region's audit keyring: it seals personal fields, computes lookup hashes and signs
	// checkpoints. nil means an ephemeral keyring generated at open, with a warning: what it sealed
	// cannot be read after a restart, so production always sets it.
	Audit *audit.Keyring
	// Region is the region whose trail the store keeps; empty means the keyring's region, and a
	// different one is refused.
	Region string
	// CheckpointEvery makes the store sign a checkpoint once the chain head moved by this many
	// events; 0 means 10,000 and a negative value turns it off.
	CheckpointEvery int
	// CheckpointInterval makes the store sign a checkpoint this often when the head moved; 0 means
	// one minute and a negative value turns it off.
	CheckpointInterval time.Duration
}

// Defaults of the audit checkpointer.
const (
	DefaultCheckpointEvery    = 10_000
	DefaultCheckpointInterval = time.Minute
)

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch {
	case o.MaxBatch < 0:
		return &Error{Code: CodeInvalidOptions, Message: "MaxBatch must not be negative"}
	case o.ReadConns < 0:
		return &Error{Code: CodeInvalidOptions, Message: "ReadConns must not be negative"}
	case o.BusyTimeout < 0:
		return &Error{Code: CodeInvalidOptions, Message: "BusyTimeout must not be negative"}
	case o.Audit != nil && o.Region != "" && o.Region != o.Audit.Region():
		return &Error{Code: CodeInvalidOptions, Message: "Region differs from the audit keyring's region"}
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.ReadConns == 0 {
		o.ReadConns = DefaultReadConns
	}
	if o.CorrelationCache == 0 {
		o.CorrelationCache = DefaultCorrelationCache
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	return o
}

// SQLite is the embedded store: one SQLite database file in WAL mode with synchronous=FULL, written
// by a single group-committing writer and read through a pool of read-only connections.
type SQLite struct {
	log   *slog.Logger
	lock  *os.File // the store's exclusive lock (lockFile); nil where there is none
	wdb   *sql.DB
	wconn *sql.Conn
	w     *sqliteWriteStmts
	gc    *groupCommitter
	rdb   *sql.DB
	r     *sqliteReadStmts
	corr  *lru.Cache[string, correlation] // nil when off
	pass  *pass                           // the writer's scratch space
	live  *liveStates                     // the writer's knowledge of messages in flight
	cdb   *sql.DB                         // the checkpointer's connection

	stopCkpt, ckptDone chan struct{}

	trail *trail // the audit trail's keys, chain and sealer

	closed    atomic.Bool // set first thing in Close; reads check it
	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*SQLite)(nil)

// correlation is what a provider message id resolves to. It never changes once written.
type correlation struct {
	messageID string
	app       string
}

// OpenSQLite opens or creates the database at path, applies pending migrations and starts the writer.
func OpenSQLite(ctx context.Context, path string, opts Options) (*SQLite, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || strings.Contains(path, ":memory:") {
		return nil, &Error{Code: CodeInvalidArgument, Message: "the database path must be a plain file path"}
	}
	ms, err := LoadMigrations(sqliteMigrations, "migrations/sqlite")
	if err != nil {
		return nil, &Error{Code: CodeMigrationFailed, Message: err.Error()}
	}
	busy := strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)
	common := "_busy_timeout=" + busy + "&_foreign_keys=1"
	s := &SQLite{log: opts.Logger}
	if s.lock, err = lockFile(path); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.closeDBs()
		}
	}()

	// temp_store=MEMORY keeps the savepoint journal of each grouped operation in memory; on a
	// temporary file it costs a write system call per page and halves throughput.
	s.wdb, err = sql.Open("sqlite", path+"?"+common+"&_journal_mode=WAL&_synchronous=FULL&_pragma=temp_store(MEMORY)")
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	s.wconn, err = s.wdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	var mode string
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, &Error{Code: CodeInvalidArgument, Message: "the database cannot use WAL mode (journal_mode is " + mode + ")"}
	}
	// The writer keeps the pages of recent rows and of the indexes in memory (8 MiB at most: every
	// commit walks the page cache's hash table, so a 64 MiB cache cost 4-5 % of the writer's CPU and
	// saved no reads measurably), and leaves checkpoints to the checkpointer below: wal_autocheckpoint only bounds the WAL should
	// that fall behind.
	// secure_delete overwrites what a DELETE removes (an erased subject's key, a sent message's
	// sealed payload, purged records), so that it does not linger in free pages of the file; it is
	// on before the migrations, since a migration that rebuilds a table frees the old one's pages.
	for _, pragma := range []string{"PRAGMA cache_size = -8192", "PRAGMA wal_autocheckpoint = 16384",
		"PRAGMA journal_size_limit = 67108864", "PRAGMA secure_delete = ON"} {
		if _, err := s.wconn.ExecContext(ctx, pragma); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
	}
	applied, err := migrate(ctx, s.wconn, ms)
	if err != nil {
		return nil, err
	}
	if applied > 0 {
		s.log.Info("store schema migrated", "applied", applied, "version", len(ms))
	}
	if s.w, err = prepareSQLiteWrite(ctx, s.wconn); err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}

	s.rdb, err = sql.Open("sqlite", path+"?"+common+"&_query_only=1")
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.rdb.SetMaxOpenConns(opts.ReadConns)
	s.rdb.SetMaxIdleConns(opts.ReadConns)
	s.rdb.SetConnMaxIdleTime(0)
	s.rdb.SetConnMaxLifetime(0)
	if s.r, err = prepareSQLiteRead(ctx, s.rdb); err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	s.cdb, err = sql.Open("sqlite", path+"?"+common)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.cdb.SetMaxOpenConns(1)
	s.cdb.SetMaxIdleConns(1)
	s.cdb.SetConnMaxIdleTime(0)
	s.cdb.SetConnMaxLifetime(0)
	if opts.CorrelationCache > 0 {
		s.corr, _ = lru.New[string, correlation](opts.CorrelationCache)
	}
	s.pass = newPass()
	s.live = &liveStates{live: map[string]msgState{}, pending: map[string]msgState{}}
	if s.trail, err = s.openTrail(ctx, opts); err != nil {
		return nil, err
	}
	s.gc = newGroupCommitter(s.trail.tx, s.runSet, s.ended, opts.MaxBatch, s.log)
	s.stopCkpt, s.ckptDone = make(chan struct{}), make(chan struct{})
	go s.checkpointer(checkpointEvery)
	s.trail.startCheckpointer(s.auditCheckpointer)
	ok = true
	return s, nil
}

// Close commits the writes already queued, stops the writer and closes the database. Calls made
// after Close return ErrClosed.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.trail.stopCheckpointer()
		if s.trail.moved() {
			if _, err := s.writeCheckpoint(bg, time.Now()); err != nil {
				s.log.Warn("store: final audit checkpoint failed", "err", err)
			}
		}
		s.gc.close()
		close(s.stopCkpt)
		<-s.ckptDone
		st := s.gc.stats()
		s.log.Info("store writer stopped", "batches", st.Batches, "ops", st.Ops, "commits", st.Commits,
			"busy", st.Busy.Round(time.Millisecond), "committing", st.Committing.Round(time.Millisecond))
		s.closeErr = s.closeDBs()
	})
	return s.closeErr
}

func (s *SQLite) closeDBs() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.cdb != nil {
		errs = append(errs, s.cdb.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.close())
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close()) // releases the flock
	}
	return errors.Join(errs...)
}

// Commits returns the number of write transactions committed since Open.
func (s *SQLite) Commits() uint64 { return s.gc.commits.Load() }

// WriterStats returns what the single writer has done since Open.
func (s *SQLite) WriterStats() WriterStats { return s.gc.stats() }

// isUniqueViolation reports whether err is a primary key or unique constraint failure.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
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

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// checkpointEvery is how often the checkpointer copies committed pages from the WAL into the
// database file.
const checkpointEvery = 100 * time.Millisecond

// checkpointer runs passive checkpoints on its own connection until Close, so that the writer's
// commits never pay for one: a passive checkpoint takes no lock the writer needs and stops at
// pages a reader still uses. A failure is logged and tried again at the next tick.
func (s *SQLite) checkpointer(every time.Duration) {
	defer close(s.ckptDone)
	t := time.NewTicker(every)
	defer t.Stop()
	last := uint64(0)
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-t.C:
		}
		if c := s.gc.commits.Load(); c == last {
			continue
		} else {
			last = c
		}
		if _, _, err := s.checkpoint(); err != nil {
			s.log.Warn("store checkpoint failed; will try again", "err", err)
		}
	}
}

// checkpoint runs one passive checkpoint and returns how many frames the WAL holds and how many
// of them are now in the database file.
func (s *SQLite) checkpoint() (frames, done int, err error) {
	var busy int
	err = s.cdb.QueryRowContext(bg, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done)
	return frames, done, err
}
