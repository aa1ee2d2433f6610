// Package simulator is a provider that simulates a remote SMS provider: it accepts messages
// (optionally with latency and failures), remembers idempotency keys, sends delivery receipts after
// a delay and scripted replies, and, with a state directory, keeps all of that across restarts of
// the plugin process the way a real provider's servers would.
package simulator

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// Name is the provider's name in Capabilities.
const Name = "simulator"

// MaxBatch is the largest Send batch the simulator accepts.
const MaxBatch = 1000

// Error codes of the simulator, in SendResult.ErrorCode and Event.ErrorCode.
const (
	// CodeFailure is a simulated refusal at failure_rate; a retry may succeed.
	CodeFailure = "sim_failure"
	// CodeUndeliverable is a simulated failed delivery at receipt_failure_rate.
	CodeUndeliverable = "sim_undeliverable"
	// CodeInvalidRequest is a request the simulator cannot send, e.g. with no destination.
	CodeInvalidRequest = "sim_invalid_request"
	// CodeLedger means the ledger could not be written; nothing of the batch was sent.
	CodeLedger = "sim_ledger"
)

// maxAttempts bounds the memory of refused keys kept to vary the outcome of retries.
const maxAttempts = 100_000

// Simulator is a simulated remote SMS provider. It is safe for concurrent use.
type Simulator struct {
	now func() time.Time

	// ledger is the open ledger, nil without a state_dir or once closed; it changes under mu.
	ledger atomic.Pointer[ledger]

	mu  sync.Mutex
	cfg Config
	// gen counts Configure calls, so that a group committed across one does not change the new state.
	gen uint64
	// sent holds, for every accepted idempotency key, n of its provider message id "sim-n".
	sent map[string]uint64
	// sentOther holds the provider message ids of keys read from a ledger that are not "sim-n".
	sentOther map[string]string
	// attempts counts refusals per key, so that a retry draws a new outcome.
	attempts  map[string]uint64
	anonymous uint64
	lastPID   uint64
	lastEvent uint64
	// queue holds the events waiting for delivery, earliest first; events being delivered are
	// in neither queue nor ledger acks.
	queue eventQueue
	// wake is closed and replaced when the earliest queued event changes.
	wake chan struct{}

	// gmu guards the group commit of Sends: the Sends waiting for the next group, and whether one
	// Send leads, committing groups one after the other.
	gmu     sync.Mutex
	waiting []*sendOp
	leading bool
	// groupBuf, ackBuf and groupKeys are the leader's scratch space, reused from group to group.
	groupBuf  []byte
	ackBuf    []byte
	groupKeys map[string]uint64
}

// sendOp is one Send waiting for its group to be committed.
type sendOp struct {
	reqs []provider.SendRequest
	res  []provider.SendResult
	err  error
	// done receives when the group holding the op was committed, or when the op is to lead.
	done chan struct{}
	lead bool
}

var (
	_ provider.Provider   = (*Simulator)(nil)
	_ provider.Configurer = (*Simulator)(nil)
)

// New returns a simulator with DefaultConfig and no ledger.
func New() *Simulator {
	return &Simulator{
		now:       time.Now,
		cfg:       DefaultConfig(),
		sent:      make(map[string]uint64),
		attempts:  make(map[string]uint64),
		wake:      make(chan struct{}),
		groupKeys: make(map[string]uint64),
	}
}

