package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/smsproxy/smsproxy/proxy/store"
)

func openBench(b *testing.B) *store.SQLite {
	b.Helper()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "db"), store.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func optOutRows(n int) []store.OptOut {
	rows := make([]store.OptOut, n)
	for i := range rows {
		rows[i] = store.OptOut{Number: fmt.Sprintf("+659%07d", i), Scope: "pay", App: "pay", Source: store.SourceImport}
	}
	return rows
}

// BenchmarkRecipientFactsMiss is the cost of a facts cache miss: one read of a number's opt-outs and
// consents among 10,000 opted-out numbers.
func BenchmarkRecipientFactsMiss(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	if _, err := s.ImportOptOuts(ctx, optOutRows(10_000)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		f, err := s.RecipientFacts(ctx, fmt.Sprintf("+659%07d", i%20_000))
		if err != nil || f.OptedOut("pay") != (i%20_000 < 10_000) {
			b.Fatalf("facts %+v, %v", f, err)
		}
		i++
	}
}

// BenchmarkImportOptOuts10k imports 10,000 opt-outs with their audit events.
func BenchmarkImportOptOuts10k(b *testing.B) {
	rows := optOutRows(10_000)
	for b.Loop() {
		b.StopTimer()
		s := openBench(b)
		b.StartTimer()
		if res, err := s.ImportOptOuts(context.Background(), rows); err != nil || res.Imported != len(rows) {
			b.Fatalf("%+v, %v", res, err)
		}
	}
}
