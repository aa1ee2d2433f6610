package store_test

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/store"
	"github.com/smsproxy/smsproxy/proxy/store/storetest"
)

// keyring returns a fresh region keyring for one test database.
func keyring(t testing.TB) *audit.Keyring {
	t.Helper()
	kr, err := audit.GenerateKeyring("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path, kr := filepath.Join(t.TempDir(), "smsproxy.db"), keyring(t)
		return func(ctx context.Context) (store.Store, error) {
			return store.OpenSQLite(ctx, path, store.Options{Logger: quiet, Audit: kr})
		}
	})
}

func TestSQLiteConformanceNoCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path, kr := filepath.Join(t.TempDir(), "smsproxy.db"), keyring(t)
		return func(ctx context.Context) (store.Store, error) {
			return store.OpenSQLite(ctx, path, store.Options{CorrelationCache: -1, MaxBatch: 8, ReadConns: 1, Logger: quiet, Audit: kr})
		}
	})
}

func TestSQLiteAuditConformance(t *testing.T) {
	for name, opts := range map[string]store.Options{
		"Default": {},
		"Small":   {MaxBatch: 4, ReadConns: 1, CorrelationCache: -1},
	} {
		t.Run(name, func(t *testing.T) {
			storetest.RunAudit(t, func(t *testing.T) storetest.AuditDB {
				path, kr := filepath.Join(t.TempDir(), "smsproxy.db"), keyring(t)
				raw := func(ctx context.Context, q string, args ...any) error {
					db, err := sql.Open("sqlite", path+"?_busy_timeout=5000")
					if err != nil {
						return err
					}
					defer db.Close()
					_, err = db.ExecContext(ctx, q, args...)
					return err
				}
				o := opts
				o.Logger, o.Audit, o.CheckpointEvery, o.CheckpointInterval = quiet, kr, -1, -1
				return storetest.AuditDB{
					Open: func(ctx context.Context) (store.Store, error) { return store.OpenSQLite(ctx, path, o) },
					Keys: kr,
					SetData: func(ctx context.Context, seq int64, data string) error {
						return raw(ctx, `UPDATE audit_events SET data = ? WHERE seq = ?`, data, seq)
					},
					DeleteFrom: func(ctx context.Context, from int64) error {
						return raw(ctx, `DELETE FROM audit_events WHERE seq >= ?`, from)
					},
				}
			})
		})
	}
}

var quiet = slog.New(slog.DiscardHandler)