// Configure applies a JSON configuration (see Config). With a state_dir it opens the ledger there
// and takes up where the previous process left off: known idempotency keys and unacknowledged
// events. Configure is meant to be called once, before use; a second call starts over from the
// new configuration's ledger.
func (s *Simulator) Configure(config []byte) error {
	cfg, err := ParseConfig(config)
	if err != nil {
		return err
	}
	var (
		l    *ledger
		recs []record
	)
	if cfg.StateDir != "" {
		l, recs, err = openLedger(cfg.StateDir)
		if err != nil {
			return &provider.Error{Code: CodeLedger, Message: "simulator: cannot open the ledger in state_dir", Err: err}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.ledger.Swap(l); old != nil {
		_ = old.close()
	}
	s.cfg = cfg
	s.gen++
	s.sent = make(map[string]uint64)
	s.sentOther = nil
	s.attempts = make(map[string]uint64)
	s.lastPID, s.lastEvent = 0, 0
	s.queue = nil
	s.replay(recs)
	s.broadcast()
	if l != nil {
		slog.Info("simulator ledger opened", "sent", len(s.sent)+len(s.sentOther), "pending_events", len(s.queue))
	}
	return nil
}

// replay rebuilds the state from ledger records.
func (s *Simulator) replay(recs []record) {
	pending := make(map[uint64]*event)
	for _, r := range recs {
		switch r.Op {
		case opSent:
			n, ok := pidNumber(r.ProviderMessageID)
			if r.Key != "" {
				if ok && pidString(n) == r.ProviderMessageID {
					s.sent[r.Key] = n
				} else {
					if s.sentOther == nil {
						s.sentOther = make(map[string]string)
					}
					s.sentOther[r.Key] = r.ProviderMessageID
				}
			}
			if ok {
				s.lastPID = max(s.lastPID, n)
			}
		case opEvent:
			pending[r.ID] = &event{id: r.ID, due: r.At, ev: provider.Event{
				Kind:              provider.EventKind(r.Kind),
				ProviderMessageID: r.ProviderMessageID,
				Status:            r.Status,
				ErrorCode:         r.ErrorCode,
				ErrorMessage:      r.ErrorMessage,
				From:              r.From,
				To:                r.To,
				Body:              r.Body,
				At:                r.At,
			}}
			s.lastEvent = max(s.lastEvent, r.ID)
		case opAck:
			delete(pending, r.ID)
		}
	}
	for _, e := range pending {
		s.queue.push(e)
	}
}

// Close closes the ledger. The simulator must not be used afterwards.
func (s *Simulator) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.ledger.Swap(nil); l != nil {
		return l.close()
	}
	return nil
}

// Capabilities describes the simulator.
func (s *Simulator) Capabilities(context.Context) (provider.Capabilities, error) {
	return provider.Capabilities{Name: Name, MaxBatch: MaxBatch, Unicode: true}, nil
}

// Send accepts or refuses each message. A repeated idempotency key returns the original result and
// sends nothing. With a ledger, the batch is on disk before Send returns.
//
// Sends are committed in groups. A Send that finds no group being committed leads: it takes every
// Send waiting (itself included), decides their messages, writes their records in one write and
// one fsync, answers them, and hands the lead to a Send that arrived meanwhile. So concurrent
// Sends share an fsync, and a Send never answers before its records are on disk.
func (s *Simulator) Send(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
	if len(reqs) > MaxBatch {
		return nil, &provider.Error{Code: provider.CodeBatchTooLarge, Message: fmt.Sprintf("simulator: at most %d messages per batch", MaxBatch), NotSent: true}
	}
	s.mu.Lock()
	latency := s.cfg.Latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	} else if err := ctx.Err(); err != nil {
		return nil, err
	}

	op := &sendOp{reqs: reqs, done: make(chan struct{}, 1)}
	s.gmu.Lock()
	s.waiting = append(s.waiting, op)
	follow := s.leading
	s.leading = true
	s.gmu.Unlock()
	if follow {
		<-op.done
		if !op.lead {
			return op.res, op.err
		}
	}
	s.lead(op)
	return op.res, op.err
}

// lead commits the group of Sends waiting now, self among them, answers them, and hands the lead to
// the first Send that arrived meanwhile, if any.
func (s *Simulator) lead(self *sendOp) {
	s.gmu.Lock()
	group := s.waiting
	s.waiting = nil
	s.gmu.Unlock()

	s.commit(group)

	s.gmu.Lock()
	var next *sendOp
	if len(s.waiting) > 0 {
		next = s.waiting[0]
		next.lead = true
	} else {
		s.leading = false
	}
	s.gmu.Unlock()
	for _, op := range group {
		if op != self {
			op.done <- struct{}{}
		}
	}
	if next != nil {
		next.done <- struct{}{}
	}
}

