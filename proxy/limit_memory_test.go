package proxy

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/limit"
)

// BenchmarkLimiterMillionKeysRSS measures the whole proxy process with its limiter full: it starts a
// real proxy on the embedded dev defaults (with the simulator plugin as its own process), fills the
// proxy's own limiter with 1,000,000 distinct realistic keys and reports the process's resident
// memory. Run it with `go test -run x -bench LimiterMillionKeysRSS -benchtime 1x ./proxy`. The target
// is under 200 MB of RSS in all; being a benchmark, it reports rather than fails on a noisy machine,
// but it fails when the limiter does not hold the keys it was given.
func BenchmarkLimiterMillionKeysRSS(b *testing.B) {
	const n = 1_000_000
	if _, err := readProcStatusMB("VmRSS:"); err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Skip("no go command to build the plugin binary")
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "smsproxy")
	build := exec.Command(goBin, "build", "-o", bin, "github.com/smsproxy/smsproxy/cmd/smsproxy")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building smsproxy: %v\n%s", err, out)
	}

	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Limits.Keys = max(cfg.Limits.Keys, n)
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := New(ctx, Options{
		Config:        cfg,
		Logger:        slog.New(slog.DiscardHandler),
		PluginCommand: func(name string) (string, []string) { return bin, []string{"plugin", name} },
	})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // never the default :8080
	if err != nil {
		_ = p.Close()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); !p.ready.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("proxy not ready after 10s")
		}
	}
	lim, ok := p.limiter.(*limit.Limiter)
	if !ok {
		b.Fatalf("limiter is %T, want the in-process *limit.Limiter", p.limiter)
	}

	for b.Loop() {
		goruntime.GC()
		idleRSS, _ := readProcStatusMB("VmRSS:")
		idleAnon, _ := readProcStatusMB("RssAnon:")
		idleFile, _ := readProcStatusMB("RssFile:")
		var idle goruntime.MemStats
		goruntime.ReadMemStats(&idle)

		// The dev region's otp_per_number limit (one per 60 s) on distinct Singapore mobile numbers,
		// with the key the policy builds ("otp:to:" and the E.164 number).
		lims := []limit.Limit{{Rate: 1, Period: 60 * time.Second}}
		now := time.Now()
		var key strings.Builder
		for i := range n {
			key.Reset()
			key.WriteString("otp:to:+65")
			key.WriteString(strconv.Itoa(90_000_000 + i))
			lims[0].Key = key.String()
			if _, d := lim.Reserve(now, lims); d != nil {
				b.Fatalf("key %d: %v", i, d)
			}
		}
		goruntime.GC()
		var full goruntime.MemStats
		goruntime.ReadMemStats(&full)
		rss, err := readProcStatusMB("VmRSS:")
		if err != nil {
			b.Fatal(err)
		}
		hwm, err := readProcStatusMB("VmHWM:")
		if err != nil {
			b.Fatal(err)
		}
		if got := lim.Len(); got < n*99/100 || got > n {
			b.Fatalf("limiter holds %d keys, want about %d", got, n)
		}
		b.ReportMetric(rss, "VmRSS-MB")
		b.ReportMetric(hwm, "VmHWM-MB")
		b.ReportMetric(float64(full.HeapInuse)/1e6, "HeapInuse-MB")
		b.ReportMetric(idleRSS, "idle-VmRSS-MB")
		b.Logf("idle: VmRSS %.1f MB, HeapInuse %.1f MB, heap live %.1f MB, non-heap (Sys-HeapSys) %.1f MB",
			idleRSS, float64(idle.HeapInuse)/1e6, float64(idle.HeapAlloc)/1e6, float64(idle.Sys-idle.HeapSys)/1e6)
		anon, _ := readProcStatusMB("RssAnon:")
		file, _ := readProcStatusMB("RssFile:")
		b.Logf("full: RssAnon %.1f MB, RssFile %.1f MB (idle: RssAnon %.1f MB, RssFile %.1f MB)", anon, file, idleAnon, idleFile)
		b.Logf("%d keys: VmRSS %.1f MB, VmHWM %.1f MB, HeapInuse %.1f MB, heap live %.1f MB, HeapSys %.1f MB, HeapReleased %.1f MB, GOGC=%q GOMEMLIMIT=%q",
			lim.Len(), rss, hwm, float64(full.HeapInuse)/1e6, float64(full.HeapAlloc)/1e6,
			float64(full.HeapSys)/1e6, float64(full.HeapReleased)/1e6, os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"))
	}
}

// readProcStatusMB returns a field of /proc/self/status given in kB, such as "VmRSS:", in MB.
func readProcStatusMB(field string) (float64, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024 / 1e6, nil
		}
	}
	return 0, os.ErrNotExist
}
