package simulator

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// BenchmarkSimulatorSend measures the simulator in process, with and without its fsync'd ledger.
func BenchmarkSimulatorSend(b *testing.B) {
	for _, ledger := range []bool{false, true} {
		for _, size := range []int{1, 64} {
			b.Run(fmt.Sprintf("ledger=%v/batch=%d", ledger, size), func(b *testing.B) {
				s := New()
				config := `{}`
				if ledger {
					config = fmt.Sprintf(`{"state_dir":%q}`, b.TempDir())
				}
				if err := s.Configure([]byte(config)); err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				reqs := make([]provider.SendRequest, size)
				b.ReportAllocs()
				for n := 0; b.Loop(); n++ {
					for i := range reqs {
						reqs[i] = provider.SendRequest{MessageID: "m", IdempotencyKey: strconv.Itoa(n*size + i), To: "+6591000001", Body: "hello"}
					}
					if _, err := s.Send(context.Background(), reqs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