// commit decides the messages of a group of Sends, makes their records durable and then, only if
// that succeeded, applies them: known keys, provider ids, events to deliver. If the ledger cannot
// be written, every Send of the group fails and nothing of it was sent. Only the leader calls it.
func (s *Simulator) commit(ops []*sendOp) {
	s.mu.Lock()
	gen, l := s.gen, s.ledger.Load()
	clear(s.groupKeys)
	g := &group{
		cfg: s.cfg, now: s.now(), ledger: l != nil,
		lastPID: s.lastPID, lastEvent: s.lastEvent, keys: s.groupKeys, buf: s.groupBuf[:0],
	}
	for _, op := range ops {
		s.decide(g, op)
	}
	s.mu.Unlock()

	err := g.err
	if err == nil && l != nil && len(g.buf) > 0 {
		s.ackBuf, err = l.commit(g.buf, s.ackBuf)
		if cap(s.ackBuf) > maxSpareBuffer {
			s.ackBuf = nil
		}
	}
	if cap(g.buf) <= maxSpareBuffer {
		s.groupBuf = g.buf[:0]
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		slog.Error("simulator ledger write failed", "err", err)
		perr := &provider.Error{Code: CodeLedger, Message: "simulator: the ledger could not be written; nothing was sent", Retryable: true, NotSent: true, Err: err}
		for _, op := range ops {
			op.res, op.err = nil, perr
		}
		return
	}
	if s.gen != gen {
		return // Configure started over meanwhile.
	}
	s.lastPID, s.lastEvent = g.lastPID, g.lastEvent
	for k, n := range g.keys {
		s.sent[k] = n
		if len(s.attempts) > 0 {
			delete(s.attempts, k)
		}
	}
	s.push(g.events...)
}

// group is what commit decided for a group of Sends and has yet to make durable.
type group struct {
	cfg    Config
	now    time.Time
	ledger bool // whether records are to be written
	// lastPID and lastEvent are the last numbers handed out, in the group or before it.
	lastPID   uint64
	lastEvent uint64
	// keys holds n of "sim-n" for the idempotency keys the group accepts.
	keys map[string]uint64
	// events are the events the group schedules.
	events []*event
	// buf holds the group's ledger lines, err the first failure to encode one.
	buf []byte
	err error
}

// decide answers the requests of op, adding what they send to g; s.mu must be held.
func (s *Simulator) decide(g *group, op *sendOp) {
	cfg := &g.cfg
	op.res = make([]provider.SendResult, len(op.reqs))
	first := len(g.events)
	var receipts []event // the receipts of op, allocated together
	for i := range op.reqs {
		r, res := &op.reqs[i], &op.res[i]
		res.MessageID = r.MessageID
		if r.To == "" {
			res.ErrorCode, res.ErrorMessage = CodeInvalidRequest, "the message has no destination"
			continue
		}
		key := r.IdempotencyKey
		if key != "" {
			if pid, ok := s.sentPID(key); ok {
				res.Accepted, res.ProviderMessageID = true, pid
				continue
			}
			if n, ok := g.keys[key]; ok {
				res.Accepted, res.ProviderMessageID = true, pidString(n)
				continue
			}
		}
		draw := key
		if draw == "" {
			draw = r.MessageID
		}
		if draw == "" {
			s.anonymous++
			draw = "#" + strconv.FormatUint(s.anonymous, 10)
		}
		if cfg.FailureRate > 0 && chance(cfg.Seed, "send", draw, s.attempts[draw]) < cfg.FailureRate {
			if len(s.attempts) < maxAttempts {
				s.attempts[draw]++
			}
			res.ErrorCode, res.ErrorMessage, res.Retryable = CodeFailure, "simulated provider failure", true
			continue
		}
		g.lastPID++
		pid := pidString(g.lastPID)
		res.Accepted, res.ProviderMessageID = true, pid
		if key != "" {
			g.keys[key] = g.lastPID
		}
		g.append(&record{Op: opSent, Key: key, MessageID: r.MessageID, ProviderMessageID: pid, At: g.now})

		due := g.now.Add(cfg.ReceiptDelay)
		g.lastEvent++
		if receipts == nil {
			// At most one receipt per request left, so appending never moves the events.
			receipts = make([]event, 0, len(op.reqs)-i)
		}
		receipts = append(receipts, event{id: g.lastEvent, due: due, ev: provider.Event{
			Kind: provider.EventReceipt, ProviderMessageID: pid, Status: provider.StatusDelivered, At: due,
		}})
		receipt := &receipts[len(receipts)-1]
		if cfg.ReceiptFailureRate > 0 && chance(cfg.Seed, "receipt", pid, 0) < cfg.ReceiptFailureRate {
			receipt.ev.Status = provider.StatusUndeliverable
			receipt.ev.ErrorCode, receipt.ev.ErrorMessage = CodeUndeliverable, "simulated undeliverable message"
		}
		g.events = append(g.events, receipt)
		for _, rep := range cfg.Replies {
			if !strings.HasSuffix(r.To, rep.ToSuffix) {
				continue
			}
			g.lastEvent++
			due := g.now.Add(rep.After)
			g.events = append(g.events, &event{id: g.lastEvent, due: due, ev: provider.Event{
				Kind: provider.EventInbound, From: r.To, To: r.From, Body: rep.Body, At: due,
			}})
		}
	}
	// The records of op are laid out as a Send alone would write them: its messages, then its
	// events.
	for _, e := range g.events[first:] {
		g.append(e.record())
	}
}

