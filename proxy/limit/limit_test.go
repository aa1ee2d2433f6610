package limit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func newLimiter(t testing.TB, size int) *Limiter {
	t.Helper()
	l, err := New(size)
	if err != nil {
		t.Fatalf("New(%d): %v", size, err)
	}
	return l
}

func TestNewRejectsBadSize(t *testing.T) {
	for _, size := range []int{0, -1} {
		_, err := New(size)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalidSize {
			t.Errorf("New(%d) = %v, want code %s", size, err, CodeInvalidSize)
		}
	}
}

func TestLimitValidate(t *testing.T) {
	tests := []struct {
		name string
		lim  Limit
		ok   bool
	}{
		{"one a minute", Limit{Key: "k", Rate: 1, Period: time.Minute}, true},
		{"burst zero means rate", Limit{Key: "k", Rate: 3, Period: 24 * time.Hour}, true},
		{"zero rate", Limit{Key: "k", Rate: 0, Period: time.Minute}, false},
		{"negative rate", Limit{Key: "k", Rate: -1, Period: time.Minute}, false},
		{"zero period", Limit{Key: "k", Rate: 1}, false},
		{"negative period", Limit{Key: "k", Rate: 1, Period: -time.Second}, false},
		{"negative burst", Limit{Key: "k", Rate: 1, Period: time.Second, Burst: -1}, false},
		{"sub-nanosecond interval", Limit{Key: "k", Rate: 2, Period: time.Nanosecond}, false},
		{"overflowing burst", Limit{Key: "k", Rate: 1, Period: 24 * time.Hour, Burst: 1 << 40}, false},
		{"gcra rate above window max", Limit{Key: "k", Rate: 100, Period: time.Minute}, true},
		{"window three a day", Limit{Key: "k", Rate: 3, Period: 24 * time.Hour, Window: true}, true},
		{"window max rate", Limit{Key: "k", Rate: MaxWindowRate, Period: time.Minute, Window: true}, true},
		{"window rate above max", Limit{Key: "k", Rate: MaxWindowRate + 1, Period: time.Minute, Window: true}, false},
		{"window burst set", Limit{Key: "k", Rate: 3, Period: time.Minute, Burst: 3, Window: true}, false},
		{"window negative burst", Limit{Key: "k", Rate: 3, Period: time.Minute, Burst: -1, Window: true}, false},
		{"window zero rate", Limit{Key: "k", Period: time.Minute, Window: true}, false},
		{"window zero period", Limit{Key: "k", Rate: 1, Window: true}, false},
		{"window sub-nanosecond", Limit{Key: "k", Rate: 2, Period: time.Nanosecond, Window: true}, false},
		{"window period too long", Limit{Key: "k", Rate: 1, Period: maxWindowPeriod + 1, Window: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.lim.Validate()
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidLimit || e.Message == "" {
				t.Fatalf("Validate() = %v, want code %s", err, CodeInvalidLimit)
			}
			// A limit that cannot be enforced refuses: a broken policy fails closed.
			l := newLimiter(t, 100)
			if _, d := l.Reserve(t0, []Limit{tt.lim}); d == nil || d.Code() != CodeInvalidLimit {
				t.Fatalf("Reserve = %v, want %s", d, CodeInvalidLimit)
			}
		})
	}
}

// step is one Reserve call at t0+at, expected to be allowed or denied with retry.
type step struct {
	at    time.Duration
	allow bool
	retry time.Duration
}

