package simulator

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// pluginEnv makes the test binary serve the simulator as a plugin process, the way
// `smsproxy plugin simulator` does (see TestMain); pluginProfileEnv, if set in the environment of
// the benchmark, names a file for the plugin process's CPU profile.
const (
	pluginEnv        = "SMSPROXY_SIMULATOR_TEST_PLUGIN"
	pluginProfileEnv = "SMSPROXY_SIMULATOR_TEST_PLUGIN_CPUPROFILE"
)

var (
	loadRate   = flag.Int("sim.rate", 2000, "messages per second offered by BenchmarkHostLoad; 0 means as fast as possible")
	loadConfig = flag.String("sim.config", `{"latency":"2ms","receipt_delay":"200ms","state_dir":%q}`, "the simulator's configuration in BenchmarkHostLoad; %q is a state directory")
	loadAcks   = flag.Bool("sim.receive", true, "receive and acknowledge the receipts in BenchmarkHostLoad")
)

// BenchmarkHostLoad drives the simulator the way the host does under load and reports its CPU time
// per message (cpu-µs/msg). Four callers send batches at a fixed total rate (-sim.rate, 2,000
// messages/s) with the dev region's configuration (2ms latency, 200ms receipt delay, a ledger in
// state_dir), and a receiver acknowledges every receipt; b.N is the number of messages, and the
// measurement ends when the last receipt is acknowledged.
//
// "plugin" runs the simulator as a real plugin process, over go-plugin's gRPC with AutoMTLS, and
// measures that process (/proc, Linux only): the figure to compare with a proxy under load. It
// includes the gRPC adapters of plugins/provider. "inproc" calls the simulator directly and
// measures this process (RUSAGE_SELF): the simulator's own code plus the load generator, and the
// number of fsyncs per message.
//
// With batch=64 and batch=4 every caller sends batches of that size at a steady pace. With
// batch=queued messages arrive one by one at the rate and each caller, like a worker of the host's
// dispatcher, sends whatever has queued (up to 64) as soon as its previous Send returned, so batch
// sizes (msgs/batch) and overlapping Sends come out as they do in the proxy.
//
//	go test ./plugins/simulator -run '^$' -bench HostLoad -benchtime 20000x
func BenchmarkHostLoad(b *testing.B) {
	for _, mode := range []string{"inproc", "plugin"} {
		for _, size := range []int{64, 4, 0} {
			name := fmt.Sprintf("%s/batch=%d/callers=4", mode, size)
			if size == 0 {
				name = mode + "/batch=queued/callers=4"
			}
			b.Run(name, func(b *testing.B) {
				benchHostLoad(b, mode, size, 4)
			})
		}
	}
}

