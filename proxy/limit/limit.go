// Package limit enforces the rate limits a policy decision names, with the generic cell rate
// algorithm (GCRA) over bounded in-process state.
//
// A limit allows Rate events per Period. Events are spaced by the emission interval T = Period/Rate;
// Burst events may come at once (the tolerance is (Burst-1)*T). The only state kept per key is its
// theoretical arrival time (TAT), an int64 of nanoseconds, held in sharded LRU caches so memory stays
// bounded however many keys the traffic brings.
//
// Reserve takes every limit of a message together or none of them, so a message refused by its
// third limit does not use up its first two.
package limit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Stable error codes.
const (
	// CodeRateLimited is the code of a Denied that a limit refused.
	CodeRateLimited = "rate_limited"
	// CodeInvalidLimit is the code of a limit that cannot be enforced.
	CodeInvalidLimit = "invalid_limit"
	// CodeInvalidSize is the code of a limiter size that is not positive.
	CodeInvalidSize = "invalid_size"
)

// Error is a configuration error with a stable code.
type Error struct {
	// Code is stable across releases, e.g. "invalid_limit".
	Code string
	// Message is a sentence for a person.
	Message string
}

// Error returns the code and the sentence.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Limit is a GCRA limit: at most Rate events per Period, with Burst allowed at once.
type Limit struct {
	// Key identifies the counter, e.g. "otp:device:abc". Limits with the same Key share one counter.
	Key string
	// Rate is the number of events allowed per Period; it must be positive.
	Rate int
	// Period is the window Rate applies to; it must be positive and at least Rate nanoseconds.
	Period time.Duration
	// Burst is how many events may come at once after a quiet spell; 0 means Rate.
	Burst int
}

// Validate reports whether the limit can be enforced; the error is an *Error with code "invalid_limit".
func (l Limit) Validate() error {
	_, _, err := l.params()
	return err
}

// params returns the emission interval T and the tolerance (Burst-1)*T in nanoseconds.
func (l Limit) params() (t, tau int64, err error) {
	switch {
	case l.Rate <= 0:
		return 0, 0, &Error{CodeInvalidLimit, fmt.Sprintf("rate must be positive, got %d", l.Rate)}
	case l.Period <= 0:
		return 0, 0, &Error{CodeInvalidLimit, fmt.Sprintf("period must be positive, got %s", l.Period)}
	case l.Burst < 0:
		return 0, 0, &Error{CodeInvalidLimit, fmt.Sprintf("burst must not be negative, got %d", l.Burst)}
	}
	t = int64(l.Period) / int64(l.Rate)
	if t == 0 {
		return 0, 0, &Error{CodeInvalidLimit, fmt.Sprintf("rate %d per %s is finer than a nanosecond", l.Rate, l.Period)}
	}
	burst := int64(l.Burst)
	if burst == 0 {
		burst = int64(l.Rate)
	}
	if burst-1 > math.MaxInt64/4/t {
		return 0, 0, &Error{CodeInvalidLimit, fmt.Sprintf("burst %d over %s is too large", burst, l.Period)}
	}
	return t, (burst - 1) * t, nil
}

// Denied says which limit refused a reservation and when it could succeed.
type Denied struct {
	// Index is the position of the refusing limit in the slice given to Reserve.
	Index int
	// RetryAfter is how long until that limit would allow the event; 0 when Err is set.
	RetryAfter time.Duration
	// Err is set, with code "invalid_limit", when the limit at Index cannot be enforced. Such a
	// limit refuses rather than being skipped, so a broken policy fails closed.
	Err error
}

// Error describes the denial; it has code "rate_limited", or Err's text.
func (d *Denied) Error() string {
	if d.Err != nil {
		return fmt.Sprintf("limit %d: %v", d.Index, d.Err)
	}
	return fmt.Sprintf("%s: limit %d: retry after %s", CodeRateLimited, d.Index, d.RetryAfter)
}

// Unwrap returns Err.
func (d *Denied) Unwrap() error { return d.Err }

// Code returns "invalid_limit" when Err is set and "rate_limited" otherwise.
func (d *Denied) Code() string {
	var e *Error
	if errors.As(d.Err, &e) {
		return e.Code
	}
	return CodeRateLimited
}

// Limiter reserves GCRA cells for keys. It is safe for concurrent use.
type Limiter struct {
	seed   maphash.Seed
	mask   uint64
	shards []shard
}

// shard is one LRU of key hash → TAT with its own lock.
type shard struct {
	mu  sync.Mutex
	lru *simplelru.LRU[uint64, int64]
	_   [48]byte // keep neighbouring shards' locks off one cache line
}

// New returns a Limiter that remembers at most size keys; the least recently used key is forgotten
// first, and a forgotten key starts again with a full burst. Size it above the number of keys active
// within the longest Period in use (about 110 bytes a key).
//
// Keys are spread over a power-of-two number of shards, each with its own lock and an equal share of
// size, so eviction is least-recently-used within a shard rather than across the whole limiter.
// A key is stored as a 64-bit hash under a per-limiter random seed; two keys colliding (about one
// chance in 10^7 for a million keys) would share a counter, which can only refuse more, never less.
func New(size int) (*Limiter, error) {
	if size <= 0 {
		return nil, &Error{CodeInvalidSize, fmt.Sprintf("size must be positive, got %d", size)}
	}
	n := 1
	for n < 8*runtime.GOMAXPROCS(0) && n < 256 {
		n *= 2
	}
	for n > 1 && size/n < 64 { // tiny limiters: fewer shards, so each keeps a useful LRU
		n /= 2
	}
	l := &Limiter{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]shard, n)}
	for i := range l.shards {
		per := size / n
		if i < size%n {
			per++
		}
		c, err := simplelru.NewLRU[uint64, int64](per, nil)
		if err != nil {
			return nil, &Error{CodeInvalidSize, err.Error()}
		}
		l.shards[i].lru = c
	}
	return l, nil
}

