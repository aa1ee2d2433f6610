package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/smsproxy/smsproxy/proxy/store"
	"github.com/smsproxy/smsproxy/proxy/store/storetest"
)

func TestSQLiteRecipientsConformance(t *testing.T) {
	storetest.RunRecipients(t, func(t *testing.T) storetest.Opener {
		path, kr := filepath.Join(t.TempDir(), "smsproxy.db"), keyring(t)
		return func(ctx context.Context) (store.Store, error) {
			return store.OpenSQLite(ctx, path, store.Options{MaxBatch: 8, ReadConns: 1, Logger: quiet, Audit: kr})
		}
	})
}
