package load

import (
	"math"
	"time"
)

// Schedule maps the sequence number of a request to the moment an open-loop client intends to send it:
// request i is due at start + i/rate. Each time is computed from i alone, so rounding never accumulates
// into drift, and a client that fell behind sends the overdue requests at once and charges the wait to
// their latency.
type Schedule struct {
	start time.Time
	rate  float64
}

// NewSchedule returns the schedule of rate requests per second beginning at start. A rate of zero or
// less means flat out: every request is due at start.
func NewSchedule(start time.Time, rate float64) Schedule {
	if math.IsNaN(rate) || math.IsInf(rate, 0) {
		rate = 0
	}
	return Schedule{start: start, rate: rate}
}

// Offset returns how long after the start request i is due.
func (s Schedule) Offset(i int64) time.Duration {
	if s.rate <= 0 || i <= 0 {
		return 0
	}
	return time.Duration(float64(i) * 1e9 / s.rate)
}

// At returns the moment request i is due.
func (s Schedule) At(i int64) time.Time { return s.start.Add(s.Offset(i)) }

// CountBefore returns how many requests are due strictly before start+d, that is the first sequence
// number due at or after it. A flat-out schedule reports 0.
func (s Schedule) CountBefore(d time.Duration) int64 {
	if s.rate <= 0 || d <= 0 {
		return 0
	}
	n := int64(math.Ceil(d.Seconds() * s.rate))
	for n > 0 && s.Offset(n-1) >= d {
		n--
	}
	for s.Offset(n) < d {
		n++
	}
	return n
}
