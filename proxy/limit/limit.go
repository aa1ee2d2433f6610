// Package limit enforces the rate limits a policy decision names, with the generic cell rate
// algorithm (GCRA), or as a cap on every window, over bounded in-process state.
//
// A limit allows Rate events per Period. Events are spaced by the emission interval T = Period/Rate;
// Burst events may come at once (the tolerance is (Burst-1)*T). The only state kept per key is its
// theoretical arrival time (TAT), an int64 of nanoseconds, held with a hash of the key in sharded
// golang-lru/v2 caches of small key groups, so memory stays bounded, at about 23 bytes a key, however
// many keys the traffic brings.
//
// A Window limit instead keeps the times of a key's last Rate events, one slot each, and allows an
// event only while fewer than Rate of them are within the last Period: a cap that holds in every
// window, for about 23 bytes an event kept.
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

// Limit is a GCRA limit: Rate events per Period sustained, one every Period/Rate, and up to Burst at
// once after a quiet spell. It is not a sliding-window cap: right after a full burst the allowance
// keeps refilling, so any window of one Period may hold up to Burst + Rate - 1 events (5 for 3 a
// day with the default Burst). A cap that must hold in every window needs Burst and Rate chosen so
// that their sum less one is the cap, or Window.
type Limit struct {
	// Key identifies the counter, e.g. "otp:device:abc". Limits with the same Key share one counter:
	// the GCRA limits one, the Window limits another, which should all have the same Rate and Period.
	Key string
	// Rate is the number of events allowed per Period; it must be positive.
	Rate int
	// Period is the window Rate applies to; it must be positive and at least Rate nanoseconds.
	Period time.Duration
	// Burst is how many events may come at once after a quiet spell; 0 means Rate.
	Burst int
	// Window makes the limit a cap on every window: at most Rate events in any Period, kept as the
	// times of the last Rate events (Rate at most MaxWindowRate; Burst must be 0). An event at now is
	// allowed if fewer than Rate of the key's recorded events are in (now-Period, now].
	Window bool
}

// MaxWindowRate is the largest Rate of a Window limit.
const MaxWindowRate = 16

// Validate reports whether the limit can be enforced; the error is an *Error with code "invalid_limit".
func (l Limit) Validate() error {
	_, _, err := l.params()
	return err
}

// maxWindowPeriod is the longest Period of a Window limit, so that now+Period cannot overflow.
const maxWindowPeriod = time.Duration(math.MaxInt64 / 4)

// params returns the emission interval T and the tolerance (Burst-1)*T in nanoseconds; for a Window
// limit, T is the Period and the tolerance 0.
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
	if l.Window {
		switch {
		case l.Rate > MaxWindowRate:
			return 0, 0, &Error{CodeInvalidLimit, fmt.Sprintf("window rate %d is above the maximum of %d", l.Rate, MaxWindowRate)}
		case l.Burst != 0:
			return 0, 0, &Error{CodeInvalidLimit, fmt.Sprintf("a window limit takes no burst, got %d", l.Burst)}
		case l.Period > maxWindowPeriod:
			return 0, 0, &Error{CodeInvalidLimit, fmt.Sprintf("window period %s is too long", l.Period)}
		}
		return int64(l.Period), 0, nil
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

// Limiter reserves GCRA cells and Window events for keys. It is safe for concurrent use.
type Limiter struct {
	seed   maphash.Seed
	mask   uint64 // the shard of a key hash is its low bits
	groups uint64 // groups per shard; the group of a key hash comes from its high 32 bits
	shards []shard
}

// shard is one golang-lru/v2 LRU of groups with its own lock. A group is a slice of (key hash, TAT)
// slots, least recently used first, so the LRU's own cost per entry (a list element and a map slot,
// about 130 bytes) is shared by a group's keys instead of being paid by each key.
type shard struct {
	mu   sync.Mutex
	lru  *simplelru.LRU[uint32, []slot]
	size int      // keys the shard may hold
	n    int      // keys the shard holds; the LRU's eviction callback keeps it when a group goes
	_    [32]byte // keep neighbouring shards' locks off one cache line
}

// slot is one key's state: its hash and its theoretical arrival time in Unix nanoseconds. A Window
// key has up to Rate slots, under hashes derived from its own (see slotHash), each holding the time
// one recorded event leaves the window (the event's time plus Period), so that for both kinds a slot
// whose tat is not after now is at rest: forgetting it changes nothing.
type slot struct {
	hash uint64
	tat  int64
}

// groupKeys is how many keys a group holds on average once its shard is full.
const groupKeys = 32

// slotHash returns the hash of slot i of the Window key hashed h. The key's shard and group come
// from h, so all its slots share one group and one lock.
func slotHash(h uint64, i int) uint64 { return h ^ uint64(i+1)*0x9e3779b97f4a7c15 }

// New returns a Limiter that remembers at most size keys; roughly the least recently used keys are
// forgotten first, and a forgotten key starts again with a full burst. Size it at about twice the
// number of keys active within the longest Period in use (about 23 bytes a key).
//
// A Window key counts as one key per event it keeps, up to its Rate (a slot is reused once its
// event has left the window). Slots are forgotten as keys are, one by one, and a forgotten slot
// counts as no event: like a forgotten GCRA key, it can only make the limit more permissive.
//
// Keys are spread over a power-of-two number of shards, each with its own lock and an equal share of
// size, and within a shard over groups of about 32 keys, kept in a golang-lru/v2 LRU. Until a shard
// is full every new key is added. Once it is full, a new key takes the place of the least recently
// used key of its own group, as in a 32-way set-associative cache: eviction approximates
// least-recently-used within a shard. With new keys streaming into a full limiter, a key is still
// remembered after size/2 newer keys (99.8% of keys), often up to 3*size/4 (93%), sometimes up to size
// (66%) and hardly ever after 2*size, where least-recently-used eviction would keep every key until
// exactly size newer ones. In the rare case where a new key's group is empty, the shard's least
// recently used group is forgotten whole.
//
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
	groups := min(max((size/n+groupKeys-1)/groupKeys, 1), math.MaxInt32)
	l := &Limiter{seed: maphash.MakeSeed(), mask: uint64(n - 1), groups: uint64(groups), shards: make([]shard, n)}
	for i := range l.shards {
		s := &l.shards[i]
		s.size = size / n
		if i < size%n {
			s.size++
		}
		// Group ids are below groups, so the LRU never evicts by itself; the shard removes a group
		// only in trim, and the callback keeps the count.
		c, err := simplelru.NewLRU(groups, func(_ uint32, v []slot) { s.n -= len(v) })
		if err != nil {
			return nil, &Error{CodeInvalidSize, err.Error()}
		}
		s.lru = c
	}
	return l, nil
}