func TestReserveGCRA(t *testing.T) {
	tests := []struct {
		name  string
		lim   Limit
		steps []step
	}{
		{
			name: "one per 60s",
			lim:  Limit{Rate: 1, Period: 60 * time.Second, Burst: 1},
			steps: []step{
				{0, true, 0},
				{0, false, 60 * time.Second},
				{59 * time.Second, false, time.Second},
				{60 * time.Second, true, 0},
				{61 * time.Second, false, 59 * time.Second},
				{10 * time.Minute, true, 0},
			},
		},
		{
			name: "burst 3 per 24h",
			lim:  Limit{Rate: 3, Period: 24 * time.Hour, Burst: 3},
			steps: []step{
				{0, true, 0},
				{time.Minute, true, 0},
				{2 * time.Minute, true, 0},
				{3 * time.Minute, false, 8*time.Hour - 3*time.Minute},
				{8 * time.Hour, true, 0}, // one cell drained
				{8*time.Hour + time.Second, false, 8*time.Hour - time.Second},
				{48 * time.Hour, true, 0}, // quiet for a day: full burst again
				{48 * time.Hour, true, 0},
				{48 * time.Hour, true, 0},
				{48 * time.Hour, false, 8 * time.Hour},
			},
		},
		{
			name: "burst 0 means rate",
			lim:  Limit{Rate: 5, Period: time.Second},
			steps: []step{
				{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0},
				{0, false, 200 * time.Millisecond},
				{200 * time.Millisecond, true, 0},
			},
		},
		{
			name: "burst 1 spaces events evenly",
			lim:  Limit{Rate: 10, Period: time.Second, Burst: 1},
			steps: []step{
				{0, true, 0},
				{50 * time.Millisecond, false, 50 * time.Millisecond},
				{100 * time.Millisecond, true, 0},
				{200 * time.Millisecond, true, 0},
			},
		},
		{
			name: "burst above rate",
			lim:  Limit{Rate: 1, Period: time.Hour, Burst: 2},
			steps: []step{
				{0, true, 0}, {0, true, 0},
				{0, false, time.Hour},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(t, 100)
			tt.lim.Key = "otp:device:abc"
			for i, s := range tt.steps {
				_, d := l.Reserve(t0.Add(s.at), []Limit{tt.lim})
				if s.allow {
					if d != nil {
						t.Fatalf("step %d at +%s: denied (%v), want allowed", i, s.at, d)
					}
					continue
				}
				if d == nil {
					t.Fatalf("step %d at +%s: allowed, want denied", i, s.at)
				}
				if d.Index != 0 || d.RetryAfter != s.retry || d.Code() != CodeRateLimited {
					t.Fatalf("step %d at +%s: got %+v code %s, want index 0 retry %s", i, s.at, d, d.Code(), s.retry)
				}
			}
		})
	}
}

func TestReserveKeysAreIndependent(t *testing.T) {
	l := newLimiter(t, 100)
	lim := func(k string) []Limit { return []Limit{{Key: k, Rate: 1, Period: time.Minute}} }
	if _, d := l.Reserve(t0, lim("a")); d != nil {
		t.Fatal(d)
	}
	if _, d := l.Reserve(t0, lim("b")); d != nil {
		t.Fatalf("key b denied by key a's use: %v", d)
	}
	if _, d := l.Reserve(t0, lim("a")); d == nil {
		t.Fatal("key a allowed twice")
	}
}

func TestReserveAllOrNone(t *testing.T) {
	l := newLimiter(t, 100)
	device := Limit{Key: "device", Rate: 2, Period: time.Hour}
	number := Limit{Key: "number", Rate: 1, Period: time.Hour}
	if _, d := l.Reserve(t0, []Limit{device, number}); d != nil {
		t.Fatalf("first message denied: %v", d)
	}
	_, d := l.Reserve(t0, []Limit{device, number})
	if d == nil || d.Index != 1 {
		t.Fatalf("second message: got %v, want denied by limit 1", d)
	}
	// The refused message must not have used the device's second cell.
	if _, d := l.Reserve(t0, []Limit{device}); d != nil {
		t.Fatalf("device cell was consumed by a refused message: %v", d)
	}
	if _, d := l.Reserve(t0, []Limit{device}); d == nil {
		t.Fatal("device allowed a third event in its burst of 2")
	}
}

func TestReserveInvalidLimitFailsClosed(t *testing.T) {
	l := newLimiter(t, 100)
	good := Limit{Key: "good", Rate: 1, Period: time.Hour}
	_, d := l.Reserve(t0, []Limit{good, {Key: "bad", Rate: 0, Period: time.Hour}})
	if d == nil || d.Index != 1 || d.Code() != CodeInvalidLimit || d.RetryAfter != 0 {
		t.Fatalf("got %+v, want invalid_limit at index 1", d)
	}
	if !strings.Contains(d.Error(), CodeInvalidLimit) {
		t.Errorf("Error() = %q, want it to carry the code", d.Error())
	}
	if _, d := l.Reserve(t0, []Limit{good}); d != nil {
		t.Fatalf("good limit consumed by a refused reservation: %v", d)
	}
}

