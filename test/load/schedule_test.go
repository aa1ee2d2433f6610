package load

import (
	"testing"
	"time"
)

func TestScheduleOffset(t *testing.T) {
	tests := []struct {
		rate float64
		i    int64
		want time.Duration
	}{
		{rate: 1000, i: 0, want: 0},
		{rate: 1000, i: 1, want: time.Millisecond},
		{rate: 1000, i: 1000, want: time.Second},
		{rate: 3, i: 1, want: 333333333},
		{rate: 3, i: 2, want: 666666666},
		{rate: 3, i: 3, want: time.Second}, // no accumulated rounding
		{rate: 3, i: 3 * 3600, want: time.Hour},
		{rate: 13000, i: 13000 * 600, want: 10 * time.Minute},
		{rate: 0.5, i: 3, want: 6 * time.Second},
		{rate: 0, i: 12345, want: 0}, // flat out: everything is due now
		{rate: -1, i: 7, want: 0},    // nonsense rate behaves as flat out
		{rate: 1000, i: -4, want: 0}, // negative sequence numbers are not in the future or past
	}
	for _, tt := range tests {
		if got := NewSchedule(time.Time{}, tt.rate).Offset(tt.i); got != tt.want {
			t.Errorf("rate %v: Offset(%d) = %v, want %v", tt.rate, tt.i, got, tt.want)
		}
	}
}

func TestScheduleAtIsMonotonicAndEvenlySpaced(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s := NewSchedule(start, 7919) // a prime rate: the interval is not a whole number of nanoseconds
	prev := s.At(0)
	if !prev.Equal(start) {
		t.Fatalf("At(0) = %v, want the start", prev)
	}
	interval := time.Second / 7919
	for i := int64(1); i < 200000; i++ {
		at := s.At(i)
		gap := at.Sub(prev)
		if gap < interval || gap > interval+1 {
			t.Fatalf("gap before request %d = %v, want %v or one ns more", i, gap, interval)
		}
		prev = at
	}
}

func TestScheduleCountBefore(t *testing.T) {
	tests := []struct {
		rate float64
		d    time.Duration
		want int64
	}{
		{rate: 1000, d: 10 * time.Millisecond, want: 10},      // 0..9 ms
		{rate: 1000, d: 10*time.Millisecond + 1, want: 11},    // 10 ms is due before it
		{rate: 3, d: time.Second, want: 3},                    // 0, 333, 666 ms
		{rate: 0.5, d: 3 * time.Second, want: 2},              // 0 s, 2 s
		{rate: 13000, d: 2 * time.Second, want: 26000},        // a typical warm-up
		{rate: 7919, d: 1500 * time.Millisecond, want: 11879}, // ceil(11878.5)
		{rate: 1000, d: 0, want: 0},
		{rate: 0, d: time.Hour, want: 0},
	}
	for _, tt := range tests {
		s := NewSchedule(time.Time{}, tt.rate)
		got := s.CountBefore(tt.d)
		if got != tt.want {
			t.Errorf("rate %v: CountBefore(%v) = %d, want %d", tt.rate, tt.d, got, tt.want)
		}
		// The definition itself: request got-1 is due before d, request got is not.
		if tt.rate > 0 && got > 0 && (s.Offset(got-1) >= tt.d || s.Offset(got) < tt.d) {
			t.Errorf("rate %v: CountBefore(%v) = %d contradicts Offset", tt.rate, tt.d, got)
		}
	}
}
