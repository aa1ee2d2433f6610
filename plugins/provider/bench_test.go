package provider_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// BenchmarkSend measures Send over a real plugin process (the simulator, no ledger, no latency),
// one batch per call from 2×GOMAXPROCS concurrent callers, and reports messages per second.
func BenchmarkSend(b *testing.B) {
	for _, size := range []int{1, 64} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("batch=%d/callers=%dxCPU", size, par), func(b *testing.B) {
				p := launch(b, ``, nil)
				defer p.Close()
				var seq atomic.Int64
				b.SetParallelism(par)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					reqs := batch("b", size)
					for pb.Next() {
						n := seq.Add(1)
						for i := range reqs {
							reqs[i].IdempotencyKey = strconv.FormatInt(n, 10) + "-" + strconv.Itoa(i)
						}
						res, err := p.Send(context.Background(), reqs)
						if err != nil || len(res) != size {
							b.Errorf("Send: %v", err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkReceive measures receipts streamed from a real plugin process to a host handler.
func BenchmarkReceive(b *testing.B) {
	p := launch(b, ``, nil)
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Receive(ctx, func(provider.Event) error {
			got.Add(1)
			return nil
		})
	}()
	b.ResetTimer()
	const size = 500
	sent := 0
	for sent < b.N {
		n := min(size, b.N-sent)
		reqs := batch("r"+strconv.Itoa(sent), n)
		if _, err := p.Send(context.Background(), reqs); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	for got.Load() < int64(b.N) {
		select {
		case <-done:
			b.Fatal("Receive ended early")
		default:
		}
		runtimeGosched()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	cancel()
	<-done
}

func runtimeGosched() { runtime.Gosched() }