func TestReserveSameKeyTwice(t *testing.T) {
	l := newLimiter(t, 100)
	twice := []Limit{{Key: "k", Rate: 2, Period: time.Hour}, {Key: "k", Rate: 2, Period: time.Hour}}
	if _, d := l.Reserve(t0, twice); d != nil {
		t.Fatalf("two cells of a burst of 2: %v", d)
	}
	if _, d := l.Reserve(t0, twice[:1]); d == nil {
		t.Fatal("both cells should be used")
	}

	l = newLimiter(t, 100)
	one := Limit{Key: "k", Rate: 1, Period: time.Hour}
	if _, d := l.Reserve(t0, []Limit{one, one}); d == nil || d.Index != 1 {
		t.Fatalf("got %v, want the second naming of the key denied", d)
	}
	if _, d := l.Reserve(t0, []Limit{one}); d != nil {
		t.Fatalf("refused reservation consumed the key: %v", d)
	}
}

func TestReservationCancel(t *testing.T) {
	oneAMinute := func(k string) Limit { return Limit{Key: k, Rate: 1, Period: time.Minute} }

	t.Run("gives cells back", func(t *testing.T) {
		l := newLimiter(t, 100)
		lims := []Limit{oneAMinute("a"), oneAMinute("b"), oneAMinute("c"), oneAMinute("d"), oneAMinute("e")}
		r, d := l.Reserve(t0, lims)
		if d != nil {
			t.Fatal(d)
		}
		r.Cancel()
		if _, d := l.Reserve(t0.Add(time.Second), lims); d != nil {
			t.Fatalf("after Cancel: %v", d)
		}
	})
	t.Run("idempotent", func(t *testing.T) {
		l := newLimiter(t, 100)
		lim := []Limit{{Key: "k", Rate: 3, Period: time.Hour}}
		r1, _ := l.Reserve(t0, lim)
		r1.Cancel()
		r1.Cancel()
		for i := range 3 {
			if _, d := l.Reserve(t0, lim); d != nil {
				t.Fatalf("reserve %d: %v", i, d)
			}
		}
		if _, d := l.Reserve(t0, lim); d == nil {
			t.Fatal("double Cancel gave back more than one cell")
		}
	})
	t.Run("newest first undoes both", func(t *testing.T) {
		l := newLimiter(t, 100)
		lim := []Limit{{Key: "k", Rate: 2, Period: time.Hour}}
		r1, _ := l.Reserve(t0, lim)
		r2, _ := l.Reserve(t0, lim)
		r2.Cancel()
		r1.Cancel()
		for i := range 2 {
			if _, d := l.Reserve(t0, lim); d != nil {
				t.Fatalf("reserve %d: %v", i, d)
			}
		}
	})
	t.Run("moved on by another reservation keeps the cell", func(t *testing.T) {
		l := newLimiter(t, 100)
		lim := []Limit{{Key: "k", Rate: 3, Period: time.Hour}}
		r1, _ := l.Reserve(t0, lim)
		if _, d := l.Reserve(t0, lim); d != nil {
			t.Fatal(d)
		}
		r1.Cancel() // r2 moved past r1: no cell back
		if _, d := l.Reserve(t0, lim); d != nil {
			t.Fatal(d)
		}
		if _, d := l.Reserve(t0, lim); d == nil {
			t.Fatal("Cancel of a superseded reservation gave a cell back")
		}
	})
	t.Run("same key twice", func(t *testing.T) {
		l := newLimiter(t, 100)
		k := Limit{Key: "k", Rate: 2, Period: time.Hour}
		r, d := l.Reserve(t0, []Limit{k, k})
		if d != nil {
			t.Fatal(d)
		}
		r.Cancel()
		if _, d := l.Reserve(t0, []Limit{k, k}); d != nil {
			t.Fatalf("both cells should be back: %v", d)
		}
	})
	t.Run("zero reservation", func(t *testing.T) {
		var r Reservation
		r.Cancel()
		var p *Reservation
		p.Cancel()
	})
}