// append adds the ledger line of r to the group's, if it keeps a ledger.
func (g *group) append(r *record) {
	if g.ledger && g.err == nil {
		g.buf, g.err = appendRecord(g.buf, r)
	}
}

// sentPID returns the provider message id of an accepted key; s.mu must be held.
func (s *Simulator) sentPID(key string) (string, bool) {
	if n, ok := s.sent[key]; ok {
		return pidString(n), true
	}
	pid, ok := s.sentOther[key]
	return pid, ok
}

// Receive delivers due events to handle until ctx ends, keeping up to receive_window calls of
// handle in flight at once (handle must be safe for concurrent use). An event is settled when
// handle returns nil; otherwise it is delivered again after redelivery_delay. While events keep
// coming due, deliveries go out in rounds at least deliveryTick apart, so an event may go out up to
// a tick after it is due. Receive returns ctx's error.
func (s *Simulator) Receive(ctx context.Context, handle func(provider.Event) error) error {
	s.mu.Lock()
	window := s.cfg.ReceiveWindow
	s.mu.Unlock()

	// inflight counts the events handed to workers and not yet settled. When it drops to zero, a
	// burst of deliveries is over and its acks are written at once rather than after ackDelay.
	var (
		work     = make(chan *event)
		inflight atomic.Int64
		wg       sync.WaitGroup
	)
	flushAcks := func() {
		if l := s.ledger.Load(); l != nil {
			l.flushAcks()
		}
	}
	for range window {
		wg.Go(func() {
			for e := range work {
				s.settle(e, handle(e.ev))
				if inflight.Add(-1) == 0 {
					flushAcks()
				}
			}
		})
	}
	defer func() {
		close(work)
		wg.Wait()
		flushAcks() // The stream is over; acks need not wait for more.
	}()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	due := make([]*event, 0, window)
	var hold time.Time // no round of deliveries starts before it
	for {
		var (
			wait time.Duration
			wake <-chan struct{}
		)
		due, wait, wake = s.take(due[:0], window, hold)
		// A round that emptied what was due opens the next one deliveryTick later at the earliest,
		// so a steady flow goes out in bursts; one that filled the window goes on at once.
		hold = time.Time{}
		if len(due) > 0 && len(due) < window {
			hold = time.Now().Add(deliveryTick)
		}
		for i, e := range due {
			inflight.Add(1)
			select {
			case work <- e:
			case <-ctx.Done():
				inflight.Add(-1)
				s.requeue(due[i:])
				return ctx.Err()
			}
		}
		if len(due) > 0 {
			clear(due)
			continue
		}
		var fire <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-fire:
		}
		timer.Stop()
	}
}

// deliveryTick is the shortest time between two rounds of deliveries of one Receive while events
// keep coming due: the events that come due meanwhile go out together, as a real provider's
// receipts do, rather than one wake-up, one frame and one ack write each. An event that comes due
// after a quiet period of a tick goes out on time.
const deliveryTick = 5 * time.Millisecond

