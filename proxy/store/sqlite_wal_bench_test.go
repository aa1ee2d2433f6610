package store

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkProxyMix is BenchmarkLifecycle with the proxy's traffic as smsbench makes it: every
// message goes to a recipient never seen before (a new subject key, a sealed personal part and a
// to_hash of its own, so the random-key indexes take an entry each), without an idempotency key,
// from 16 callers, on a database already holding prefill messages. Besides the writer's time and
// the CPU per message (a RecipientFacts read and an Accept for each, as the proxy does) it reports
// the system calls per message (/proc/self/io, the checkpointer's
// included).
//
// The sub-benchmark "wal" runs the same mix with a reader holding a snapshot from the start, so
// that no checkpoint can restart the WAL, and reports the WAL frames (dirty pages) each commit
// wrote: the figure a schema or pragma change should lower. Its CPU figures are not comparable
// with the others, as the pinned WAL grows.
func BenchmarkProxyMix(b *testing.B) {
	for _, prefill := range []int{0, 50_000} {
		b.Run(fmt.Sprintf("prefill=%d", prefill), func(b *testing.B) { proxyMix(b, prefill, false) })
	}
	b.Run("wal/prefill=50000", func(b *testing.B) { proxyMix(b, 50_000, true) })
}

func proxyMixMessage(prefix string, i int) Accepted {
	m := benchMessage(fmt.Sprintf("%s-%09d", prefix, i))
	m.IdempotencyKey, m.ToHash = "", ""
	// Recipients in a scattered order, as random numbers are.
	m.To = fmt.Sprintf("+65%08d", (uint64(i)*2654435761+uint64(len(prefix))*97)%100_000_000)
	m.Personal = []byte(`{"to":"` + m.To + `","body":"Your PayCo code is 482913. It expires in 5 minutes. Never share it."}`)
	return m
}

func proxyMix(b *testing.B, prefill int, pin bool) {
	path := filepath.Join(b.TempDir(), "bench.db")
	s := openTest(b, path, Options{})
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if prefill > 0 {
		parallel(b, prefill, 64, func(i int) error {
			_, err := s.Accept(ctx, proxyMixMessage("pre", i))
			return err
		})
	}
	var pinTx *sql.Tx
	if pin {
		db, err := sql.Open("sqlite", path+"?_query_only=1")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		// Hold a snapshot taken right after a write, while the WAL has frames the checkpointer has
		// not copied yet: the snapshot then reads from the WAL, and no checkpoint can restart it.
		if _, err := s.Accept(ctx, proxyMixMessage("pin", 0)); err != nil {
			b.Fatal(err)
		}
		if pinTx, err = db.BeginTx(ctx, nil); err != nil {
			b.Fatal(err)
		}
		var n int
		if err := pinTx.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		defer pinTx.Rollback()
	}
	frames := func() int {
		f, _, err := s.checkpoint()
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	msgs := make([]Accepted, b.N)
	for i := range msgs {
		msgs[i] = proxyMixMessage("m", i)
	}
	accepted, wait := runLifecycle(b, s, 16)
	f0 := 0
	if pin {
		f0 = frames()
	}
	before := s.WriterStats()
	io0 := procIO(b)
	cpu0 := cpuTime()
	// The proxy reads the recipient's facts before deciding, on a read connection.
	facts := func(m Accepted) error {
		_, err := s.RecipientFacts(ctx, m.To)
		return err
	}
	d := acceptTimed(b, s, msgs, 16, facts, accepted, wait)
	cpu := cpuTime() - cpu0
	io := procIO(b)
	st := s.WriterStats()
	commits := float64(st.Commits - before.Commits)
	n := float64(b.N)
	b.ReportMetric(n/d.Seconds(), "msgs/s")
	b.ReportMetric(float64(st.Busy-before.Busy)/float64(time.Microsecond)/n, "writer-µs/msg")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/n, "cpu-µs/msg")
	b.ReportMetric(n/commits, "msgs/commit")
	b.ReportMetric(float64(io["syscr"]-io0["syscr"])/n, "reads/msg")
	b.ReportMetric(float64(io["syscw"]-io0["syscw"])/n, "writes/msg")
	if pin {
		f := frames()
		if f <= f0 {
			b.Fatalf("the WAL restarted (%d frames, %d before): frames per commit unknown", f, f0)
		}
		b.ReportMetric(float64(f-f0)/commits, "frames/commit")
	}
}

// procIO returns the process's I/O counters (syscr, syscw, rchar, wchar...).
func procIO(b *testing.B) map[string]int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io")
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		out[k], _ = strconv.ParseInt(v, 10, 64)
	}
	return out
}