func TestEvictionBound(t *testing.T) {
	const size = 1000
	l := newLimiter(t, size)
	lim := Limit{Rate: 1, Period: time.Hour}
	lim.Key = "hot"
	if _, d := l.Reserve(t0, []Limit{lim}); d != nil {
		t.Fatal(d)
	}
	for i := range 10 * size {
		lim.Key = "cold:" + strconv.Itoa(i)
		if _, d := l.Reserve(t0, []Limit{lim}); d != nil {
			t.Fatalf("fresh key %d denied: %v", i, d)
		}
		if i%(size/4) == 0 { // keep "hot" recently used
			lim.Key = "hot"
			if _, d := l.Reserve(t0, []Limit{lim}); d == nil {
				t.Fatalf("hot key forgotten after %d cold keys", i)
			}
		}
	}
	if n := l.Len(); n > size || n < size*9/10 {
		t.Fatalf("Len() = %d, want at most %d and close to it", n, size)
	}
	// The oldest cold key was forgotten, so it starts again with a full burst.
	lim.Key = "cold:0"
	if _, d := l.Reserve(t0, []Limit{lim}); d != nil {
		t.Fatalf("evicted key still limited: %v", d)
	}
}

func TestConcurrentReserveExact(t *testing.T) {
	l := newLimiter(t, 10_000)
	const burst = 100
	shared := Limit{Key: "shared", Rate: burst, Period: time.Hour}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				// Each goroutine names the shared key with its own keys, in varying order, so
				// shard locks are taken in many combinations.
				own := Limit{Key: fmt.Sprintf("g%d:%d", g, i%7), Rate: 1000, Period: time.Hour}
				lims := []Limit{shared, own}
				if i%2 == 1 {
					lims = []Limit{own, shared}
				}
				r, d := l.Reserve(t0, lims)
				if d != nil {
					continue
				}
				if i%5 == 0 {
					r.Cancel() // may or may not give back: both are correct
				}
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got < burst {
		t.Fatalf("allowed %d events, want at least the burst of %d", got, burst)
	}
	// However Cancel interleaved, the shared key can never be above its burst now.
	extra := 0
	for {
		if _, d := l.Reserve(t0, []Limit{shared}); d != nil {
			break
		}
		extra++
	}
	if int(allowed.Load())-extra > 8*500 || extra > burst {
		t.Fatalf("extra %d after %d allowed", extra, allowed.Load())
	}
}

// place returns the shard and group of key in l.
func place(l *Limiter, key string) (shard, group uint32) {
	h := maphash.String(l.seed, key)
	return uint32(h & l.mask), uint32((h >> 32) * l.groups >> 32)
}

// remembers reports whether l holds key, without making it recently used.
func remembers(l *Limiter, key string) bool {
	s, g := place(l, key)
	v, _ := l.shards[s].lru.Peek(g)
	return find(v, maphash.String(l.seed, key)) >= 0
}

// checkCounts fails unless every shard's count is the number of keys its groups hold, within its size.
func checkCounts(t *testing.T, l *Limiter) {
	t.Helper()
	for i := range l.shards {
		s := &l.shards[i]
		held := 0
		for _, v := range s.lru.Values() {
			held += len(v)
		}
		if held != s.n || s.n > s.size {
			t.Fatalf("shard %d: holds %d keys, counts %d, size %d", i, held, s.n, s.size)
		}
	}
}

// TestEvictionIsNearlyLRU streams three times the limiter's size of new keys through it: the newest
// quarter must all be remembered and the next quarter nearly all, as least-recently-used eviction
// would, and hardly any of the oldest third. Evicting whole groups of keys instead of single keys
// fails the first two checks.
func TestEvictionIsNearlyLRU(t *testing.T) {
	const size = 1 << 16
	l := newLimiter(t, size)
	lims := []Limit{{Rate: 1, Period: time.Hour}}
	const total = 3 * size
	key := func(i int) string { return "otp:to:+65" + strconv.Itoa(80_000_000+i) }
	for i := range total {
		lims[0].Key = key(i)
		if _, d := l.Reserve(t0, lims); d != nil {
			t.Fatalf("fresh key %d denied: %v", i, d)
		}
	}
	share := func(lo, hi int) float64 { // of the keys lo to hi-1 keys back from the newest
		in := 0
		for age := lo; age < hi; age++ {
			if remembers(l, key(total-1-age)) {
				in++
			}
		}
		return float64(in) / float64(hi-lo)
	}
	if got := share(0, size/4); got < 0.999 {
		t.Errorf("newest %d keys: %.4f remembered, want all", size/4, got)
	}
	if got := share(size/4, size/2); got < 0.99 {
		t.Errorf("keys %d to %d back: %.4f remembered, want nearly all", size/4, size/2, got)
	}
	if got := share(2*size, 3*size); got > 0.01 {
		t.Errorf("oldest %d keys: %.4f remembered, want hardly any", size, got)
	}
	if n := l.Len(); n > size || n < size*99/100 {
		t.Errorf("Len() = %d, want at most %d and within 1%% of it", n, size)
	}
	checkCounts(t, l)
}

