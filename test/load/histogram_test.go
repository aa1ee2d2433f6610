package load

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	// relErr is the worst-case relative error of the bucket layout.
	const relErr = 1.0 / half
	tests := []struct {
		name   string
		values func() []time.Duration
		q      []float64
		want   []time.Duration
		exact  bool
	}{
		{
			name:   "1..100 are exact",
			values: func() []time.Duration { return seq(1, 100, 1) },
			q:      []float64{0, 1, 50, 90, 99, 99.9, 100},
			want:   []time.Duration{1, 1, 50, 90, 99, 100, 100},
			exact:  true,
		},
		{
			name:   "single value",
			values: func() []time.Duration { return []time.Duration{1234567} },
			q:      []float64{0, 50, 99.9, 100},
			want:   []time.Duration{1234567, 1234567, 1234567, 1234567},
			exact:  true,
		},
		{
			name:   "microseconds to milliseconds within 0.8%",
			values: func() []time.Duration { return seq(time.Microsecond, 10*time.Millisecond, time.Microsecond) },
			q:      []float64{50, 90, 99, 99.9, 100},
			want:   []time.Duration{5 * time.Millisecond, 9 * time.Millisecond, 9900 * time.Microsecond, 9990 * time.Microsecond, 10 * time.Millisecond},
		},
		{
			name: "one stall among fast requests shows at the tail only",
			values: func() []time.Duration {
				v := make([]time.Duration, 0, 1000)
				for range 999 {
					v = append(v, 200*time.Microsecond)
				}
				return append(v, 2*time.Second)
			},
			q:    []float64{50, 99, 99.9, 99.95, 100},
			want: []time.Duration{200 * time.Microsecond, 200 * time.Microsecond, 200 * time.Microsecond, 2 * time.Second, 2 * time.Second},
		},
		{
			name:   "negative counts as zero",
			values: func() []time.Duration { return []time.Duration{-5, 0, 10} },
			q:      []float64{0, 50, 100},
			want:   []time.Duration{0, 0, 10},
			exact:  true,
		},
		{
			name:   "beyond the trackable range max stays exact",
			values: func() []time.Duration { return []time.Duration{time.Millisecond, 5 * time.Hour} },
			q:      []float64{50, 100},
			want:   []time.Duration{time.Millisecond, 5 * time.Hour},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHistogram()
			vals := tt.values()
			// Order must not matter.
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
			for _, v := range vals {
				h.Record(v)
			}
			for i, q := range tt.q {
				got, want := h.Percentile(q), tt.want[i]
				if tt.exact {
					if got != want {
						t.Errorf("p%v = %v, want %v", q, got, want)
					}
					continue
				}
				if got < want || float64(got-want) > relErr*float64(want) {
					t.Errorf("p%v = %v, want %v (+%.2f%%)", q, got, want, relErr*100)
				}
			}
		})
	}
}

func seq(from, to, step time.Duration) []time.Duration {
	var v []time.Duration
	for d := from; d <= to; d += step {
		v = append(v, d)
	}
	return v
}

func TestHistogramMergeEqualsRecordingAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all, a, b := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 20000 {
		d := time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	a.Merge(nil)
	a.Merge(NewHistogram())
	if a.Count() != all.Count() || a.Min() != all.Min() || a.Max() != all.Max() {
		t.Fatalf("merged count/min/max = %d/%v/%v, want %d/%v/%v", a.Count(), a.Min(), a.Max(), all.Count(), all.Min(), all.Max())
	}
	for _, q := range []float64{10, 50, 90, 99, 99.9, 99.99} {
		if a.Percentile(q) != all.Percentile(q) {
			t.Errorf("p%v merged %v, direct %v", q, a.Percentile(q), all.Percentile(q))
		}
	}
}

func TestHistogramEmpty(t *testing.T) {
	h := NewHistogram()
	if h.Count() != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.Percentile(99) != 0 {
		t.Fatalf("empty histogram reports non-zero: %+v", h)
	}
}

func TestHistogramMean(t *testing.T) {
	h := NewHistogram()
	for _, d := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 6 * time.Millisecond} {
		h.Record(d)
	}
	if got := h.Mean(); got != 3*time.Millisecond {
		t.Fatalf("Mean = %v, want 3ms", got)
	}
}

func TestBucketLayoutIsContiguous(t *testing.T) {
	// Every bucket's range starts right after the previous one ends.
	for i := 1; i < numBuckets; i++ {
		if lo := bucketHigh(i-1) + 1; bucketOf(uint64(lo)) != i {
			t.Fatalf("value %d lands in bucket %d, want %d", lo, bucketOf(uint64(lo)), i)
		}
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i&0xfffff) * 100)
	}
}
