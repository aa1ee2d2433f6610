package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/proxy/store"
)

// The benchmarks mirror proxy/store's SQLite ones (same message, same shapes) so that the two can
// be compared within one run: go test -bench . -benchtime 5000x ./proxy/store/ ./proxy/store/postgres/

// benchMessage is a message of realistic size: masked fields, a short body, a ~250-byte payload.
func benchMessage(id string) store.Accepted {
	return store.Accepted{
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
	for range callers {
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

func acceptN(b *testing.B, p *Postgres, n int) {
	parallel(b, n, 64, func(i int) error {
		_, err := p.Accept(context.Background(), benchMessage(fmt.Sprintf("m-%09d", i)))
		return err
	})
}

func BenchmarkAccept(b *testing.B) {
	for _, callers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			p := openT(b, freshSchema(b), Options{})
			ctx := context.Background()
			msgs := make([]store.Accepted, b.N)
			for i := range msgs {
				msgs[i] = benchMessage(fmt.Sprintf("m-%09d", i))
			}
			before := p.Commits()
			b.ResetTimer()
			d := parallel(b, b.N, callers, func(i int) error {
				_, err := p.Accept(ctx, msgs[i])
				return err
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(max(p.Commits()-before, 1)), "ops/commit")
		})
	}
}

// BenchmarkAcceptTwoReplicas splits 128 callers over two stores on one database, as two replicas.
func BenchmarkAcceptTwoReplicas(b *testing.B) {
	dsn := freshSchema(b)
	ps := []*Postgres{openT(b, dsn, Options{}), openT(b, dsn, Options{})}
	ctx := context.Background()
	msgs := make([]store.Accepted, b.N)
	for i := range msgs {
		msgs[i] = benchMessage(fmt.Sprintf("m-%09d", i))
	}
	b.ResetTimer()
	d := parallel(b, b.N, 128, func(i int) error {
		_, err := ps[i%2].Accept(ctx, msgs[i])
		return err
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
}

func BenchmarkRecordSent(b *testing.B) {
	for _, tc := range []struct{ batch, callers int }{{1, 1}, {64, 1}, {64, 4}} {
		b.Run(fmt.Sprintf("batch=%d/callers=%d", tc.batch, tc.callers), func(b *testing.B) {
			p := openT(b, freshSchema(b), Options{})
			acceptN(b, p, b.N)
			ctx := context.Background()
			batches := (b.N + tc.batch - 1) / tc.batch
			before := p.Commits()
			b.ResetTimer()
			d := parallel(b, batches, tc.callers, func(k int) error {
				var sent []store.Sent
				for i := k * tc.batch; i < min((k+1)*tc.batch, b.N); i++ {
					sent = append(sent, store.Sent{MessageID: fmt.Sprintf("m-%09d", i), Provider: "sim", ProviderMessageID: fmt.Sprintf("p-%09d", i), Attempts: 1})
				}
				return p.RecordSent(ctx, sent)
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
			b.ReportMetric(float64(p.Commits()-before), "commits")
		})
	}
}

func BenchmarkApplyReceipt(b *testing.B) {
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			p := openT(b, freshSchema(b), Options{})
			acceptN(b, p, b.N)
			ctx := context.Background()
			parallel(b, (b.N+255)/256, 2, func(k int) error {
				var sent []store.Sent
				for i := k * 256; i < min((k+1)*256, b.N); i++ {
					sent = append(sent, store.Sent{MessageID: fmt.Sprintf("m-%09d", i), Provider: "sim", ProviderMessageID: fmt.Sprintf("p-%09d", i)})
				}
				return p.RecordSent(ctx, sent)
			})
			b.ResetTimer()
			d := parallel(b, b.N, callers, func(i int) error {
				r, err := p.ApplyReceipt(ctx, store.Receipt{Provider: "sim", ProviderMessageID: fmt.Sprintf("p-%09d", i), Status: store.StatusDelivered})
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

// BenchmarkAcceptSealed is BenchmarkAccept with a real recipient: the caller fetches the subject
// key (a cache hit after the first), seals the payload, and the writer seals the personal part.
func BenchmarkAcceptSealed(b *testing.B) {
	for _, callers := range []int{16, 128} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			p := openT(b, freshSchema(b), Options{CheckpointEvery: -1, CheckpointInterval: -1})
			ctx := context.Background()
			msgs := make([]store.Accepted, b.N)
			for i := range msgs {
				msgs[i] = benchMessage(fmt.Sprintf("m-%09d", i))
				msgs[i].ToHash = ""
				msgs[i].To = fmt.Sprintf("+6591%06d", i%1000)
				msgs[i].Personal = []byte(`{"to":"` + msgs[i].To + `","body":"Your PayCo code is 482913."}`)
			}
			before := p.Commits()
			b.ResetTimer()
			d := parallel(b, b.N, callers, func(i int) error {
				_, err := p.Accept(ctx, msgs[i])
				return err
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(max(p.Commits()-before, 1)), "ops/commit")
		})
	}
}

// BenchmarkVerifyAudit verifies a trail of 100,000 sealed message events per iteration.
func BenchmarkVerifyAudit(b *testing.B) {
	const records = 100_000
	p := openT(b, freshSchema(b), Options{CheckpointEvery: -1, CheckpointInterval: -1})
	ctx := context.Background()
	parallel(b, records, 128, func(i int) error {
		a := benchMessage(fmt.Sprintf("v-%09d", i))
		a.ToHash, a.To = "", fmt.Sprintf("+6591%06d", i%1000)
		a.Personal = []byte(`{"to":"` + a.To + `"}`)
		_, err := p.Accept(ctx, a)
		return err
	})
	if _, err := p.WriteCheckpoint(ctx, time.Now()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		rep, err := p.VerifyAudit(ctx, nil)
		if err != nil || !rep.OK() || rep.Records != records {
			b.Fatalf("VerifyAudit = %+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(records*b.N)/time.Since(start).Seconds(), "records/s")
}