// TestMemoryPerKey bounds what a key costs once the limiter holds many: about 23 bytes now, 118
// when each key had an LRU entry of its own.
func TestMemoryPerKey(t *testing.T) {
	const n = 200_000
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	l := newLimiter(t, n)
	lims := []Limit{{Rate: 3, Period: 24 * time.Hour}}
	for i := range n {
		lims[0].Key = "otp:device:" + strconv.Itoa(i)
		if _, d := l.Reserve(t0, lims); d != nil {
			t.Fatal(d)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perKey := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	t.Logf("%d keys: %.1f bytes a key", l.Len(), perKey)
	if perKey > 32 {
		t.Errorf("%.1f bytes a key, want at most 32", perKey)
	}
	runtime.KeepAlive(l)
}

// keysIn returns n distinct keys that l places in shard 0, group g.
func keysIn(l *Limiter, g uint32, n int, prefix string) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		k := prefix + strconv.Itoa(i)
		if s, kg := place(l, k); s == 0 && kg == g {
			out = append(out, k)
		}
	}
	return out
}

// TestFullShardMakesRoom drives a one-shard limiter in 4 groups through each way a new key finds room
// once the shard is full.
func TestFullShardMakesRoom(t *testing.T) {
	const size = 4*groupKeys - 1 // one shard (size/2 < 64) of 4 groups
	hour := func(k string) Limit { return Limit{Key: k, Rate: 1, Period: time.Hour} }
	reserve := func(t *testing.T, l *Limiter, lims ...Limit) {
		t.Helper()
		if _, d := l.Reserve(t0, lims); d != nil {
			t.Fatalf("Reserve(%v): %v", lims, d)
		}
	}
	// setup returns a limiter whose group 0 holds the n0 keys it returns, each with one of its two
	// cells used; fill then fills groups 1 to 3 until the shard is full.
	setup := func(t *testing.T, n0 int) (*Limiter, []string) {
		t.Helper()
		l := newLimiter(t, size)
		if len(l.shards) != 1 || l.groups != 4 {
			t.Fatalf("%d shards of %d groups, want 1 of 4", len(l.shards), l.groups)
		}
		in0 := keysIn(l, 0, n0, "old:")
		for _, k := range in0 {
			reserve(t, l, Limit{Key: k, Rate: 2, Period: time.Hour})
		}
		return l, in0
	}
	fill := func(t *testing.T, l *Limiter) {
		t.Helper()
		for g := uint32(1); l.Len() < size; g = g%3 + 1 {
			reserve(t, l, hour(keysIn(l, g, 1, fmt.Sprintf("fill:%d:", l.Len()))[0]))
		}
		checkCounts(t, l)
	}

	t.Run("into an empty group: the oldest group goes", func(t *testing.T) {
		l, _ := setup(t, 0)
		fill(t, l)
		k := keysIn(l, 0, 1, "new:")[0]
		reserve(t, l, hour(k))
		checkCounts(t, l)
		if !remembers(l, k) || l.Len() < size-2*groupKeys {
			t.Fatalf("remembers the new key: %v, Len() = %d", remembers(l, k), l.Len())
		}
	})
	t.Run("into its group: the group's least recently used key goes", func(t *testing.T) {
		l, old := setup(t, 3)
		fill(t, l)
		// Use old[0] again: old[1] becomes the least recently used of group 0.
		reserve(t, l, Limit{Key: old[0], Rate: 2, Period: time.Hour})
		k := keysIn(l, 0, 1, "new:")[0]
		reserve(t, l, hour(k))
		checkCounts(t, l)
		got := []bool{remembers(l, k), remembers(l, old[0]), remembers(l, old[1]), remembers(l, old[2])}
		if l.Len() != size || !slices.Equal(got, []bool{true, true, false, true}) {
			t.Fatalf("Len() = %d, remembers new, old[0..2] = %v; want %d, [true true false true]", l.Len(), got, size)
		}
	})
	t.Run("never in place of a key of the same reservation", func(t *testing.T) {
		l, old := setup(t, 1)
		fill(t, l)
		a := Limit{Key: old[0], Rate: 2, Period: time.Hour} // group 0 holds only a, one cell used
		b := hour(keysIn(l, 0, 1, "new:")[0])
		reserve(t, l, a, b)
		checkCounts(t, l)
		if _, d := l.Reserve(t0, []Limit{a}); d == nil {
			t.Fatal("a's second cell was lost: its key was pushed out by b, of the same reservation")
		}
		if _, d := l.Reserve(t0, []Limit{b}); d == nil {
			t.Fatal("b was not kept")
		}
	})
}

