package policy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// largeBundle is the pack with the dev region's data grown to 10,000 registered senders over the six
// markets and a 2,000-phrase sensitive list, the size the issue sets for decision time.
func largeBundle(tb testing.TB) Bundle {
	tb.Helper()
	data := devData()
	region := data["region"].(map[string]any)
	senders := region["senders"].(map[string]any)
	countries := []string{"SG", "ID", "MY", "US", "GB", "DE"}
	for i := range 10000 {
		cc := countries[i%len(countries)]
		senders[cc].(map[string]any)[fmt.Sprintf("BRAND%05d", i)] = map[string]any{"apps": []any{"dev"}}
	}
	lists := region["content"].(map[string]any)["lists"].(map[string]any)
	list := lists["sensitive_financial"].(map[string]any)
	phrases := slices.Clone(list["phrases"].([]any))
	for i := len(phrases); i < 2000; i++ {
		phrases = append(phrases, fmt.Sprintf("secret word %d", i))
	}
	list["phrases"] = phrases
	b, err := LoadBundle(packFS(), data)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkDecidePack measures the full pack on the real decision path with 10,000 senders and
// 2,000 phrases, one goroutine, and reports p50 and p99 per decision.
func BenchmarkDecidePack(b *testing.B) {
	benchmarkDecidePack(b, context.Background())
}

// BenchmarkDecidePackDeadline is BenchmarkDecidePack with a context that has a deadline, as a
// request's context has in production.
func BenchmarkDecidePackDeadline(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	benchmarkDecidePack(b, ctx)
}

func benchmarkDecidePack(b *testing.B, ctx context.Context) {
	p, err := Compile(context.Background(), largeBundle(b))
	if err != nil {
		b.Fatal(err)
	}
	inputs := []*Input{otpSG(), txn("SG", nil), txn("US", nil), txn("GB", nil), txn("SG", func(in *Input) { in.Message.Body = "Send your cvv" })}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	stopCPU := reportCPU(b)
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if _, err := p.Decide(ctx, inputs[i%len(inputs)]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	stopCPU()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	}
}

// BenchmarkPhraseMatch measures the phrase built-in alone on a 2,000-phrase list.
func BenchmarkPhraseMatch(b *testing.B) {
	phrases := make([]string, 2000)
	for i := range phrases {
		phrases[i] = fmt.Sprintf("secret word %d", i)
	}
	m := NewPhraseMatcher(phrases)
	body := "Your transfer PL20241208009 of 250.00 SGD has arrived. Do not share your secret word 1999 with anyone."
	b.ReportAllocs()
	for b.Loop() {
		m.Match(body)
	}
}
