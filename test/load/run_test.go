package load

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests; fasthttp's own housekeeping goroutines
// (idle-connection cleaners and worker pools that sleep before exiting) are not ours to stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

// testServer is a tiny fasthttp server that checks every request the way the proxy would read it and
// answers by the arrival number n (1-based) through answer.
type testServer struct {
	url      string
	received atomic.Int64
	mu       sync.Mutex
	problems []string
	keys     map[string]bool
	srv      *fasthttp.Server
	answer   func(n int64, ctx *fasthttp.RequestCtx)
}

func startTestServer(t *testing.T, answer func(n int64, ctx *fasthttp.RequestCtx)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{url: "http://" + ln.Addr().String() + "/v1/messages", keys: map[string]bool{}, answer: answer}
	s.srv = &fasthttp.Server{Handler: s.handle}
	done := make(chan struct{})
	go func() { _ = s.srv.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = s.srv.Shutdown(); <-done })
	return s
}

func (s *testServer) problem(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, p)
}

func (s *testServer) handle(ctx *fasthttp.RequestCtx) {
	n := s.received.Add(1)
	if !ctx.IsPost() || string(ctx.Path()) != "/v1/messages" {
		s.problem("method/path " + string(ctx.Method()) + " " + string(ctx.Path()))
	}
	if got := string(ctx.Request.Header.Peek("Authorization")); got != "Bearer k-test" {
		s.problem("authorization " + got)
	}
	if got := string(ctx.Request.Header.ContentType()); got != "application/json" {
		s.problem("content type " + got)
	}
	var r request
	if err := json.Unmarshal(ctx.PostBody(), &r); err != nil || r.To == "" || r.From == "" || r.Body == "" {
		s.problem("body " + string(ctx.PostBody()))
	}
	if key := string(ctx.Request.Header.Peek("Idempotency-Key")); key != "" {
		s.mu.Lock()
		if s.keys[key] {
			s.problems = append(s.problems, "repeated idempotency key "+key)
		}
		s.keys[key] = true
		s.mu.Unlock()
	}
	ctx.SetContentType("application/json")
	s.answer(n, ctx)
}

func (s *testServer) checkProblems(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.problems {
		if i == 5 {
			t.Errorf("... and %d more", len(s.problems)-5)
			break
		}
		t.Errorf("server saw a bad request: %s", p)
	}
}

func accepted(_ int64, ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetBodyString(`{"id":"m1","status":"accepted","encoding":"GSM-7","segments":1,"provider":"simulator"}`)
}

func baseConfig(url string) Config {
	return Config{
		URL:         url,
		APIKey:      "k-test",
		Concurrency: 4,
		Timeout:     5 * time.Second,
		Payload:     PayloadConfig{Countries: []string{"SG", "US", "GB", "DE", "ID", "MY"}, BodyLen: 60},
	}
}

func TestRunCountsStatusesAndCodes(t *testing.T) {
	// Every 5th arrival is rate limited with a JSON code, every other 7th fails without one.
	srv := startTestServer(t, func(n int64, ctx *fasthttp.RequestCtx) {
		switch {
		case n%5 == 0:
			ctx.SetStatusCode(fasthttp.StatusTooManyRequests)
			ctx.SetBodyString(`{"code":"rate_limited","message":"Too many messages to this number.","rule":"limits.per_number"}`)
		case n%7 == 0:
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString("upstream down")
		default:
			accepted(n, ctx)
		}
	})
	cfg := baseConfig(srv.url)
	cfg.Requests = 100
	cfg.Idempotency = true
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.checkProblems(t)
	if got := srv.received.Load(); got != 100 {
		t.Errorf("server received %d requests, want exactly 100", got)
	}
	if res.Sent != 100 || res.OK != 68 || res.Errors() != 32 {
		t.Errorf("sent/ok/errors = %d/%d/%d, want 100/68/32", res.Sent, res.OK, res.Errors())
	}
	wantStatus := map[int]int64{201: 68, 429: 20, 503: 12}
	if !mapsEqual(res.ByStatus, wantStatus) {
		t.Errorf("by status %v, want %v", res.ByStatus, wantStatus)
	}
	wantCodes := map[string]int64{"rate_limited": 20, "(none)": 12}
	if !mapsEqual(res.ByCode, wantCodes) {
		t.Errorf("by code %v, want %v", res.ByCode, wantCodes)
	}
	if len(res.Transport) != 0 {
		t.Errorf("transport errors %v, want none", res.Transport)
	}
	if res.ErrorRate() != 0.32 {
		t.Errorf("error rate %v, want 0.32", res.ErrorRate())
	}
	if res.Latency.Count() != 100 || res.Latency.Max() <= 0 {
		t.Errorf("latency histogram holds %d values (max %v), want 100", res.Latency.Count(), res.Latency.Max())
	}
	if res.Throughput() <= 0 || res.Elapsed <= 0 {
		t.Errorf("throughput %v over %v, want positive", res.Throughput(), res.Elapsed)
	}
	if len(srv.keys) != 100 {
		t.Errorf("%d distinct idempotency keys, want 100", len(srv.keys))
	}
}