// take moves up to n due events off the queue to dst, unless hold (real time) has not passed. If
// it takes none it says how long to wait (0: none queued) and returns the channel closed when the
// earliest event changes.
func (s *Simulator) take(dst []*event, n int, hold time.Time) ([]*event, time.Duration, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return dst, 0, s.wake
	}
	now := s.now()
	if pause := time.Until(hold); pause > 0 {
		return dst, max(pause, s.queue[0].due.Sub(now)), s.wake
	}
	for len(s.queue) > 0 && len(dst) < n && !s.queue[0].due.After(now) {
		dst = append(dst, s.queue.pop())
	}
	if len(dst) > 0 {
		return dst, 0, nil
	}
	return dst, s.queue[0].due.Sub(now), s.wake
}

// settle records the outcome of one delivery.
func (s *Simulator) settle(e *event, err error) {
	if err != nil {
		s.mu.Lock()
		e.due = s.now().Add(s.cfg.RedeliveryDelay)
		s.push(e)
		s.mu.Unlock()
		return
	}
	if l := s.ledger.Load(); l != nil {
		l.ack(e.id)
	}
}

// requeue puts events taken but not delivered back, due when they were.
func (s *Simulator) requeue(events []*event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.push(events...)
}

// push queues events and wakes every Receive if the earliest event changed; a Receive waits for
// the earliest one, so a later one needs no wake-up. s.mu must be held.
func (s *Simulator) push(events ...*event) {
	if len(events) == 0 {
		return
	}
	var head *event
	if len(s.queue) > 0 {
		head = s.queue[0]
	}
	for _, e := range events {
		s.queue.push(e)
	}
	if s.queue[0] != head {
		s.broadcast()
	}
}

// broadcast wakes every Receive; s.mu must be held.
func (s *Simulator) broadcast() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// event is a scheduled receipt or inbound message.
type event struct {
	id  uint64
	due time.Time
	ev  provider.Event
}

// record returns the ledger record that schedules e.
func (e *event) record() *record {
	return &record{
		Op:                opEvent,
		ID:                e.id,
		Kind:              string(e.ev.Kind),
		ProviderMessageID: e.ev.ProviderMessageID,
		Status:            e.ev.Status,
		ErrorCode:         e.ev.ErrorCode,
		ErrorMessage:      e.ev.ErrorMessage,
		From:              e.ev.From,
		To:                e.ev.To,
		Body:              e.ev.Body,
		At:                e.ev.At,
	}
}

// eventQueue is a min-heap of events by due time, then id.
type eventQueue []*event

func (q eventQueue) less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].id < q[j].id
}

func (q *eventQueue) push(e *event) {
	*q = append(*q, e)
	h := *q
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (q *eventQueue) pop() *event {
	h := *q
	n := len(h) - 1
	e := h[0]
	h[0], h[n] = h[n], nil
	h = h[:n]
	*q = h
	for i := 0; ; {
		least := i
		if l := 2*i + 1; l < n && h.less(l, least) {
			least = l
		}
		if r := 2*i + 2; r < n && h.less(r, least) {
			least = r
		}
		if least == i {
			break
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
	return e
}

// chance returns a number in [0, 1) determined by seed, label, key and attempt only, so outcomes do
// not depend on batch composition, concurrency or restarts. It is FNV-1a (64 bits) of the seed
// and the attempt in little-endian order and of label and key separated by a zero byte, finished
// with splitmix64.
func chance(seed int64, label, key string, attempt uint64) float64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	x := uint64(offset64)
	for i := range 8 {
		x ^= uint64(seed) >> (8 * i) & 0xff
		x *= prime64
	}
	for i := 0; i < len(label); i++ {
		x ^= uint64(label[i])
		x *= prime64
	}
	x *= prime64 // the zero byte: x ^= 0
	for i := 0; i < len(key); i++ {
		x ^= uint64(key[i])
		x *= prime64
	}
	for i := range 8 {
		x ^= attempt >> (8 * i) & 0xff
		x *= prime64
	}
	// splitmix64 finaliser: spreads FNV's weak low bits.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// pidNumber returns n for a provider message id "sim-n".
func pidNumber(pid string) (uint64, bool) {
	s, ok := strings.CutPrefix(pid, "sim-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// pidString returns the provider message id "sim-n".
func pidString(n uint64) string {
	var b [24]byte
	return string(strconv.AppendUint(append(b[:0], "sim-"...), n, 10))
}
