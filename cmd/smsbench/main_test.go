package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/test/load"
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

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		code  string
		check func(t *testing.T, o options)
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, o options) {
			c := o.cfg
			if c.Concurrency != 16 || c.Rate != 0 || c.Duration.Seconds() != 10 || c.Warmup.Seconds() != 2 {
				t.Errorf("defaults c=%d rate=%v d=%v warmup=%v", c.Concurrency, c.Rate, c.Duration, c.Warmup)
			}
			if len(c.Payload.Countries) != 6 || c.Payload.Categories[0] != "transaction" || c.Seed == 0 {
				t.Errorf("defaults countries=%v categories=%v seed=%d", c.Payload.Countries, c.Payload.Categories, c.Seed)
			}
		}},
		{name: "fixed rate with senders", args: []string{"-rate", "13000", "-c", "32", "-countries", "SG, US", "-from", "SG=PAYLINK88,US=+12015550123", "-seed", "7"},
			check: func(t *testing.T, o options) {
				if o.cfg.Rate != 13000 || o.cfg.Concurrency != 32 || o.cfg.Seed != 7 || o.cfg.Payload.Senders["US"] != "+12015550123" {
					t.Errorf("got %+v", o.cfg)
				}
			}},
		{name: "bare-only ignores a bad url", args: []string{"-bare-only", "-url", "nonsense"}},
		{name: "bad url", args: []string{"-url", "nonsense"}, code: "invalid_url"},
		{name: "unknown country", args: []string{"-countries", "SG,FR"}, code: "unknown_country"},
		{name: "bad senders", args: []string{"-from", "SG="}, code: "invalid_senders"},
		{name: "max errors above one", args: []string{"-max-errors", "5"}, code: "invalid_max_errors"},
		{name: "positional argument", args: []string{"http://x"}, code: "unexpected_argument"},
		{name: "unbounded", args: []string{"-d", "0"}, code: "unbounded_run"},
		{name: "short body", args: []string{"-body-len", "5"}, code: "invalid_body_len"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseFlags(tt.args, &stderr)
			if tt.code != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.code+":") {
					t.Fatalf("parseFlags(%v) error = %v, want code %s", tt.args, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%v) = %v", tt.args, err)
			}
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

func TestRunBareOnlyJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-bare-only", "-c", "2", "-n", "200", "-d", "0", "-warmup", "0", "-json"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	var s load.Summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("stdout is not a JSON summary: %v\n%s", err, stdout.String())
	}
	if s.Label != "bare" || s.Sent != 200 || s.OK != 200 || s.ByStatus["201"] != 200 {
		t.Errorf("summary %+v, want 200 bare requests all 201", s)
	}
	if !strings.Contains(stderr.String(), "throughput") {
		t.Errorf("text report missing from stderr:\n%s", stderr.String())
	}
}

// startServer answers every POST with status and body.
func startServer(t *testing.T, status int, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(body)
	}}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return "http://" + ln.Addr().String() + "/v1/messages"
}

func TestRunBareThenProxyComparison(t *testing.T) {
	url := startServer(t, 201, `{"id":"m","status":"accepted","encoding":"GSM-7","segments":1,"provider":"simulator"}`)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-bare", "-url", url, "-c", "2", "-n", "100", "-d", "0", "-warmup", "0", "-json"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	var c load.Comparison
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		t.Fatalf("stdout is not a comparison: %v\n%s", err, stdout.String())
	}
	if c.Bare.OK != 100 || c.Proxy.OK != 100 || c.ThroughputRatio <= 0 {
		t.Errorf("comparison bare ok %d, proxy ok %d, ratio %v", c.Bare.OK, c.Proxy.OK, c.ThroughputRatio)
	}
	if c.Bare.Seed != c.Proxy.Seed {
		t.Errorf("bare seed %d, proxy seed %d: the two runs must send the same messages", c.Bare.Seed, c.Proxy.Seed)
	}
	if !strings.Contains(stderr.String(), "proxy/bare") {
		t.Errorf("side-by-side table missing:\n%s", stderr.String())
	}
}

func TestExitStatusFollowsErrorRate(t *testing.T) {
	url := startServer(t, 429, `{"code":"rate_limited","message":"Slow down.","rule":"limits.per_app"}`)
	tests := []struct {
		maxErrors string
		want      int
	}{
		{"0", exitErrors},
		{"0.5", exitErrors},
		{"1", exitOK},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"-url", url, "-c", "1", "-n", "5", "-d", "0", "-warmup", "0", "-max-errors", tt.maxErrors}, &stdout, &stderr)
		if code != tt.want {
			t.Errorf("-max-errors %s: exit %d, want %d; stderr:\n%s", tt.maxErrors, code, tt.want, stderr.String())
		}
		if !strings.Contains(stdout.String(), "rate_limited: 5") {
			t.Errorf("report does not count the codes:\n%s", stdout.String())
		}
	}
}

func TestInterruptedRunExits130(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"-bare-only", "-n", "10", "-warmup", "0"}, &stdout, &stderr); code != exitInterrupted {
		t.Fatalf("exit %d, want %d", code, exitInterrupted)
	}
}

func TestAPIKeyFromEnvironmentIsNotPrinted(t *testing.T) {
	t.Setenv("SMSBENCH_API_KEY", "sk-secret-123")
	var stderr bytes.Buffer
	o, err := parseFlags([]string{"-h"}, &stderr)
	if err == nil {
		t.Fatal("-h did not return flag.ErrHelp")
	}
	if strings.Contains(stderr.String(), "sk-secret-123") {
		t.Fatal("usage text shows the API key")
	}
	if o, err = parseFlags(nil, &stderr); err != nil || o.cfg.APIKey != "sk-secret-123" {
		t.Fatalf("key from environment = %q, %v", o.cfg.APIKey, err)
	}
	if o, _ = parseFlags([]string{"-key", "k2"}, &stderr); o.cfg.APIKey != "k2" {
		t.Fatalf("-key = %q, want it to win over the environment", o.cfg.APIKey)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-c", "0"}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("-h: exit %d, want 0", code)
	}
}

// TestParseStatCPU reads utime and stime past a command name with spaces and parentheses.
func TestParseStatCPU(t *testing.T) {
	line := "4242 (smsproxy (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 25 0 0 20 0 9 0 100 0 0\n"
	got, err := parseStatCPU(line)
	if err != nil || got != 1750*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 1.75s (175 ticks)", got, err)
	}
	for _, bad := range []string{"", "4242 smsproxy S 1", "4242 (smsproxy) S 1 2 3"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
}

// TestCPUMeterMeasuresWork checks the meter against this process burning CPU, and that -pids
// refuses what is not a process id.
func TestCPUMeterMeasuresWork(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: CPU time per message is reported on Linux only")
	}
	m, err := startCPU([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	var b strings.Builder
	if err := m.report(&b, 1000); err != nil {
		t.Fatal(err)
	}
	var pid int
	var secs float64
	var per int
	if _, err := fmt.Sscanf(strings.TrimSpace(b.String()), "cpu         pid %d: %f s, %d µs/msg", &pid, &secs, &per); err != nil {
		t.Fatalf("report %q: %v", b.String(), err)
	}
	if pid != os.Getpid() || secs < 0.2 || per < 200 {
		t.Fatalf("report %q: want ≥ 0.2 s and ≥ 200 µs/msg for 300 ms of busy loop over 1,000 messages", b.String())
	}
	if _, err := parsePIDs("12,abc"); err == nil {
		t.Error("-pids 12,abc accepted")
	}
	if _, err := startCPU([]int{1 << 30}); err == nil {
		t.Error("a process that does not exist was accepted")
	}
}
