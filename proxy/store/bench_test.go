package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchMessage is a message of realistic size: masked fields, a short body, a ~250-byte payload.
func benchMessage(id string) Accepted {
	return Accepted{
		ID: id, App: "payments", IdempotencyKey: "idem-" + id, RequestHash: "3f9a2c61d0b84e7f", ToMasked: "+65****4321",
		ToHash: "b1946ac92492d2347c6235b4d2611184", Country: "SG", Sender: "PAYCO", SenderKind: "alphanumeric",
		Category: "otp", Body: "Your PayCo code is ******. It expires in 5 minutes. Never share it.", Encoding: "GSM-7",
		Segments: 1, Detail: []byte(`{"template":"otp_login","locale":"en"}`),
		Audit:   []byte(`{"to":"+65****4321","category":"otp","sender":"PAYCO","template":"otp_login"}`),
		Payload: make([]byte, 250),
	}
}

// parallel runs n calls of fn spread over callers goroutines and returns the wall time.
func parallel(b *testing.B, n, callers int, fn func(i int) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func benchStore(b *testing.B, opts Options) *SQLite {
	s := openTest(b, filepath.Join(b.TempDir(), "bench.db"), opts)
	b.Cleanup(func() { s.Close() })
	return s
}

// acceptN stores n messages named prefix-i as fast as possible, for setting up a benchmark.
func acceptN(b *testing.B, s *SQLite, prefix string, n int) {
	parallel(b, n, 64, func(i int) error {
		_, err := s.Accept(context.Background(), benchMessage(fmt.Sprintf("%s-%09d", prefix, i)))
		return err
	})
}

func BenchmarkAccept(b *testing.B) {
	for _, callers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s := benchStore(b, Options{})
			ctx := context.Background()
			msgs := make([]Accepted, b.N)
			for i := range msgs {
				msgs[i] = benchMessage(fmt.Sprintf("m-%09d", i))
			}
			before := s.Commits()
			b.ResetTimer()
			d := parallel(b, b.N, callers, func(i int) error {
				_, err := s.Accept(ctx, msgs[i])
				return err
			})
			b.StopTimer()
			commits := s.Commits() - before
			b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(commits), "ops/commit")
		})
	}
}

