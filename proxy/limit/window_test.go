package limit

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReserveWindow(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name  string
		lim   Limit
		steps []step
	}{
		{"three a day", Limit{Key: "otp:device:d", Rate: 3, Period: day, Window: true}, []step{
			{0, true, 0},
			{time.Hour, true, 0},
			{2 * time.Hour, true, 0},
			{2 * time.Hour, false, day - 2*time.Hour},
			{day - 1, false, 1},                                   // the first event is still inside (now-Period, now]
			{day, true, 0},                                        // it has just left
			{day, false, time.Hour},                               // the second leaves at day+1h
			{day + time.Hour - 1, false, 1},                       //
			{day + time.Hour, true, 0},                            //
			{day + 2*time.Hour, true, 0},                          //
			{day + 2*time.Hour + 1, false, day - 2*time.Hour - 1}, // in (2h+1, day+2h+1]: day, day+1h, day+2h
			{2*day - 1, false, 1},                                 //
			{2 * day, true, 0},                                    //
			{5 * day, true, 0},                                    // a quiet spell gives back at most Rate
			{5 * day, true, 0},                                    //
			{5 * day, true, 0},                                    //
			{5*day + time.Second, false, day - time.Second},       //
		}},
		{"one a minute", Limit{Key: "k", Rate: 1, Period: time.Minute, Window: true}, []step{
			{0, true, 0},
			{0, false, time.Minute},
			{59 * time.Second, false, time.Second},
			{time.Minute - 1, false, 1},
			{time.Minute, true, 0},
			{2*time.Minute - 1, false, 1},
			{10 * time.Minute, true, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(t, 100)
			for i, s := range tt.steps {
				_, d := l.Reserve(t0.Add(s.at), []Limit{tt.lim})
				switch {
				case s.allow && d != nil:
					t.Fatalf("step %d at %s: denied %v, want allowed", i, s.at, d)
				case !s.allow && d == nil:
					t.Fatalf("step %d at %s: allowed, want retry after %s", i, s.at, s.retry)
				case !s.allow && (d.RetryAfter != s.retry || d.Index != 0 || d.Code() != CodeRateLimited):
					t.Fatalf("step %d at %s: %v, want retry after %s", i, s.at, d, s.retry)
				}
			}
			if n := l.Len(); n > tt.lim.Rate {
				t.Fatalf("Len() = %d, want at most the rate %d: slots at rest are reused", n, tt.lim.Rate)
			}
		})
	}
}

// TestWindowCapsEveryWindow checks, against a brute-force count, that 3 a day admits at most 3
// events in any day, whatever the pattern of attempts.
func TestWindowCapsEveryWindow(t *testing.T) {
	const day = 24 * time.Hour
	lim := []Limit{{Key: "k", Rate: 3, Period: day, Window: true}}
	l := newLimiter(t, 100)
	var allowed []time.Duration
	for i := range 2000 {
		at := time.Duration(i) * 97 * time.Minute / 3 // irregular, several tries a day
		_, d := l.Reserve(t0.Add(at), lim)
		in := 0
		for _, a := range allowed {
			if a > at-day {
				in++
			}
		}
		if want := in < 3; (d == nil) != want {
			t.Fatalf("at %s: %d events in the window, allowed = %v", at, in, d == nil)
		}
		if d == nil {
			allowed = append(allowed, at)
		} else if oldest := allowed[len(allowed)-3]; d.RetryAfter != oldest+day-at {
			t.Fatalf("at %s: retry after %s, want %s", at, d.RetryAfter, oldest+day-at)
		}
	}
}

func TestWindowMixedAllOrNone(t *testing.T) {
	l := newLimiter(t, 100)
	gcra := Limit{Key: "otp:to:+65", Rate: 1, Period: time.Hour}
	win := Limit{Key: "otp:device:d", Rate: 1, Period: time.Hour, Window: true}
	if _, d := l.Reserve(t0, []Limit{win}); d != nil {
		t.Fatal(d)
	}
	// The window denies, so the GCRA cell must not be used.
	if _, d := l.Reserve(t0.Add(time.Minute), []Limit{gcra, win}); d == nil || d.Index != 1 || d.RetryAfter != 59*time.Minute {
		t.Fatalf("got %v, want limit 1 denied, retry after 59m", d)
	}
	if _, d := l.Reserve(t0.Add(time.Minute), []Limit{gcra}); d != nil {
		t.Fatalf("the refused reservation used the GCRA limit: %v", d)
	}
	// The GCRA limit denies, so no window event is recorded.
	win.Key = "otp:device:e"
	if _, d := l.Reserve(t0.Add(2*time.Minute), []Limit{win, gcra}); d == nil || d.Index != 1 {
		t.Fatalf("got %v, want limit 1 denied", d)
	}
	if _, d := l.Reserve(t0.Add(2*time.Minute), []Limit{win}); d != nil {
		t.Fatalf("the refused reservation recorded a window event: %v", d)
	}
	// A GCRA and a Window limit with the same Key count apart.
	both := []Limit{{Key: "x", Rate: 1, Period: time.Hour}, {Key: "x", Rate: 1, Period: time.Hour, Window: true}}
	if _, d := l.Reserve(t0, both); d != nil {
		t.Fatalf("GCRA and Window limits of one key: %v", d)
	}
}

