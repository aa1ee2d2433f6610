package store

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite golden files")

const crashChildEnv = "SMSPROXY_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	goleak.VerifyTestMain(m)
}

func openTest(t testing.TB, path string, opts Options) *SQLite {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Audit == nil {
		opts.Audit = testKeyring
	}
	t.Helper()
	s, err := OpenSQLite(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return s
}

// TestDurabilitySettings checks the settings the durability promise rests on.
func TestDurabilitySettings(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	ctx := context.Background()
	for _, tc := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	} {
		var got string
		if err := s.wconn.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
		}
	}
	var qo int
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != 1 {
		t.Errorf("read pool query_only = %d, %v; want 1", qo, err)
	}
	// Foreign keys are enforced: an outbox row needs its message.
	err := s.gc.submit(ctx, func() error {
		_, err := s.w.insOutbox.ExecContext(bg, "ghost", []byte{}, 1, 1)
		return err
	})
	if err == nil {
		t.Fatal("outbox row for a missing message was accepted")
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		opts Options
		code string
	}{
		{"negative batch", filepath.Join(dir, "a"), Options{MaxBatch: -1}, CodeInvalidOptions},
		{"negative readers", filepath.Join(dir, "a"), Options{ReadConns: -1}, CodeInvalidOptions},
		{"negative busy timeout", filepath.Join(dir, "a"), Options{BusyTimeout: -time.Second}, CodeInvalidOptions},
		{"empty path", "", Options{}, CodeInvalidArgument},
		{"memory", ":memory:", Options{}, CodeInvalidArgument},
		{"query in path", filepath.Join(dir, "a?mode=ro"), Options{}, CodeInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenSQLite(context.Background(), tc.path, tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("OpenSQLite succeeded")
			}
			if CodeOf(err) != tc.code {
				t.Fatalf("error = %v, want code %s", err, tc.code)
			}
		})
	}
	if _, err := OpenSQLite(context.Background(), filepath.Join(dir, "missing", "dir", "db"), Options{}); err == nil {
		t.Fatal("OpenSQLite in a missing directory succeeded")
	}
}