func benchHostLoad(b *testing.B, mode string, size, callers int) {
	config := *loadConfig
	if strings.Contains(config, "%q") {
		config = fmt.Sprintf(config, b.TempDir())
	}
	var (
		p        provider.Provider
		cpuTime  func() time.Duration // of the measured process
		switches func() int64         // context switches of the measured process's threads
		fsyncs   atomic.Int64         // counted in process only
	)
	switch mode {
	case "inproc":
		defer slog.SetDefault(slog.Default())
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
		s := New()
		if err := s.Configure([]byte(config)); err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if l := s.ledger.Load(); l != nil {
			inner := l.sync
			l.sync = func() error { fsyncs.Add(1); return inner() }
		}
		p, cpuTime, switches = s, selfCPU, selfSwitches
	case "plugin":
		pl, err := provider.Launch(context.Background(), provider.LaunchConfig{
			Name: "simulator",
			Cmd: func() *exec.Cmd {
				cmd := exec.Command(os.Args[0])
				cmd.Env = []string{pluginEnv + "=1", pluginProfileEnv + "=" + os.Getenv(pluginProfileEnv)}
				return cmd
			},
			Config: []byte(config),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		defer pl.Close()
		pid := pl.Pid()
		p, cpuTime = pl, func() time.Duration { return processCPU(b, pid) }
		switches = func() int64 { return processSwitches(pid) }
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var acked atomic.Int64
	allAcked := make(chan struct{})
	received := make(chan error, 1)
	total := int64(b.N)
	if !*loadAcks {
		close(allAcked)
	}
	go func() {
		if !*loadAcks {
			<-ctx.Done()
			received <- ctx.Err()
			return
		}
		received <- p.Receive(ctx, func(e provider.Event) error {
			if acked.Add(1) == total {
				close(allAcked)
			}
			return nil
		})
	}()

	var (
		src     = newLoadSource(total, size, callers)
		batches atomic.Int64
		wg      sync.WaitGroup
		run     = strconv.FormatInt(time.Now().UnixNano(), 36)
	)
	b.ResetTimer()
	startCPU, startSwitches, start := cpuTime(), switches(), time.Now()
	go src.release(start)
	for c := range callers {
		wg.Go(func() {
			var reqs []provider.SendRequest
			for {
				first, end, ok := src.take(c, start)
				if !ok {
					return
				}
				reqs = reqs[:0]
				for i := first; i < end; i++ {
					n := strconv.FormatInt(i, 10)
					reqs = append(reqs, provider.SendRequest{
						MessageID: "msg-" + run + "-" + n, IdempotencyKey: "key-" + run + "-" + n,
						To: "+6591" + fmt.Sprintf("%06d", i%1_000_000), From: "ACME", SenderKind: "alphanumeric",
						Body: "Your code is 123456", Encoding: "GSM-7", Segments: 1, Country: "SG", Category: "otp",
					})
				}
				batches.Add(1)
				res, err := p.Send(context.Background(), reqs)
				if err != nil {
					b.Errorf("Send: %v", err)
					return
				}
				for i := range res {
					if !res[i].Accepted {
						b.Errorf("message refused: %+v", res[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-allAcked:
	case err := <-received:
		b.Fatalf("Receive ended with %d of %d receipts acknowledged: %v", acked.Load(), total, err)
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d receipts acknowledged after a minute", acked.Load(), total)
	}
	cpu, elapsed, switched := cpuTime()-startCPU, time.Since(start), switches()-startSwitches
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(switched)/float64(b.N), "ctxsw/msg")
	b.ReportMetric(float64(b.N)/float64(batches.Load()), "msgs/batch")
	if mode == "inproc" {
		b.ReportMetric(float64(fsyncs.Load())/float64(b.N), "fsyncs/msg")
	}
	cancel()
	<-received
}

// selfCPU returns the user and system CPU time of this process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU returns the user and system CPU time of process pid, from /proc (Linux only).
func processCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skipf("no CPU time for the plugin process: %v", err)
	}
	// The command name, in parentheses, may hold spaces; fields count from after it.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// selfSwitches returns the context switches of this process's threads.
func selfSwitches() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Nvcsw + ru.Nivcsw
}

// processSwitches returns the context switches of the live threads of process pid, from /proc.
func processSwitches(pid int) int64 {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var n int64
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// loadSource hands out the messages of BenchmarkHostLoad, numbered from 0, at loadRate.
type loadSource struct {
	total   int64
	size    int // messages per batch; 0 means whatever has queued, up to 64
	callers int
	period  time.Duration // between two batches of one caller, for size > 0

	mu       sync.Mutex
	cond     *sync.Cond
	released int64 // messages that have arrived, for size 0
	taken    int64
	due      []time.Time // per caller, for size > 0
}

func newLoadSource(total int64, size, callers int) *loadSource {
	s := &loadSource{total: total, size: size, callers: callers, due: make([]time.Time, callers)}
	s.cond = sync.NewCond(&s.mu)
	if *loadRate > 0 && size > 0 {
		s.period = time.Duration(float64(time.Second) * float64(size*callers) / float64(*loadRate))
	}
	if *loadRate <= 0 {
		s.released = total
	}
	return s
}

// release lets messages arrive at loadRate, for size 0.
func (s *loadSource) release(start time.Time) {
	if s.size > 0 || *loadRate <= 0 {
		return
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for now := range t.C {
		n := min(s.total, int64(now.Sub(start).Seconds()*float64(*loadRate)))
		s.mu.Lock()
		s.released = n
		s.cond.Broadcast()
		s.mu.Unlock()
		if n == s.total {
			return
		}
	}
}

// take returns the next batch of caller c, [first, end), once it is due; ok is false when all
// messages were handed out.
func (s *loadSource) take(c int, start time.Time) (first, end int64, ok bool) {
	s.mu.Lock()
	if s.size > 0 {
		first, end = s.taken, min(s.taken+int64(s.size), s.total)
		s.taken = end
		if s.due[c].IsZero() {
			s.due[c] = start.Add(s.period * time.Duration(c) / time.Duration(s.callers))
		}
		due := s.due[c]
		s.due[c] = due.Add(s.period)
		s.mu.Unlock()
		time.Sleep(time.Until(due))
		return first, end, first < end
	}
	for s.taken == s.released && s.taken < s.total {
		s.cond.Wait()
	}
	first, end = s.taken, min(s.released, s.taken+64)
	s.taken = end
	s.mu.Unlock()
	return first, end, first < end
}
