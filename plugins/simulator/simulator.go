// Package simulator is a provider that simulates a remote SMS provider: it accepts messages
// (optionally with latency and failures), remembers idempotency keys, sends delivery receipts after
// a delay and scripted replies, and, with a state directory, keeps all of that across restarts of
// the plugin process the way a real provider's servers would.
package simulator

import (
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
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

	mu     sync.Mutex
	cfg    Config
	ledger *ledger
	// sent holds the result of every accepted idempotency key.
	sent map[string]provider.SendResult
	// attempts counts refusals per key, so that a retry draws a new outcome.
	attempts  map[string]uint64
	anonymous uint64
	lastPID   uint64
	lastEvent uint64
	// queue holds the events waiting for delivery, earliest first; events being delivered are
	// in neither queue nor ledger acks.
	queue eventQueue
	// wake is closed and replaced when an event is queued.
	wake chan struct{}
}

var (
	_ provider.Provider   = (*Simulator)(nil)
	_ provider.Configurer = (*Simulator)(nil)
)

// New returns a simulator with DefaultConfig and no ledger.
func New() *Simulator {
	return &Simulator{
		now:      time.Now,
		cfg:      DefaultConfig(),
		sent:     make(map[string]provider.SendResult),
		attempts: make(map[string]uint64),
		wake:     make(chan struct{}),
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
	if s.ledger != nil {
		_ = s.ledger.close()
	}
	s.cfg, s.ledger = cfg, l
	s.sent = make(map[string]provider.SendResult)
	s.attempts = make(map[string]uint64)
	s.lastPID, s.lastEvent = 0, 0
	s.queue = nil
	s.replay(recs)
	s.broadcast()
	if l != nil {
		slog.Info("simulator ledger opened", "sent", len(s.sent), "pending_events", len(s.queue))
	}
	return nil
}

// replay rebuilds the state from ledger records.
func (s *Simulator) replay(recs []record) {
	pending := make(map[uint64]*event)
	for _, r := range recs {
		switch r.Op {
		case opSent:
			if r.Key != "" {
				s.sent[r.Key] = provider.SendResult{MessageID: r.MessageID, Accepted: true, ProviderMessageID: r.ProviderMessageID}
			}
			if n, ok := pidNumber(r.ProviderMessageID); ok {
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
		heap.Push(&s.queue, e)
	}
}

// Close closes the ledger. The simulator must not be used afterwards.
func (s *Simulator) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ledger == nil {
		return nil
	}
	err := s.ledger.close()
	s.ledger = nil
	return err
}

// Capabilities describes the simulator.
func (s *Simulator) Capabilities(context.Context) (provider.Capabilities, error) {
	return provider.Capabilities{Name: Name, MaxBatch: MaxBatch, Unicode: true}, nil
}

// Send accepts or refuses each message. A repeated idempotency key returns the original result and
// sends nothing. With a ledger, the batch is on disk before Send returns.
func (s *Simulator) Send(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
	if len(reqs) > MaxBatch {
		return nil, &provider.Error{Code: provider.CodeBatchTooLarge, Message: fmt.Sprintf("simulator: at most %d messages per batch", MaxBatch)}
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

	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.cfg
	now := s.now()
	res := make([]provider.SendResult, len(reqs))
	var (
		recs     []record
		events   []*event
		accepted map[string]provider.SendResult
		lastPID  = s.lastPID
		lastEv   = s.lastEvent
	)
	for i := range reqs {
		r := &reqs[i]
		res[i].MessageID = r.MessageID
		if r.To == "" {
			res[i].ErrorCode, res[i].ErrorMessage = CodeInvalidRequest, "the message has no destination"
			continue
		}
		key := r.IdempotencyKey
		if key != "" {
			prev, ok := s.sent[key]
			if !ok {
				prev, ok = accepted[key]
			}
			if ok {
				prev.MessageID = r.MessageID
				res[i] = prev
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
		if chance(cfg.Seed, "send", draw, s.attempts[draw]) < cfg.FailureRate {
			if len(s.attempts) < maxAttempts {
				s.attempts[draw]++
			}
			res[i].ErrorCode, res[i].ErrorMessage, res[i].Retryable = CodeFailure, "simulated provider failure", true
			continue
		}
		lastPID++
		pid := "sim-" + strconv.FormatUint(lastPID, 10)
		res[i].Accepted, res[i].ProviderMessageID = true, pid
		if key != "" {
			if accepted == nil {
				accepted = make(map[string]provider.SendResult)
			}
			accepted[key] = res[i]
		}
		recs = append(recs, record{Op: opSent, Key: key, MessageID: r.MessageID, ProviderMessageID: pid, At: now})

		due := now.Add(cfg.ReceiptDelay)
		lastEv++
		receipt := &event{id: lastEv, due: due, ev: provider.Event{
			Kind: provider.EventReceipt, ProviderMessageID: pid, Status: provider.StatusDelivered, At: due,
		}}
		if chance(cfg.Seed, "receipt", pid, 0) < cfg.ReceiptFailureRate {
			receipt.ev.Status = provider.StatusUndeliverable
			receipt.ev.ErrorCode, receipt.ev.ErrorMessage = CodeUndeliverable, "simulated undeliverable message"
		}
		events = append(events, receipt)
		for _, rep := range cfg.Replies {
			if !strings.HasSuffix(r.To, rep.ToSuffix) {
				continue
			}
			lastEv++
			due := now.Add(rep.After)
			events = append(events, &event{id: lastEv, due: due, ev: provider.Event{
				Kind: provider.EventInbound, From: r.To, To: r.From, Body: rep.Body, At: due,
			}})
		}
	}
	for _, e := range events {
		recs = append(recs, e.record())
	}
	if s.ledger != nil && len(recs) > 0 {
		if err := s.ledger.append(recs, true); err != nil {
			slog.Error("simulator ledger write failed", "err", err)
			return nil, &provider.Error{Code: CodeLedger, Message: "simulator: the ledger could not be written; nothing was sent", Retryable: true, Err: err}
		}
	}
	s.lastPID, s.lastEvent = lastPID, lastEv
	for k, r := range accepted {
		s.sent[k] = r
		delete(s.attempts, k)
	}
	for _, e := range events {
		heap.Push(&s.queue, e)
	}
	if len(events) > 0 {
		s.broadcast()
	}
	return res, nil
}

// Receive delivers due events to handle until ctx ends, keeping up to receive_window calls of
// handle in flight at once (handle must be safe for concurrent use). An event is settled when
// handle returns nil; otherwise it is delivered again after redelivery_delay. Receive returns ctx's
// error.
func (s *Simulator) Receive(ctx context.Context, handle func(provider.Event) error) error {
	s.mu.Lock()
	window := s.cfg.ReceiveWindow
	s.mu.Unlock()

	work := make(chan *event)
	var wg sync.WaitGroup
	for range window {
		wg.Go(func() {
			for e := range work {
				s.settle(e, handle(e.ev))
			}
		})
	}
	defer func() {
		close(work)
		wg.Wait()
	}()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		e, wait, wake := s.next()
		if e != nil {
			select {
			case work <- e:
				continue
			case <-ctx.Done():
				s.requeue(e, e.due)
				return ctx.Err()
			}
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

// next takes the first due event off the queue, or says how long until one is due (0: none queued)
// and returns the channel closed when one is queued.
func (s *Simulator) next() (*event, time.Duration, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil, 0, s.wake
	}
	if wait := s.queue[0].due.Sub(s.now()); wait > 0 {
		return nil, wait, s.wake
	}
	return heap.Pop(&s.queue).(*event), 0, nil
}

// settle records the outcome of one delivery.
func (s *Simulator) settle(e *event, err error) {
	if err != nil {
		s.mu.Lock()
		delay := s.cfg.RedeliveryDelay
		now := s.now()
		s.mu.Unlock()
		s.requeue(e, now.Add(delay))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ledger != nil {
		if err := s.ledger.append([]record{{Op: opAck, ID: e.id}}, false); err != nil {
			// The event will be delivered again after a restart; the host tolerates that.
			slog.Warn("simulator ledger ack write failed", "err", err)
		}
	}
}

func (s *Simulator) requeue(e *event, due time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.due = due
	heap.Push(&s.queue, e)
	s.broadcast()
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

func (e *event) record() record {
	return record{
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
		At:                e.due,
	}
}

// eventQueue is a min-heap of events by due time, then id.
type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].id < q[j].id
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// chance returns a number in [0, 1) determined by seed, label, key and attempt only, so outcomes do
// not depend on batch composition, concurrency or restarts.
func chance(seed int64, label, key string, attempt uint64) float64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(label))
	h.Write([]byte{0})
	h.Write([]byte(key))
	binary.LittleEndian.PutUint64(b[:], attempt)
	h.Write(b[:])
	x := h.Sum64()
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
