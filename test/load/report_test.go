package load

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// fakeResult builds a Result with fixed figures: n requests spread evenly from base to 10×base.
func fakeResult(label string, rate float64, n int, base time.Duration, ok int64) *Result {
	r := &Result{
		Label: label, URL: "http://127.0.0.1:8080/v1/messages", Concurrency: 16, Rate: rate,
		Duration: 10 * time.Second, Warmup: 2 * time.Second, Seed: 42,
		Sent: int64(n), OK: ok, WarmupSent: 1000,
		ByStatus:  map[int]int64{201: ok},
		ByCode:    map[string]int64{},
		Transport: map[string]int64{},
		Elapsed:   10 * time.Second,
		Latency:   NewHistogram(),
		Lag:       NewHistogram(),
		Service:   NewHistogram(),
	}
	for i := range n {
		r.Latency.Record(base + time.Duration(i)*9*base/time.Duration(n))
		if rate > 0 {
			r.Lag.Record(time.Duration(i%100) * time.Microsecond)
			r.Service.Record(base + time.Duration(i)*4*base/time.Duration(n))
		}
	}
	return r
}

func TestWriteTextGolden(t *testing.T) {
	r := fakeResult("proxy", 13000, 130000, 200*time.Microsecond, 129000)
	r.ByStatus[429] = 900
	r.ByCode["rate_limited"] = 900
	r.Transport["timeout"] = 100
	r.Missed = 250
	var buf bytes.Buffer
	if err := WriteText(&buf, r); err != nil {
		t.Fatal(err)
	}
	flat := fakeResult("bare", 0, 1000, 100*time.Microsecond, 1000)
	flat.Interrupted = true
	if err := WriteText(&buf, flat); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden", buf.Bytes())
}

func TestWriteComparisonGolden(t *testing.T) {
	bare := fakeResult("bare", 0, 500000, 150*time.Microsecond, 500000)
	proxy := fakeResult("proxy", 0, 130000, 600*time.Microsecond, 129000)
	var buf bytes.Buffer
	if err := WriteComparison(&buf, bare, proxy); err != nil {
		t.Fatal(err)
	}
	golden(t, "comparison.golden", buf.Bytes())
}

func TestSummaryJSONGolden(t *testing.T) {
	bare := fakeResult("bare", 0, 500000, 150*time.Microsecond, 500000)
	proxy := fakeResult("proxy", 13000, 130000, 600*time.Microsecond, 129000)
	proxy.ByStatus[503] = 1000
	proxy.ByCode["provider_unavailable"] = 1000
	c := Compare(bare, proxy)
	if c.ThroughputRatio != 0.258 {
		t.Errorf("throughput ratio %v, want 0.258 (12900/50000)", c.ThroughputRatio)
	}
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "comparison.json", append(out, '\n'))
}

func TestResultRatesWithNothingSent(t *testing.T) {
	r := &Result{Latency: NewHistogram(), Lag: NewHistogram()}
	if r.ErrorRate() != 0 || r.Throughput() != 0 || r.SendRate() != 0 {
		t.Fatalf("empty result: error rate %v, throughput %v, send rate %v; want zeros", r.ErrorRate(), r.Throughput(), r.SendRate())
	}
}

func TestFmtDur(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0"},
		{1500, "1.50µs"},
		{176 * time.Microsecond, "176µs"},
		{5100 * time.Microsecond, "5.10ms"},
		{12345 * time.Microsecond, "12.3ms"},
		{2500 * time.Millisecond, "2.50s"},
		{999700 * time.Nanosecond, "1.00ms"},
		{9999 * time.Microsecond, "10.0ms"},
		{999990 * time.Microsecond, "1.00s"},
	}
	for _, tt := range tests {
		if got := fmtDur(tt.d); got != tt.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