func mapsEqual[K comparable](a, b map[K]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func TestRunFixedRateLeavesWarmupOut(t *testing.T) {
	srv := startTestServer(t, accepted)
	cfg := baseConfig(srv.url)
	cfg.Rate = 2000
	cfg.Warmup = 10 * time.Millisecond // requests 0..19 are due in the warm-up
	cfg.Requests = 30
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.checkProblems(t)
	if got := srv.received.Load(); got != 50 {
		t.Errorf("server received %d, want 50 (20 warm-up + 30 measured)", got)
	}
	if res.Sent != 30 || res.OK != 30 || res.WarmupSent != 20 {
		t.Errorf("sent/ok/warmup = %d/%d/%d, want 30/30/20", res.Sent, res.OK, res.WarmupSent)
	}
	if res.Latency.Count() != 30 || res.Lag.Count() != 30 || res.Service.Count() != 30 {
		t.Errorf("latency/lag/service hold %d/%d/%d values, want 30 each", res.Latency.Count(), res.Lag.Count(), res.Service.Count())
	}
	// Latency counts from the due time, so it can never be shorter than the service time.
	if res.Latency.Max() < res.Service.Max() {
		t.Errorf("latency max %v is below service max %v", res.Latency.Max(), res.Service.Max())
	}
}

func TestRunFixedRateStopsAtDuration(t *testing.T) {
	// At 1000/s, exactly the requests due in the first 50 ms are sent, however slow the machine.
	srv := startTestServer(t, accepted)
	cfg := baseConfig(srv.url)
	cfg.Rate = 1000
	cfg.Duration = 50 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 50 || srv.received.Load() != 50 {
		t.Errorf("sent %d, server received %d, want 50 and 50", res.Sent, srv.received.Load())
	}
}

func TestRunCountsMissedWhenTheTargetFallsBehind(t *testing.T) {
	// The first answer takes 30 ms; by then the 20 ms run is over and past its 1 ms grace, so the
	// other 19 requests due in the window are missed rather than sent late.
	srv := startTestServer(t, func(n int64, ctx *fasthttp.RequestCtx) {
		if n == 1 {
			time.Sleep(30 * time.Millisecond)
		}
		accepted(n, ctx)
	})
	cfg := baseConfig(srv.url)
	cfg.Concurrency = 1
	cfg.Rate = 1000
	cfg.Duration = 20 * time.Millisecond
	cfg.Grace = time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 1 || res.Missed != 19 || srv.received.Load() != 1 {
		t.Errorf("sent %d, missed %d, server received %d; want 1, 19, 1", res.Sent, res.Missed, srv.received.Load())
	}
	if res.ErrorRate() != 0.95 {
		t.Errorf("error rate %v, want 0.95: missed requests count as failures", res.ErrorRate())
	}
	if res.Latency.Min() < 30*time.Millisecond {
		t.Errorf("latency %v is below the server's 30 ms stall", res.Latency.Min())
	}
}

func TestRunFlatOutStopsAtDuration(t *testing.T) {
	srv := startTestServer(t, accepted)
	cfg := baseConfig(srv.url)
	cfg.Duration = 100 * time.Millisecond
	cfg.Warmup = 20 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.OK != res.Sent || res.WarmupSent == 0 {
		t.Errorf("sent/ok/warmup = %d/%d/%d, want all ok and some warm-up", res.Sent, res.OK, res.WarmupSent)
	}
	if got := srv.received.Load(); got != res.Sent+res.WarmupSent {
		t.Errorf("server received %d, result accounts for %d", got, res.Sent+res.WarmupSent)
	}
	if res.Interrupted {
		t.Error("a run that ran to its end is marked interrupted")
	}
}

func TestRunCancelReturnsPartialResult(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startTestServer(t, func(n int64, rc *fasthttp.RequestCtx) {
		if n == 3 {
			cancel()
		}
		accepted(n, rc)
	})
	cfg := baseConfig(srv.url)
	cfg.Rate = 200
	cfg.Duration = time.Hour
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted {
		t.Error("result of a cancelled run is not marked interrupted")
	}
	if res.Sent < 3 || res.Sent > 3+int64(cfg.Concurrency) {
		t.Errorf("sent %d after cancelling at the 3rd, want 3 to %d", res.Sent, 3+cfg.Concurrency)
	}
}

func TestRunCountsRequestsWithoutAnswer(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/v1/messages"
	_ = ln.Close() // nothing listens there any more
	cfg := baseConfig(url)
	cfg.Concurrency = 2
	cfg.Requests = 10
	cfg.Timeout = 2 * time.Second
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 10 || res.OK != 0 || res.Transport["dial"] != 10 {
		t.Errorf("sent/ok = %d/%d, transport %v; want 10/0 and 10 dial errors", res.Sent, res.OK, res.Transport)
	}
	if res.ErrorRate() != 1 {
		t.Errorf("error rate %v, want 1", res.ErrorRate())
	}
}

func TestRunCountsTimeouts(t *testing.T) {
	release := make(chan struct{})
	srv := startTestServer(t, func(n int64, ctx *fasthttp.RequestCtx) {
		if n == 1 {
			<-release
		}
		accepted(n, ctx)
	})
	defer close(release)
	cfg := baseConfig(srv.url)
	cfg.Concurrency = 1
	cfg.Requests = 1
	cfg.Timeout = 50 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Transport["timeout"] != 1 || res.OK != 0 {
		t.Errorf("ok %d, transport %v; want the one request timed out", res.OK, res.Transport)
	}
}

func TestRunAgainstBareServer(t *testing.T) {
	bare, err := StartBare()
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(bare.URL)
	cfg.Requests = 300
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 300 || res.OK != 300 || res.ByStatus[201] != 300 {
		t.Errorf("sent/ok/201 = %d/%d/%d, want 300 each", res.Sent, res.OK, res.ByStatus[201])
	}
	if bare.Served() != 300 {
		t.Errorf("bare server accepted %d, want 300", bare.Served())
	}
	// Anything but the submit endpoint is a 404 with a JSON code.
	cfg.URL = strings.TrimSuffix(bare.URL, BarePath) + "/v2/other"
	cfg.Requests = 5
	res, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.ByStatus[404] != 5 || res.ByCode["not_found"] != 5 {
		t.Errorf("unknown path: status %v, codes %v; want five 404 not_found", res.ByStatus, res.ByCode)
	}
	if err := bare.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := baseConfig("http://127.0.0.1:1/v1/messages")
	ok.Duration = time.Second
	tests := []struct {
		name   string
		mutate func(*Config)
		code   string
	}{
		{"valid", func(*Config) {}, ""},
		{"https with default port", func(c *Config) { c.URL = "https://sms.example/v1/messages" }, ""},
		{"requests only", func(c *Config) { c.Duration = 0; c.Requests = 10 }, ""},
		{"relative url", func(c *Config) { c.URL = "/v1/messages" }, "invalid_url"},
		{"ftp url", func(c *Config) { c.URL = "ftp://x/v1" }, "invalid_url"},
		{"no concurrency", func(c *Config) { c.Concurrency = 0 }, "invalid_concurrency"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "invalid_rate"},
		{"negative warmup", func(c *Config) { c.Warmup = -time.Second }, "invalid_duration"},
		{"negative requests", func(c *Config) { c.Requests = -1 }, "invalid_requests"},
		{"unbounded", func(c *Config) { c.Duration = 0 }, "unbounded_run"},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, "invalid_timeout"},
		{"bad payload", func(c *Config) { c.Payload.Countries = []string{"ZZ"} }, "unknown_country"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.code+":") {
				t.Fatalf("Validate() = %v, want code %s", err, tt.code)
			}
			if _, err := Run(context.Background(), c); err == nil {
				t.Fatal("Run accepted an invalid config")
			}
		})
	}
}

func TestParseTargetPorts(t *testing.T) {
	tests := []struct{ url, addr string }{
		{"http://127.0.0.1:8080/v1/messages", "127.0.0.1:8080"},
		{"http://sms.example/v1/messages", "sms.example:80"},
		{"https://sms.example/v1/messages", "sms.example:443"},
		{"http://[::1]/v1/messages", "[::1]:80"},
	}
	for _, tt := range tests {
		if addr, _, err := parseTarget(tt.url); err != nil || addr != tt.addr {
			t.Errorf("parseTarget(%q) = %q, %v; want %q", tt.url, addr, err, tt.addr)
		}
	}
}

// BenchmarkBareRoundTrip measures one request through the client and the bare server on loopback,
// the floor under every proxy figure.
func BenchmarkBareRoundTrip(b *testing.B) {
	bare, err := StartBare()
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	cfg := baseConfig(bare.URL)
	cfg.Concurrency = 16
	cfg.Requests = int64(b.N)
	b.ResetTimer()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.Throughput(), "ok/s")
	b.ReportMetric(float64(res.Latency.Percentile(99))/1e3, "p99-µs")
}