// TestSchemaGolden pins the schema the migrations produce; run with -update after adding one.
func TestSchemaGolden(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	rows, err := s.rdb.Query(`SELECT type, name, COALESCE(sql, '') FROM sqlite_master
 WHERE name NOT LIKE 'sqlite_%' ORDER BY type DESC, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, sql string
		if err := rows.Scan(&typ, &name, &sql); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "-- %s %s\n%s;\n\n", typ, name, sql)
	}
	var versions []string
	vr, err := s.rdb.Query(`SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	for vr.Next() {
		var v int
		var n string
		if err := vr.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, fmt.Sprintf("%04d_%s", v, n))
	}
	fmt.Fprintf(&b, "-- applied: %s\n", strings.Join(versions, ", "))
	golden := filepath.Join("testdata", "schema_sqlite.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestSchemaGolden -update)", err)
	}
	if b.String() != string(want) {
		t.Fatalf("schema differs from %s (run with -update if intended):\n%s", golden, b.String())
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openTest(t, path, Options{})
	if _, err := s.Accept(context.Background(), Accepted{ID: "m1", App: "a"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Reopening applies nothing again and keeps the data.
	s = openTest(t, path, Options{})
	ms, err := LoadMigrations(sqliteMigrations, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", n, err, len(ms))
	}
	if _, err := s.Get(context.Background(), "a", "m1"); err != nil {
		t.Fatalf("data lost on reopen: %v", err)
	}
	// A database from a newer release is refused, not silently used.
	if _, err := s.wconn.ExecContext(context.Background(), `INSERT INTO schema_migrations VALUES (99, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenSQLite(context.Background(), path, Options{}); CodeOf(err) != CodeSchemaTooNew {
		t.Fatalf("open of a newer schema error = %v, want %s", err, CodeSchemaTooNew)
	}
}

func TestLoadMigrationsRejectsGaps(t *testing.T) {
	ms, err := LoadMigrations(sqliteMigrations, "migrations/sqlite")
	if err != nil || len(ms) == 0 || ms[0].Version != 1 {
		t.Fatalf("embedded migrations = %d, %v", len(ms), err)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"gap", map[string]string{"0001_a.sql": "", "0003_c.sql": ""}},
		{"bad name", map[string]string{"init.sql": ""}},
		{"zero", map[string]string{"0000_a.sql": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstestMap(tc.files)
			if _, err := LoadMigrations(fsys, "m"); err == nil {
				t.Fatal("loadMigrations accepted a broken set")
			}
		})
	}
}

// TestBatchFailureIsolated forces several operations into one transaction and checks that a failing
// one is undone alone while the others commit together.
func TestBatchFailureIsolated(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	ctx := context.Background()
	conflict := Accepted{ID: "seed", App: "a", IdempotencyKey: "k", RequestHash: "h1"}
	if _, err := s.Accept(ctx, conflict); err != nil {
		t.Fatal(err)
	}
	// Hold the writer so that what follows queues up behind it.
	release := make(chan struct{})
	held := make(chan struct{})
	holdErr := make(chan error, 1)
	go func() {
		holdErr <- s.gc.submit(ctx, func() error { close(held); <-release; return nil })
	}()
	<-held
	before := s.Commits()

	type result struct {
		name string
		err  error
	}
	results := make(chan result, 8)
	var wg sync.WaitGroup
	submit := func(name string, fn func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); results <- result{name, fn()} }()
	}
	submit("ok1", func() error { _, err := s.Accept(ctx, Accepted{ID: "ok1", App: "a"}); return err })
	submit("conflict", func() error {
		_, err := s.Accept(ctx, Accepted{ID: "c", App: "a", IdempotencyKey: "k", RequestHash: "h2"})
		return err
	})
	submit("partial", func() error {
		return s.gc.submit(ctx, func() error {
			if _, err := s.appendEvent(auditRow{at: 1, kind: "test.partial", app: "a", data: "{}"}); err != nil {
				return err
			}
			return errors.New("fails after writing")
		})
	})
	submit("ok2", func() error { _, err := s.Accept(ctx, Accepted{ID: "ok2", App: "a"}); return err })
	for len(s.gc.ops) < 4 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	if err := <-holdErr; err != nil {
		t.Fatal(err)
	}
	for r := range results {
		switch r.name {
		case "ok1", "ok2":
			if r.err != nil {
				t.Errorf("%s: %v, want success", r.name, r.err)
			}
		case "conflict":
			if CodeOf(r.err) != CodeIdempotencyConflict {
				t.Errorf("conflict: %v", r.err)
			}
		case "partial":
			if r.err == nil || r.err.Error() != "fails after writing" {
				t.Errorf("partial: %v", r.err)
			}
		}
	}
	// The holder's batch and the queued batch: two commits in all.
	if got := s.Commits() - before; got != 2 {
		t.Errorf("commits = %d, want 2 (holder, then the 4 queued ops together)", got)
	}
	evs, err := s.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Kind == "test.partial" {
			t.Fatal("the failed operation's write was committed")
		}
	}
	for _, id := range []string{"ok1", "ok2"} {
		if _, err := s.Get(ctx, "a", id); err != nil {
			t.Errorf("Get(%s): %v", id, err)
		}
	}
}

// TestCrashKeepsAcknowledged kills a child process that is accepting messages and checks that
// every message whose Accept returned before the kill is in the database.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	idLine := regexp.MustCompile(`^acked c\d\d-\d{6}$`)
	var acked []string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if !idLine.MatchString(line) {
			continue
		}
		acked = append(acked, strings.TrimPrefix(line, "acked "))
		if len(acked) == 1500 && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child stopped after %d acks before it was killed: %v", len(acked), err)
	}
	s := openTest(t, path, Options{})
	defer s.Close()
	ctx := context.Background()
	for _, id := range acked {
		v, err := s.Get(ctx, "crash", id)
		if err != nil {
			t.Fatalf("acknowledged message %s lost in the crash: %v", id, err)
		}
		if len(v.History) != 1 {
			t.Fatalf("message %s has %d history rows, want 1", id, len(v.History))
		}
	}
	counts, err := s.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	items, err := s.PendingOutbox(ctx, 1_000_000, "")
	if err != nil {
		t.Fatal(err)
	}
	// Whatever committed is whole: every stored message has its outbox row.
	if counts[StatusAccepted] != len(items) || counts[StatusAccepted] < len(acked) {
		t.Fatalf("%d messages, %d outbox rows, %d acknowledged", counts[StatusAccepted], len(items), len(acked))
	}
	var check string
	if err := s.rdb.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	t.Logf("%d acknowledged before SIGKILL, %d found after", len(acked), counts[StatusAccepted])
}

// crashChild accepts messages from 8 goroutines until it is killed, printing each id once Accept
// has returned.
func crashChild(path string) int {
	s, err := OpenSQLite(context.Background(), path, Options{Audit: testKeyring})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1_000_000; i++ {
				id := fmt.Sprintf("c%02d-%06d", c, i)
				if _, err := s.Accept(context.Background(), Accepted{ID: id, App: "crash", Payload: []byte(id)}); err != nil {
					fmt.Fprintln(os.Stderr, "crash child:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(w, "acked %s\n", id)
				_ = w.Flush() // the line leaves the process only after the commit
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return 0
}

// TestOpenRefusesASecondProcess: a store file is written by one store at a time. A second open
// (smsproxy audit erase while the proxy serves) would keep its own audit chain head and fork the
// chain; it is refused with store_in_use until the first closes.
func TestOpenRefusesASecondProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	first := openTest(t, path, Options{})
	if _, err := OpenSQLite(context.Background(), path, Options{Audit: testKeyring}); CodeOf(err) != CodeInUse {
		t.Fatalf("second open while the first is open: %v, want %s", err, CodeInUse)
	}
	if _, err := first.Accept(context.Background(), Accepted{ID: "m1", App: "a"}); err != nil {
		t.Fatalf("the first store after the refused open: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	_ = openTest(t, path, Options{}).Close()
}