// Len returns the number of keys remembered, a Window key counting once for each slot it holds.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// find returns the index of hash in a group, or -1. It looks from the most recently used end.
func find(v []slot, hash uint64) int {
	for i := len(v) - 1; i >= 0; i-- {
		if v[i].hash == hash {
			return i
		}
	}
	return -1
}

// named reports whether a cell of cs has the key hash (for a Window cell, the hash of its slot).
func named(cs []cell, hash uint64) bool {
	for i := range cs {
		if cs[i].hash == hash {
			return true
		}
	}
	return false
}

// touch returns the TAT of a key and whether it is remembered. It makes the key the most recently
// used of its group, and the group the most recently used of the shard.
func (s *shard) touch(group uint32, hash uint64) (int64, bool) {
	v, _ := s.lru.Get(group)
	i := find(v, hash)
	if i < 0 {
		return 0, false
	}
	sl := v[i]
	copy(v[i:], v[i+1:]) // in place: the LRU holds the same backing array
	v[len(v)-1] = sl
	return sl.tat, true
}

// set stores a key's TAT, as the most recently used key of its group. A new key in a full shard takes
// the place of a key of its group that no cell of cs (the reservation being committed) names: one
// at rest if there is one (its TAT is not after now, so it would start again with a full burst
// anyway, and forgetting it changes nothing), else the least recently used. When there is none, it
// is added and trim makes room. Without the preference a stream of short-lived keys pushed out a
// key still counting down a day-long limit while expired keys stayed.
func (s *shard) set(group uint32, hash uint64, tat, now int64, cs []cell) {
	v, _ := s.lru.Peek(group)
	if i := find(v, hash); i >= 0 {
		v[i].tat = tat
		return
	}
	if s.n >= s.size {
		victim := -1
		for i := range v {
			if named(cs, v[i].hash) {
				continue
			}
			if v[i].tat <= now {
				victim = i
				break
			}
			if victim < 0 {
				victim = i
			}
		}
		if victim >= 0 {
			copy(v[victim:], v[victim+1:])
			v[len(v)-1] = slot{hash, tat}
			return
		}
	}
	if len(v) == cap(v) { // grow by a quarter, not append's doubling: groups stay small and dense
		nv := make([]slot, len(v), len(v)+1+len(v)/4)
		copy(nv, v)
		v = nv
	}
	v = append(v, slot{hash, tat})
	s.lru.Add(group, v)
	s.n++
}