func TestWindowSameKeyTwice(t *testing.T) {
	win := Limit{Key: "k", Rate: 2, Period: time.Hour, Window: true}
	l := newLimiter(t, 100)
	if _, d := l.Reserve(t0, []Limit{win, win}); d != nil {
		t.Fatalf("two events of a window of 2: %v", d)
	}
	if _, d := l.Reserve(t0.Add(time.Minute), []Limit{win}); d == nil || d.RetryAfter != 59*time.Minute {
		t.Fatalf("got %v, want both events counted", d)
	}

	l = newLimiter(t, 100)
	if _, d := l.Reserve(t0, []Limit{win}); d != nil {
		t.Fatal(d)
	}
	if _, d := l.Reserve(t0.Add(time.Minute), []Limit{win, win}); d == nil || d.Index != 1 || d.RetryAfter != 59*time.Minute {
		t.Fatalf("got %v, want the second naming denied, retry after 59m", d)
	}
	if _, d := l.Reserve(t0.Add(time.Minute), []Limit{win}); d != nil {
		t.Fatalf("refused reservation recorded an event: %v", d)
	}
	if _, d := l.Reserve(t0.Add(time.Minute), []Limit{win}); d == nil {
		t.Fatal("a third event in the hour was allowed")
	}
}

func TestWindowCancel(t *testing.T) {
	win := Limit{Key: "k", Rate: 2, Period: time.Hour, Window: true}
	t.Run("gives the event back", func(t *testing.T) {
		l := newLimiter(t, 100)
		r, d := l.Reserve(t0, []Limit{win, {Key: "g", Rate: 1, Period: time.Hour}})
		if d != nil {
			t.Fatal(d)
		}
		r.Cancel()
		r.Cancel() // idempotent
		for i := range 2 {
			if _, d := l.Reserve(t0.Add(time.Second), []Limit{win}); d != nil {
				t.Fatalf("event %d after Cancel: %v", i, d)
			}
		}
		if _, d := l.Reserve(t0.Add(time.Second), []Limit{win}); d == nil {
			t.Fatal("Cancel gave back more than one event")
		}
		if _, d := l.Reserve(t0.Add(time.Second), []Limit{{Key: "g", Rate: 1, Period: time.Hour}}); d != nil {
			t.Fatalf("GCRA cell not given back: %v", d)
		}
	})
	t.Run("any order", func(t *testing.T) {
		l := newLimiter(t, 100)
		r1, _ := l.Reserve(t0, []Limit{win})
		r2, d := l.Reserve(t0.Add(time.Minute), []Limit{win})
		if d != nil {
			t.Fatal(d)
		}
		r1.Cancel() // oldest first: still exact, events are independent
		if _, d := l.Reserve(t0.Add(2*time.Minute), []Limit{win}); d != nil {
			t.Fatal(d)
		}
		_, d = l.Reserve(t0.Add(2*time.Minute), []Limit{win})
		if d == nil || d.RetryAfter != 59*time.Minute {
			t.Fatalf("got %v, want retry after 59m (r2's event remains)", d)
		}
		r2.Cancel()
		if _, d := l.Reserve(t0.Add(2*time.Minute), []Limit{win}); d != nil {
			t.Fatalf("after cancelling r2: %v", d)
		}
	})
	t.Run("slot reused keeps its earlier value", func(t *testing.T) {
		l := newLimiter(t, 100)
		one := Limit{Key: "k1", Rate: 1, Period: time.Hour, Window: true}
		if _, d := l.Reserve(t0, []Limit{one}); d != nil {
			t.Fatal(d)
		}
		r, d := l.Reserve(t0.Add(2*time.Hour), []Limit{one}) // reuses the slot at rest
		if d != nil {
			t.Fatal(d)
		}
		r.Cancel()
		if _, d := l.Reserve(t0.Add(2*time.Hour), []Limit{one}); d != nil {
			t.Fatalf("after Cancel: %v", d)
		}
	})
	t.Run("same key twice", func(t *testing.T) {
		l := newLimiter(t, 100)
		r, d := l.Reserve(t0, []Limit{win, win})
		if d != nil {
			t.Fatal(d)
		}
		r.Cancel()
		if _, d := l.Reserve(t0, []Limit{win, win}); d != nil {
			t.Fatalf("both events should be back: %v", d)
		}
	})
}

