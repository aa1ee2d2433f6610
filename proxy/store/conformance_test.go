package store_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/smsproxy/smsproxy/proxy/store"
	"github.com/smsproxy/smsproxy/proxy/store/storetest"
)

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "smsproxy.db")
		return func(ctx context.Context) (store.Store, error) {
			return store.OpenSQLite(ctx, path, store.Options{Logger: quiet})
		}
	})
}

func TestSQLiteConformanceNoCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "smsproxy.db")
		return func(ctx context.Context) (store.Store, error) {
			return store.OpenSQLite(ctx, path, store.Options{CorrelationCache: -1, MaxBatch: 8, ReadConns: 1, Logger: quiet})
		}
	})
}

var quiet = slog.New(slog.DiscardHandler)
