package load

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear, like HdrHistogram: values below 2^subBits are counted exactly, and every
// power-of-two range above that is split into 2^(subBits-1) equal buckets, so a reported value is never
// more than 1/2^(subBits-1) (0.79 %) above the value recorded.
const (
	subBits = 8
	half    = 1 << (subBits - 1)
	// maxBits bounds the trackable range to 2^43 ns (about 2.4 h); larger values land in the last bucket,
	// and Max still reports them exactly.
	maxBits    = 43
	numBuckets = (maxBits - subBits + 2) * half
)

// Histogram records durations with bounded relative error in constant memory. Its zero value is not
// usable; create one with NewHistogram. A Histogram is not safe for concurrent use: give each goroutine
// its own and Merge them afterwards.
type Histogram struct {
	counts []uint64
	count  uint64
	sum    float64
	min    int64
	max    int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketOf returns the index of the bucket that counts v.
func bucketOf(v uint64) int {
	k := bits.Len64(v)
	if k <= subBits {
		return int(v)
	}
	if k > maxBits {
		return numBuckets - 1
	}
	shift := k - subBits
	return shift*half + int(v>>shift)
}

// bucketHigh returns the largest value counted by bucket idx.
func bucketHigh(idx int) int64 {
	if idx < 2*half {
		return int64(idx)
	}
	shift := idx/half - 1
	m := int64(idx - shift*half)
	return (m+1)<<shift - 1
}

// Record adds one observation; a negative duration counts as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))]++
	h.count++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.count += o.count
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.count }

// Min returns the smallest observation exactly, or 0 when there is none.
func (h *Histogram) Min() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Max returns the largest observation exactly, or 0 when there is none.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the arithmetic mean of the observations, or 0 when there is none.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.count))
}

// Percentile returns the value below or at which q percent of the observations fall (nearest rank),
// reported as the upper bound of its bucket and never above Max. q is clamped to [0, 100]; an empty
// histogram reports 0.
func (h *Histogram) Percentile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if q <= 0 || math.IsNaN(q) {
		return time.Duration(h.min)
	}
	q = min(q, 100)
	// The small epsilon keeps float error from pushing an exact rank (99.9 % of 1000) one up.
	rank := uint64(math.Ceil(q/100*float64(h.count) - 1e-9))
	rank = max(rank, 1)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			if i == numBuckets-1 {
				return time.Duration(h.max)
			}
			return time.Duration(max(min(bucketHigh(i), h.max), h.min))
		}
	}
	return time.Duration(h.max)
}