// trim forgets the shard's least recently used groups, whole, until it holds at most size keys. It
// never forgets a group that a cell of cs is in.
func (s *shard) trim(shard uint32, cs []cell) {
	for s.n > s.size {
		g, _, ok := s.lru.GetOldest()
		if !ok || slices.ContainsFunc(cs, func(c cell) bool { return c.shard == shard && c.group == g }) {
			return
		}
		s.lru.RemoveOldest()
	}
}

// cell is one key's part of a reservation. For a Window cell, hash is the hash of the slot the event
// is recorded in, prev that slot's value before (0 if it was not held) and tat the time the event
// leaves the window.
type cell struct {
	hash  uint64 // hash of the slot written
	key   uint64 // hash of the key
	t     int64  // emission interval; the Period of a Window cell
	tau   int64  // tolerance
	prev  int64  // TAT before (for checking and chaining)
	tat   int64  // TAT this reservation set
	shard uint32
	group uint32
	dup   bool  // an earlier cell of the same reservation, of the same kind, has the same key
	win   bool  // a Window limit
	rate  uint8 // a Window limit's Rate
	idx   uint8 // the slot a Window cell writes
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
// limit allows. Reservations cancelled newest first undo each other in full. A Window event is
// undone by giving its slot back its value before, if the slot still holds the event; events of a
// Window key are independent, so they can be cancelled in any order. Cancel is idempotent.
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
		v, _ := r.l.shards[c.shard].lru.Peek(c.group)
		if j := find(v, c.hash); j >= 0 && v[j].tat == c.tat {
			if c.win {
				v[j].tat = c.prev
			} else {
				v[j].tat = c.tat - c.t
			}
		}
	}
}

// Reserve takes one cell of every limit at now (for a Window limit, records an event at now), or
// none of them. It returns a *Denied naming the first limit that refuses, or that is invalid, and
// then changes nothing. A Window limit refuses while Rate of its key's events are within the last
// Period, with RetryAfter the time until the oldest of them leaves it.
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
		cs[i] = cell{hash: h, key: h, t: t, tau: tau, shard: uint32(h & l.mask), group: uint32((h >> 32) * l.groups >> 32)}
		if lim.Window {
			cs[i].win, cs[i].rate = true, uint8(lim.Rate)
		}
	}
	for i := range cs {
		for j := range i {
			if cs[j].key == cs[i].key && cs[j].win == cs[i].win {
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
		if c.win {
			if d := l.window(cs, i, ts); d != nil {
				return Reservation{}, d
			}
			continue
		}
		prev := int64(math.MinInt64)
		if c.dup {
			for j := i - 1; j >= 0; j-- {
				if !cs[j].win && cs[j].key == c.key {
					prev = cs[j].tat
					break
				}
			}
		} else if v, ok := l.shards[c.shard].touch(c.group, c.hash); ok {
			prev = v
		}
		base := max(prev, ts)
		if base-ts > c.tau {
			return Reservation{}, &Denied{Index: i, RetryAfter: time.Duration(base - c.tau - ts)}
		}
		c.prev, c.tat = prev, base+c.t
	}
	// Commit: every limit allowed. Then make room if a new key had to be added to a full shard.
	for i := range cs {
		l.shards[cs[i].shard].set(cs[i].group, cs[i].hash, cs[i].tat, ts, cs)
	}
	for i := range cs {
		l.shards[cs[i].shard].trim(cs[i].shard, cs)
	}
	return r, nil
}

// window checks the Window cell cs[i] at ts, counting the events of the cells before it that name
// the same key, and chooses the slot it will write: one at rest that is held, else one not held.
func (l *Limiter) window(cs []cell, i int, ts int64) *Denied {
	c := &cs[i]
	var vals [MaxWindowRate]int64 // when each slot's event leaves the window
	var held uint32               // the slots held
	s := &l.shards[c.shard]
	for k := range int(c.rate) {
		if v, ok := s.touch(c.group, slotHash(c.key, k)); ok {
			vals[k], held = v, held|1<<k
		}
	}
	if c.dup {
		for j := range i {
			if e := &cs[j]; e.win && e.key == c.key && e.idx < c.rate {
				vals[e.idx], held = e.tat, held|1<<e.idx
			}
		}
	}
	count, oldest, rest, free := 0, int64(math.MaxInt64), -1, -1
	for k := range int(c.rate) {
		switch {
		case held&(1<<k) == 0:
			if free < 0 {
				free = k
			}
		case vals[k] > ts:
			count++
			oldest = min(oldest, vals[k])
		case rest < 0:
			rest = k
		}
	}
	if count >= int(c.rate) {
		return &Denied{Index: i, RetryAfter: time.Duration(oldest - ts)}
	}
	if rest >= 0 {
		free = rest
	}
	c.idx, c.hash, c.prev, c.tat = uint8(free), slotHash(c.key, free), vals[free], ts+c.t
	return nil
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