// Len returns the number of keys remembered.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}

// cell is one key's part of a reservation.
type cell struct {
	hash  uint64
	t     int64 // emission interval
	tau   int64 // tolerance
	prev  int64 // TAT before (for checking and chaining)
	tat   int64 // TAT this reservation set
	dup   bool  // an earlier cell of the same reservation has the same key
	shard uint32
}

// inline is how many limits a Reservation holds without allocating.
const inline = 4

// Reservation is the set of cells Reserve took. The zero Reservation holds nothing.
type Reservation struct {
	l        *Limiter
	n        int
	small    [inline]cell
	more     []cell
	canceled bool
}

func (r *Reservation) cells() []cell {
	if r.more != nil {
		return r.more
	}
	return r.small[:r.n]
}

// Cancel gives the reservation's cells back, for a message refused after it was reserved. For each
// key whose TAT is still the one this reservation set, the TAT moves back by T, exactly undoing the
// reservation. A key that another reservation has moved on since, or that was forgotten, is left
// alone: its cell stays used until it expires, so Cancel can never let more events through than the
// limit allows. Reservations cancelled newest first undo each other in full. Cancel is idempotent.
func (r *Reservation) Cancel() {
	if r == nil || r.l == nil || r.canceled {
		return
	}
	r.canceled = true
	cs := r.cells()
	r.l.lock(cs)
	defer r.l.unlock(cs)
	// Walk backwards so a key named twice is moved back twice.
	for i := len(cs) - 1; i >= 0; i-- {
		c := &cs[i]
		lru := r.l.shards[c.shard].lru
		if cur, ok := lru.Peek(c.hash); ok && cur == c.tat {
			lru.Add(c.hash, c.tat-c.t)
		}
	}
}

// Reserve takes one cell of every limit at now, or none of them. It returns a *Denied naming the
// first limit that refuses, or that is invalid, and then changes nothing.
func (l *Limiter) Reserve(now time.Time, limits []Limit) (Reservation, *Denied) {
	r := Reservation{l: l, n: len(limits)}
	if len(limits) == 0 {
		return r, nil
	}
	var cs []cell
	if len(limits) <= inline {
		cs = r.small[:len(limits)]
	} else {
		r.more = make([]cell, len(limits))
		cs = r.more
	}
	for i, lim := range limits {
		t, tau, err := lim.params()
		if err != nil {
			return Reservation{}, &Denied{Index: i, Err: err}
		}
		h := maphash.String(l.seed, lim.Key)
		cs[i] = cell{hash: h, t: t, tau: tau, shard: uint32(h & l.mask)}
	}
	for i := range cs {
		for j := range i {
			if cs[j].hash == cs[i].hash {
				cs[i].dup = true
				break
			}
		}
	}

	l.lock(cs)
	defer l.unlock(cs)
	ts := now.UnixNano()
	// Check every limit against the TAT it would see, chaining keys named twice.
	for i := range cs {
		c := &cs[i]
		prev := int64(math.MinInt64)
		if c.dup {
			for j := i - 1; j >= 0; j-- {
				if cs[j].hash == c.hash {
					prev = cs[j].tat
					break
				}
			}
		} else if v, ok := l.shards[c.shard].lru.Get(c.hash); ok {
			prev = v
		}
		base := max(prev, ts)
		if base-ts > c.tau {
			return Reservation{}, &Denied{Index: i, RetryAfter: time.Duration(base - c.tau - ts)}
		}
		c.prev, c.tat = prev, base+c.t
	}
	// Commit: every limit allowed.
	for i := range cs {
		l.shards[cs[i].shard].lru.Add(cs[i].hash, cs[i].tat)
	}
	return r, nil
}

// lock takes the locks of every shard the cells touch, in ascending shard order so that two
// reservations never wait on each other.
func (l *Limiter) lock(cs []cell) {
	if len(cs) == 1 {
		l.shards[cs[0].shard].mu.Lock()
		return
	}
	var buf [inline]uint32
	for _, s := range shardOrder(cs, buf[:0]) {
		l.shards[s].mu.Lock()
	}
}

func (l *Limiter) unlock(cs []cell) {
	if len(cs) == 1 {
		l.shards[cs[0].shard].mu.Unlock()
		return
	}
	var buf [inline]uint32
	for _, s := range shardOrder(cs, buf[:0]) {
		l.shards[s].mu.Unlock()
	}
}

// shardOrder returns the distinct shards of cs in ascending order, in buf when it has room.
func shardOrder(cs []cell, buf []uint32) []uint32 {
	if len(cs) > cap(buf) {
		buf = make([]uint32, 0, len(cs))
	}
	for _, c := range cs {
		buf = append(buf, c.shard)
	}
	slices.Sort(buf)
	return slices.Compact(buf)
}