// BenchmarkMillionKeysMemory measures what the limiter holding 1,000,000 keys costs: run it with
// `go test -run x -bench MillionKeys -benchtime 1x ./proxy/limit`. The proxy's target is under 200 MB of
// RSS in all with a million keys.
func BenchmarkMillionKeysMemory(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		l := newLimiter(b, n)
		lims := []Limit{{Rate: 5, Period: 24 * time.Hour}}
		for i := range n {
			lims[0].Key = "otp:device:" + strconv.Itoa(i)
			if _, d := l.Reserve(t0, lims); d != nil {
				b.Fatal(d)
			}
		}
		runtime.GC()
		debug.FreeOSMemory()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if got := l.Len(); got < n*99/100 {
			b.Fatalf("Len() = %d, want about %d", got, n)
		}
		heap := after.HeapAlloc - before.HeapAlloc
		b.ReportMetric(float64(heap)/1e6, "heap-MB")
		b.ReportMetric(float64(heap)/n, "B/key")
		b.Logf("1M keys: live heap %.1f MB, heap sys %.1f MB, process RSS %s, peak RSS %s",
			float64(heap)/1e6, float64(after.HeapSys)/1e6, procStatus("VmRSS:"), procStatus("VmHWM:"))
		runtime.KeepAlive(l)
	}
}

// procStatus returns a field of /proc/self/status, such as "VmRSS:", or "n/a".
func procStatus(field string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			return strings.TrimSpace(v)
		}
	}
	return "n/a"
}

func BenchmarkReserve(b *testing.B) {
	for _, nlim := range []int{1, 3} {
		b.Run(fmt.Sprintf("limits=%d", nlim), func(b *testing.B) {
			l := newLimiter(b, 1<<20)
			const keys = 1 << 16
			names := make([][]Limit, keys)
			for i := range names {
				for j := range nlim {
					names[i] = append(names[i], Limit{Key: fmt.Sprintf("k%d:%d", j, i), Rate: 1000, Period: time.Second})
				}
			}
			now := t0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if i%keys == 0 {
					now = now.Add(time.Hour)
				}
				if _, d := l.Reserve(now, names[i%keys]); d != nil {
					b.Fatal(d)
				}
			}
		})
		b.Run(fmt.Sprintf("limits=%d/parallel", nlim), func(b *testing.B) {
			l := newLimiter(b, 1<<20)
			const keys = 1 << 16
			names := make([][]Limit, keys)
			for i := range names {
				for j := range nlim {
					names[i] = append(names[i], Limit{Key: fmt.Sprintf("k%d:%d", j, i), Rate: 1, Period: time.Second})
				}
			}
			var seq atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					l.Reserve(t0, names[i%keys]) // most are denied after the first round: both paths count
				}
			})
		})
	}
}

// TestFullLimiterForgetsKeysAtRestFirst: once the limiter is full, new keys take the places of
// keys whose limits have run down before those of keys still counting: a burst of short-lived
// keys must not hand a device that used its three codes of the day a fourth.
func TestFullLimiterForgetsKeysAtRestFirst(t *testing.T) {
	l, err := New(1024)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_767_225_600, 0)
	device := []Limit{{Key: "otp:device:d1", Rate: 3, Period: 24 * time.Hour}}
	for i := range 3 {
		if _, d := l.Reserve(t0, device); d != nil {
			t.Fatalf("code %d: %v", i+1, d)
		}
	}
	// One and a half times the limiter of short-lived keys, each at rest before the next comes.
	for i := range 1536 {
		at := t0.Add(time.Duration(i) * 2 * time.Second)
		if _, d := l.Reserve(at, []Limit{{Key: fmt.Sprintf("otp:to:+65%08d", i), Rate: 1, Period: time.Second}}); d != nil {
			t.Fatal(d)
		}
	}
	if _, d := l.Reserve(t0.Add(2*time.Hour), device); d == nil {
		t.Errorf("a fourth code within the day was allowed: the device's key was forgotten before keys at rest (Len %d)", l.Len())
	}
}
