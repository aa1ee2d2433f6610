package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/store"
	"github.com/smsproxy/smsproxy/proxy/store/storetest"
)

// dsnEnv names the variable that points the tests at a PostgreSQL server.
const dsnEnv = "SMSPROXY_TEST_POSTGRES_DSN"

var quiet = slog.New(slog.DiscardHandler)

// testDSN returns the server the tests use, or skips the test with how to get one.
func testDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		tb.Skip(dsnEnv + ` is not set, so the PostgreSQL store is not tested; as root run ` +
			`eval "$(bash .ci/postgres.sh)" to install and start a local server, then run the tests again`)
	}
	return dsn
}

// freshSchema creates an empty schema for one test, drops it when the test ends, and returns a DSN
// whose connections use it.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	dsn := testDSN(tb)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("connect to %s: %v", dsnEnv, err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "smsproxy_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("connect to drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(tb, dsn, schema)
}

func withSearchPath(tb testing.TB, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			tb.Fatalf("%s is not a URL: %v", dsnEnv, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// testKeys is the keyring every test store shares unless a test sets its own: replicas of one
// region share one, as their lookup hashes and checkpoints must agree.
var testKeys = func() *audit.Keyring {
	kr, err := audit.GenerateKeyring("test", time.Now())
	if err != nil {
		panic(err)
	}
	return kr
}()

func factory(opts Options) storetest.Factory {
	if opts.Audit == nil {
		opts.Audit = testKeys
	}
	return func(t *testing.T) storetest.Opener {
		dsn := freshSchema(t)
		return func(ctx context.Context) (store.Store, error) {
			return Open(ctx, dsn, opts)
		}
	}
}

func TestConformance(t *testing.T) {
	testDSN(t)
	storetest.Run(t, factory(Options{Logger: quiet}))
}

func TestConformanceSmallBatches(t *testing.T) {
	testDSN(t)
	storetest.Run(t, factory(Options{MaxBatch: 8, MaxConns: 2, Writers: 1, Logger: quiet}))
}

func TestRecipientsConformance(t *testing.T) {
	testDSN(t)
	storetest.RunRecipients(t, factory(Options{MaxBatch: 8, Logger: quiet}))
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"set", Options{MaxBatch: 64, MaxConns: 4}, true},
		{"negative batch", Options{MaxBatch: -1}, false},
		{"negative conns", Options{MaxConns: -1}, false},
		{"one conn", Options{MaxConns: 1}, false},
		{"one writer, two conns", Options{MaxConns: 2, Writers: 1}, true},
		{"negative writers", Options{Writers: -1}, false},
		{"no conn left for reads", Options{MaxConns: 4, Writers: 4}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if err != nil && store.CodeOf(err) != store.CodeInvalidOptions {
				t.Fatalf("code = %q, want %s", store.CodeOf(err), store.CodeInvalidOptions)
			}
			if !tc.ok {
				if _, err := Open(context.Background(), "postgres://nobody@127.0.0.1:1/none", tc.opts); store.CodeOf(err) != store.CodeInvalidOptions {
					t.Fatalf("Open with bad options = %v, want %s", err, store.CodeInvalidOptions)
				}
			}
		})
	}
}

func TestOpenBadDSNHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cret-pw@127.0.0.1:1/db?connect_timeout=1",
		"postgres://u:s3cret-pw@%zz/db",
		"host=127.0.0.1 port=1 user=u password=s3cret-pw connect_timeout=1",
	} {
		_, err := Open(context.Background(), dsn, Options{Logger: quiet})
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Fatalf("Open error shows the password: %v", err)
		}
	}
}
