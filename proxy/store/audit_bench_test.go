package store

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAcceptSealed is BenchmarkAccept with a recipient and a personal part: the subject key of
// each of 1,000 recipients is created on first use, then the outbox payload and the audit event's
// personal part are sealed under it and the event chained.
func BenchmarkAcceptSealed(b *testing.B) {
	for _, callers := range []int{16, 128} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s := benchStore(b, Options{})
			ctx := context.Background()
			msgs := make([]Accepted, b.N)
			for i := range msgs {
				msgs[i] = benchMessage(fmt.Sprintf("m-%09d", i))
				to := fmt.Sprintf("+659%07d", i%1000)
				msgs[i].To, msgs[i].ToHash = to, ""
				msgs[i].Personal = []byte(`{"to":"` + to + `","body":"Your PayCo code is 482913. It expires in 5 minutes. Never share it."}`)
			}
			before := s.Commits()
			b.ResetTimer()
			d := parallel(b, b.N, callers, func(i int) error {
				_, err := s.Accept(ctx, msgs[i])
				return err
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(s.Commits()-before), "ops/commit")
		})
	}
}

// BenchmarkVerifyAudit verifies a trail of 1,000,000 records (built once, in transactions of
// 10,000 appends, a tenth of them sealed) and reports records verified per second.
func BenchmarkVerifyAudit(b *testing.B) {
	const records, perTx = 1_000_000, 10_000
	s := benchStore(b, Options{CheckpointEvery: -1, CheckpointInterval: -1})
	ctx := context.Background()
	key, err := s.trail.sealer.Key(ctx, s.trail.kr.LookupHash("+6591234567"))
	if err != nil {
		b.Fatal(err)
	}
	data := `{"to":"+65****4567","category":"otp","sender":"PAYCO","template":"otp_login","provider":"sim"}`
	personal := []byte(`{"to":"+6591234567","body":"Your PayCo code is 482913. It expires in 5 minutes."}`)
	for done := 0; done < records; done += perTx {
		err := s.gc.submit(ctx, func() error {
			for i := range perTx {
				r := auditRow{at: int64(done+i+1) * 1000, kind: AuditSent, id: fmt.Sprintf("m-%09d", done+i), app: "payments", data: data}
				if i%10 == 0 {
					r.kind, r.key, r.personal = AuditAccepted, key, personal
				}
				if _, err := s.appendEvent(r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.WriteCheckpoint(ctx, fromNanos(records*1000)); err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("records=%d", records), func(b *testing.B) {
		for b.Loop() {
			rep, err := s.VerifyAudit(ctx, nil)
			if err != nil || !rep.OK() || rep.Records != records {
				b.Fatalf("VerifyAudit = %+v, %v", rep, err)
			}
		}
		b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}