// TestWindowFullLimiterKeepsCountingSlots: in a full limiter, new keys take slots at rest before a
// device's slots still in its window.
func TestWindowFullLimiterKeepsCountingSlots(t *testing.T) {
	l := newLimiter(t, 1024)
	device := []Limit{{Key: "otp:device:d1", Rate: 3, Period: 24 * time.Hour, Window: true}}
	for i := range 3 {
		if _, d := l.Reserve(t0, device); d != nil {
			t.Fatalf("code %d: %v", i+1, d)
		}
	}
	for i := range 1536 {
		at := t0.Add(time.Duration(i) * 2 * time.Second)
		if _, d := l.Reserve(at, []Limit{{Key: fmt.Sprintf("otp:to:+65%08d", i), Rate: 1, Period: time.Second, Window: true}}); d != nil {
			t.Fatal(d)
		}
	}
	if _, d := l.Reserve(t0.Add(2*time.Hour), device); d == nil {
		t.Errorf("a fourth code within the day was allowed (Len %d)", l.Len())
	}
	checkCounts(t, l)
}

func TestWindowConcurrentNeverAboveRate(t *testing.T) {
	l := newLimiter(t, 10_000)
	const rate = MaxWindowRate
	shared := Limit{Key: "shared", Rate: rate, Period: time.Hour, Window: true}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				own := Limit{Key: fmt.Sprintf("g%d:%d", g, i%7), Rate: 1000, Period: time.Hour}
				lims := []Limit{shared, own}
				if i%2 == 1 {
					lims = []Limit{own, shared, shared}
				}
				if _, d := l.Reserve(t0.Add(time.Duration(i)*time.Millisecond), lims); d != nil {
					continue
				}
				allowed.Add(int64(len(lims) - 1))
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != rate && got != rate-1 {
		// A call naming the key twice needs two slots; with one left, it is refused.
		t.Fatalf("recorded %d events on the shared key within its window, want %d (or %d)", got, rate, rate-1)
	}
	checkCounts(t, l)
}

// BenchmarkMillionWindowKeysMemory measures 1,000,000 Window keys of 3 a day, each with one event
// and each with its full 3: `go test -run x -bench MillionWindowKeys -benchtime 1x ./proxy/limit`.
func BenchmarkMillionWindowKeysMemory(b *testing.B) {
	const n = 1_000_000
	for _, events := range []int{1, 3} {
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) {
			for b.Loop() {
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)

				l := newLimiter(b, n*events)
				lims := []Limit{{Rate: 3, Period: 24 * time.Hour, Window: true}}
				for e := range events {
					for i := range n {
						lims[0].Key = "otp:device:" + strconv.Itoa(i)
						if _, d := l.Reserve(t0.Add(time.Duration(e)*time.Minute), lims); d != nil {
							b.Fatal(d)
						}
					}
				}
				runtime.GC()
				debug.FreeOSMemory()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				if got := l.Len(); got < n*events*99/100 {
					b.Fatalf("Len() = %d, want about %d", got, n*events)
				}
				heap := after.HeapAlloc - before.HeapAlloc
				b.ReportMetric(float64(heap)/1e6, "heap-MB")
				b.ReportMetric(float64(heap)/n, "B/key")
				runtime.KeepAlive(l)
			}
		})
	}
}

func BenchmarkReserveWindow(b *testing.B) {
	l := newLimiter(b, 1<<20)
	const keys = 1 << 16
	names := make([][]Limit, keys)
	for i := range names {
		names[i] = []Limit{{Key: fmt.Sprintf("w:%d", i), Rate: 3, Period: time.Second, Window: true}}
	}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%keys == 0 {
			now = now.Add(400 * time.Millisecond) // from the fourth round on, each key reuses a slot at rest
		}
		if _, d := l.Reserve(now, names[i%keys]); d != nil {
			b.Fatal(d)
		}
	}
}