func BenchmarkRecordSent(b *testing.B) {
	for _, tc := range []struct{ batch, callers int }{{1, 1}, {64, 1}, {64, 4}} {
		b.Run(fmt.Sprintf("batch=%d/callers=%d", tc.batch, tc.callers), func(b *testing.B) {
			s := benchStore(b, Options{})
			acceptN(b, s, "m", b.N)
			ctx := context.Background()
			batches := (b.N + tc.batch - 1) / tc.batch
			before := s.Commits()
			b.ResetTimer()
			d := parallel(b, batches, tc.callers, func(k int) error {
				var sent []Sent
				for i := k * tc.batch; i < min((k+1)*tc.batch, b.N); i++ {
					sent = append(sent, Sent{MessageID: fmt.Sprintf("m-%09d", i), Provider: "sim", ProviderMessageID: fmt.Sprintf("p-%09d", i), Attempts: 1})
				}
				return s.RecordSent(ctx, sent)
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
			b.ReportMetric(float64(s.Commits()-before), "commits")
		})
	}
}

func BenchmarkApplyReceipt(b *testing.B) {
	for _, tc := range []struct {
		name    string
		callers int
		cache   int
	}{{"cached/callers=1", 1, 0}, {"cached/callers=16", 16, 0}, {"uncached/callers=16", 16, -1}} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchStore(b, Options{CorrelationCache: tc.cache})
			acceptN(b, s, "m", b.N)
			ctx := context.Background()
			parallel(b, (b.N+255)/256, 2, func(k int) error {
				var sent []Sent
				for i := k * 256; i < min((k+1)*256, b.N); i++ {
					sent = append(sent, Sent{MessageID: fmt.Sprintf("m-%09d", i), Provider: "sim", ProviderMessageID: fmt.Sprintf("p-%09d", i)})
				}
				return s.RecordSent(ctx, sent)
			})
			b.ResetTimer()
			d := parallel(b, b.N, tc.callers, func(i int) error {
				r, err := s.ApplyReceipt(ctx, Receipt{Provider: "sim", ProviderMessageID: fmt.Sprintf("p-%09d", i), Status: StatusDelivered})
				if err == nil && !r.Applied {
					err = fmt.Errorf("receipt %d not applied", i)
				}
				return err
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkLifecycle runs the proxy's write mix: 64 callers accept messages, a dispatcher records
// them as sent in batches of what has queued up (at most 64), and 64 receivers (the plugin host's receive workers) apply a delivery
// receipt for each. It reports the writer's busy time per message, the figure that bounds the
// proxy's throughput, beside the messages per second.
func BenchmarkLifecycle(b *testing.B) {
	s := benchStore(b, Options{})
	msgs := make([]Accepted, b.N)
	for i := range msgs {
		msgs[i] = benchMessage(fmt.Sprintf("m-%09d", i))
		msgs[i].IdempotencyKey = "" // as the proxy without an Idempotency-Key header
	}
	accepted, wait := runLifecycle(b, s, 64)
	before := s.WriterStats()
	cpu0 := cpuTime()
	d := acceptTimed(b, s, msgs, 64, nil, accepted, wait)
	cpu := cpuTime() - cpu0
	st := s.WriterStats()
	b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
	b.ReportMetric(float64(st.Busy-before.Busy)/float64(time.Microsecond)/float64(b.N), "writer-µs/msg")
	b.ReportMetric(float64(st.Ops-before.Ops)/float64(st.Batches-before.Batches), "ops/batch")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64(st.Committing-before.Committing)/float64(time.Microsecond)/float64(st.Commits-before.Commits), "µs/commit")
}

// acceptTimed accepts msgs[:b.N] from callers goroutines, each running pre first when it is not
// nil, hands every accepted id to the lifecycle runLifecycle started and returns the time until
// that lifecycle has finished. The benchmark's timer runs only meanwhile.
func acceptTimed(b *testing.B, s *SQLite, msgs []Accepted, callers int, pre func(Accepted) error,
	accepted chan<- string, wait func()) time.Duration {
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	parallel(b, b.N, callers, func(i int) error {
		if pre != nil {
			if err := pre(msgs[i]); err != nil {
				return err
			}
		}
		_, err := s.Accept(ctx, msgs[i])
		if err == nil {
			accepted <- msgs[i].ID
		}
		return err
	})
	close(accepted)
	wait()
	d := time.Since(start)
	b.StopTimer()
	return d
}

// runLifecycle plays the rest of each message's life while a benchmark accepts messages and sends
// their ids to accepted: a dispatcher records them as sent in batches of what has queued up (at most
// 64), and receivers (the plugin host's receive workers) apply a delivery receipt for each. Close
// accepted when done, then call wait.
func runLifecycle(b *testing.B, s *SQLite, receivers int) (accepted chan<- string, wait func()) {
	ctx := context.Background()
	acc := make(chan string, 1024)
	receipts := make(chan string, 1024)
	var wg sync.WaitGroup
	wg.Go(func() { // the dispatcher
		defer close(receipts)
		var batch []Sent
		for id := range acc {
			batch = append(batch[:0], Sent{MessageID: id, Provider: "sim", ProviderMessageID: "p" + id, Attempts: 1})
		more:
			for len(batch) < 64 {
				select {
				case id, ok := <-acc:
					if !ok {
						break more
					}
					batch = append(batch, Sent{MessageID: id, Provider: "sim", ProviderMessageID: "p" + id, Attempts: 1})
				default:
					break more
				}
			}
			if err := s.RecordSent(ctx, batch); err != nil {
				b.Error(err)
			}
			for _, x := range batch {
				receipts <- x.ProviderMessageID
			}
		}
	})
	for range receivers {
		wg.Go(func() {
			for pmid := range receipts {
				if r, err := s.ApplyReceipt(ctx, Receipt{Provider: "sim", ProviderMessageID: pmid, Status: StatusDelivered}); err != nil || !r.Applied {
					b.Error(r, err)
				}
			}
		})
	}
	return acc, wg.Wait
}

// cpuTime returns the user and system CPU time the process has used: unlike the wall time, it
// hardly moves when other processes share the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
