package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// Item is one message to dispatch.
type Item struct {
	// Req is what the provider receives; Req.MessageID identifies the message in outcomes.
	Req provider.SendRequest
	// Country is the destination's ISO code, for the default provider order.
	Country string
	// Providers is the decision's route; empty means the country's default order.
	Providers []string
	// Attempt is how many passes over the providers were already made for this message, e.g. when
	// the outbox hands it over again after a restart; 0 for a new message.
	Attempt int
	// MaybeSent lists the providers whose earlier Send of the message ended without a known result,
	// as the last retry outcome's MaybeSent said before a restart: the message goes to the first of
	// them that serves it before any other, with the same idempotency key, and an acceptance
	// elsewhere carries AfterAmbiguous. Empty for a new message.
	MaybeSent []string
	// NotBefore, when later than now, holds the message's next pass until then, for at most
	// MaxBackoff: the retry time the last pass chose, for a message the outbox hands over again
	// after a restart. A restart thus keeps the backoff instead of sending every waiting retry at
	// once.
	NotBefore time.Time
}

// Outcome is what happened to one message at one step. A message yields one or more outcomes: one
// per provider that failed it, one per pass that ended without a provider, and one final outcome.
type Outcome struct {
	MessageID string
	// Provider is the provider that answered; empty for an outcome of the dispatcher itself
	// (code "no_provider_available").
	Provider string
	// ProviderMessageID is the provider's id when it accepted the message.
	ProviderMessageID string
	// Accepted is true when Provider took the message.
	Accepted bool
	// Final is true when nothing more will happen to the message in this dispatcher: it was
	// accepted, refused for good, or ran out of attempts.
	Final bool
	// Code is empty when accepted, else the provider's error code or one of the Code constants.
	Code string
	// Message explains Code; it may hold a provider's or transport's own text, so treat it like
	// any provider answer and keep it out of logs.
	Message string
	// Attempt is the number of the pass over the providers, starting at 1.
	Attempt int
	// RetryAt is set when the dispatcher scheduled another pass at that time.
	RetryAt time.Time
	// MaybeSent lists, on an outcome with RetryAt set, the providers that may have taken the message
	// (their Send ended without a known result and they have not answered for it since). Keep it
	// with the retry and hand it back in Item.MaybeSent if the message is enqueued again after a
	// restart, so that the resend goes to them first.
	MaybeSent []string
	// AfterAmbiguous is true when an earlier Send of the message to a provider other than Provider
	// (to any provider, for an outcome of the dispatcher itself) ended without a known result, a
	// timeout or a transport or protocol error rather than an error that says nothing was sent, and
	// that provider has not answered for the message since. That provider may have taken it: an
	// acceptance is then a possible duplicate, and a failure may have reached the recipient anyway.
	AfterAmbiguous bool
	// Handover names the provider the message goes to next, within this pass, when a restart
	// would not send it there first (a restart starts with the first of the MaybeSent last
	// recorded that serves it, else with the route's first provider). The outcome's MaybeSent
	// then lists Handover, and the Recorder must keep it with the message, as for a retry, before
	// it returns: the Send follows, and should the process die before its answer is recorded, the
	// restart resends to that provider, with the same idempotency key, rather than to a provider
	// that would deliver the message a second time. Code is CodeHandover.
	Handover string
}

// Recorder learns every outcome. Sent is called from several goroutines at once, with the outcomes
// of one provider batch together so they can be stored in one transaction. It must not modify the
// slice. For any one message, outcomes arrive in order. ctx ends when Close gives up draining.
type Recorder interface {
	Sent(ctx context.Context, outcomes []Outcome)
}

// RecorderFunc adapts a function to a Recorder.
type RecorderFunc func(ctx context.Context, outcomes []Outcome)

// Sent calls f.
func (f RecorderFunc) Sent(ctx context.Context, outcomes []Outcome) { f(ctx, outcomes) }

var _ Recorder = RecorderFunc(nil)

// DispatcherConfig describes a Dispatcher.
type DispatcherConfig struct {
	// Recorder learns every outcome; required.
	Recorder Recorder
	// QueueSize bounds the messages the dispatcher holds, queued, in flight or waiting for a
	// retry; Enqueue blocks beyond it. 0 means 4096.
	QueueSize int
	// MaxBatch caps the messages of one Send; 0 means 64. A provider's own cap in Config.MaxBatch
	// lowers it further.
	MaxBatch int
	// Workers is the number of concurrent Send calls per provider; 0 means 4.
	Workers int
	// MaxAttempts is the number of passes over the providers before a message fails for good with
	// "no_provider_available"; 0 means 8.
	MaxAttempts int
	// MaxAmbiguous is how many Sends of a message in a row to one provider may end without a known
	// result (a timeout, a transport or protocol error) before the message moves on to the next
	// provider; 0 means 2, and 1 moves on at once. Until then each next pass sends it to the same
	// provider with the same idempotency key, which that provider dedups, since another provider
	// could deliver it a second time.
	MaxAmbiguous int
	// MinBackoff and MaxBackoff bound the delay before another pass; 0 means 1s and 5m. The delay
	// doubles each pass and is jittered to between half of it and all of it.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives operational events, never message content; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports whether the configuration can be used; errors carry code "invalid_config".
func (c DispatcherConfig) Validate() error {
	switch {
	case c.Recorder == nil:
		return &Error{Code: CodeInvalidConfig, Message: "a recorder is required"}
	case c.QueueSize < 0, c.MaxBatch < 0, c.Workers < 0, c.MaxAttempts < 0, c.MaxAmbiguous < 0:
		return &Error{Code: CodeInvalidConfig, Message: "queue size, max batch, workers, max attempts and max ambiguous must not be negative"}
	case c.MinBackoff < 0, c.MaxBackoff < 0:
		return &Error{Code: CodeInvalidConfig, Message: "backoff must not be negative"}
	case c.MaxBackoff != 0 && c.MinBackoff > c.MaxBackoff:
		return &Error{Code: CodeInvalidConfig, Message: "min backoff exceeds max backoff"}
	}
	return nil
}

// Dispatcher sends messages to providers in batches. Each provider has its own queue and workers; a
// worker takes whatever is queued, up to the batch cap, without waiting for more. A message goes to
// the first provider of its route whose breaker lets it through; an acceptance or a refusal that is
// not retryable is final, and a retryable refusal, a Send error that says nothing was sent (see
// NotSentError), or a breaker that stops the send, moves it at once to the next provider. Any other
// Send error (a timeout, a transport or protocol error) leaves no known result and may have
// delivered the message, so the pass ends and the next one sends it to the same provider with the
// same idempotency key; it moves on only once that provider's breaker is open or MaxAmbiguous such
// Sends in a row failed, and its later outcomes then carry AfterAmbiguous. When a pass over the
// route ends without a provider, the message waits with exponential backoff for another pass, up
// to MaxAttempts.
type Dispatcher struct {
	router *Router
	cfg    DispatcherConfig
	rec    Recorder
	log    *slog.Logger
	lanes  map[string]*lane
	slots  chan struct{}
	rand   func() float64

	ctx    context.Context // ends when Close gives up draining
	cancel context.CancelFunc
	quit   chan struct{} // closed when workers should stop
	wg     sync.WaitGroup

	closing chan struct{} // closed by Close
	mu      sync.Mutex
	closed  bool
	active  int // messages queued or being processed, not waiting on a timer
	idle    chan struct{}
	idleSet bool
	timers  map[*job]Timer
}

// job is one message inside the dispatcher.
type job struct {
	item    Item
	cands   []string
	next    int // index in cands of the provider to try next
	attempt int // number of the current pass, from 1
	// unsure counts the Sends in a row to cands[next] that ended without a known result; while it
	// is above zero, the next pass starts with that provider rather than the first.
	unsure int
	// maybe lists the providers whose Send ended without a known result and which have not
	// answered for the message since: they may have taken it.
	maybe []string
	// saved is the MaybeSent last recorded for the message (Item.MaybeSent until an outcome
	// records another): what a restart would go by.
	saved []string
}

// restartsWith is the provider a restart would send j to first, going by what was recorded.
func (j *job) restartsWith() string {
	for _, name := range j.cands {
		if slices.Contains(j.saved, name) {
			return name
		}
	}
	return j.cands[0]
}

// resume restores what an earlier life of the dispatcher knew (Item.MaybeSent): the providers that
// may have taken the message, and that the first of them in the route gets it first, as the resend
// of a Send without a known result.
func (j *job) resume() {
	j.saved = j.item.MaybeSent
	for _, name := range j.item.MaybeSent {
		if slices.Contains(j.cands, name) && !slices.Contains(j.maybe, name) {
			j.maybe = append(j.maybe, name)
		}
	}
	for i, name := range j.cands {
		if slices.Contains(j.maybe, name) {
			j.next, j.unsure = i, 1
			return
		}
	}
}

// outcome returns an outcome of j at provider name, "" for the dispatcher itself.
func (j *job) outcome(name string) Outcome {
	o := Outcome{MessageID: j.item.Req.MessageID, Provider: name, Attempt: j.attempt}
	for _, m := range j.maybe {
		if m != name {
			o.AfterAmbiguous = true
			break
		}
	}
	return o
}

// NewDispatcher validates cfg and starts the workers of every provider of r.
func NewDispatcher(r *Router, cfg DispatcherConfig) (*Dispatcher, error) {
	if r == nil {
		return nil, &Error{Code: CodeInvalidConfig, Message: "a router is required"}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.QueueSize, 4096)
	def(&cfg.MaxBatch, 64)
	def(&cfg.Workers, 4)
	def(&cfg.MaxAttempts, 8)
	def(&cfg.MaxAmbiguous, 2)
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(5*time.Minute, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		router:  r,
		cfg:     cfg,
		rec:     cfg.Recorder,
		log:     cfg.Logger,
		lanes:   make(map[string]*lane, len(r.providers)),
		slots:   make(chan struct{}, cfg.QueueSize),
		rand:    rand.Float64,
		ctx:     ctx,
		cancel:  cancel,
		quit:    make(chan struct{}),
		closing: make(chan struct{}),
		idle:    make(chan struct{}),
		timers:  make(map[*job]Timer),
	}
	for name, m := range r.providers {
		ln := &lane{member: m, maxBatch: cfg.MaxBatch, wake: make(chan struct{}, 1)}
		if m.maxBatch > 0 && m.maxBatch < ln.maxBatch {
			ln.maxBatch = m.maxBatch
		}
		d.lanes[name] = ln
		for range cfg.Workers {
			d.wg.Go(func() { d.work(ln) })
		}
	}
	return d, nil
}

// Enqueue hands a message to the dispatcher. It blocks while the queue is full and returns an error
// with code "dispatch_queue_full" if ctx ends first, "dispatcher_closed" after Close, or "no_route"
// when no configured provider serves the item. Enqueue may call the Recorder itself when no provider
// can take the message right now.
func (d *Dispatcher) Enqueue(ctx context.Context, it Item) error {
	cands := d.router.candidates(it.Country, it.Providers)
	if len(cands) == 0 {
		return &Error{Code: CodeNoRoute, Message: fmt.Sprintf("no configured provider serves country %q", it.Country)}
	}
	select {
	case <-d.closing:
		return &Error{Code: CodeClosed, Message: "the dispatcher is closed"}
	default:
	}
	select {
	case d.slots <- struct{}{}:
	case <-d.closing:
		return &Error{Code: CodeClosed, Message: "the dispatcher is closed"}
	case <-ctx.Done():
		return &Error{Code: CodeQueueFull, Message: "the dispatch queue stayed full", Err: ctx.Err()}
	}
	j := &job{item: it, cands: cands, attempt: it.Attempt + 1}
	j.resume()
	// No retry is scheduled further ahead than MaxBackoff: a time beyond it is a wrong clock or a
	// damaged row, and must not hold the message (and its slot) for longer.
	wait := min(it.NotBefore.Sub(d.router.clock.Now()), d.cfg.MaxBackoff)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		<-d.slots
		return &Error{Code: CodeClosed, Message: "the dispatcher is closed"}
	}
	if wait > 0 {
		// It waits as a scheduled retry does: holding its slot, not active; fire counts the pass.
		j.attempt--
		d.timers[j] = d.router.clock.AfterFunc(wait, func() { d.fire(j) })
		d.mu.Unlock()
		return nil
	}
	d.active++
	d.mu.Unlock()

	var p plan
	d.place(j, &p)
	d.execute(&p)
	return nil
}

// Close stops taking messages and waits until every queued message has been sent or has failed.
// Messages waiting for a retry are dropped at once: their last outcome, with RetryAt set, was
// already recorded, so the caller's outbox still holds them as pending. If ctx ends first, sends in
// flight are cancelled, the remaining messages are dropped without an outcome, and Close returns an
// error with code "dispatch_drain_timeout". The workers have stopped when Close returns.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.closing)
	for j, t := range d.timers {
		if t.Stop() { // else fire is about to run and will drop j itself
			<-d.slots
			delete(d.timers, j)
		}
	}
	d.checkIdle()
	d.mu.Unlock()

	var err error
	select {
	case <-d.idle:
	case <-ctx.Done():
		d.cancel()
		<-d.idle
		err = &Error{Code: CodeDrainTimeout, Message: "messages still in flight were dropped", Err: ctx.Err()}
		d.log.Warn("dispatcher closed before draining", "code", CodeDrainTimeout)
	}
	d.cancel()
	close(d.quit)
	d.wg.Wait()
	return err
}

// checkIdle closes d.idle once closed and nothing is active; d.mu must be held.
func (d *Dispatcher) checkIdle() {
	if d.closed && d.active == 0 && !d.idleSet {
		d.idleSet = true
		close(d.idle)
	}
}

// plan gathers what processing a batch decided, to be carried out after recording its outcomes.
type plan struct {
	outs    []Outcome
	pushes  []*job
	retries []retry
	done    int // messages that left the dispatcher: release their slots
}

type retry struct {
	j     *job
	delay time.Duration
}

// place decides where j goes from j.next: the first provider whose breaker is ready, else another
// pass later, else a final failure. A provider that is skipped cannot take the message, so the
// message moves on from it even when its last Send had no known result.
func (d *Dispatcher) place(j *job, p *plan) {
	for ; j.next < len(j.cands); j.next++ {
		if name := j.cands[j.next]; d.lanes[name].breaker.ready() {
			if name != j.restartsWith() {
				o := j.outcome("")
				o.Code, o.Handover = CodeHandover, name
				o.Message = "sending to " + name + " next"
				o.MaybeSent = slices.Clone(j.maybe)
				if !slices.Contains(o.MaybeSent, name) {
					o.MaybeSent = append(o.MaybeSent, name)
				}
				j.saved = o.MaybeSent
				p.outs = append(p.outs, o)
			}
			p.pushes = append(p.pushes, j)
			return
		}
		j.unsure = 0
	}
	d.endPass(j, p, "")
}

// endPass ends j's pass without a provider: another pass later, else a final failure. again names
// the provider the next pass starts with when its last Send had no known result.
func (d *Dispatcher) endPass(j *job, p *plan, again string) {
	o := j.outcome("")
	o.Code = CodeNoProviderAvailable
	if j.attempt >= d.cfg.MaxAttempts {
		o.Final = true
		o.Message = fmt.Sprintf("no provider took the message in %d attempts", j.attempt)
		if len(j.maybe) > 0 {
			o.Message = fmt.Sprintf("no provider confirmed the message in %d attempts; %s may have taken it",
				j.attempt, strings.Join(j.maybe, ", "))
		}
		p.outs = append(p.outs, o)
		p.done++
		return
	}
	delay := backoff(j.attempt, d.cfg.MinBackoff, d.cfg.MaxBackoff, d.rand())
	o.RetryAt = d.router.clock.Now().Add(delay)
	o.MaybeSent = slices.Clone(j.maybe)
	j.saved = o.MaybeSent
	o.Message = fmt.Sprintf("no provider took the message; retrying in %s", delay.Round(time.Millisecond))
	if again != "" {
		o.Message = fmt.Sprintf("provider %s gave no known result; sending to it again in %s", again, delay.Round(time.Millisecond))
	}
	p.outs = append(p.outs, o)
	p.retries = append(p.retries, retry{j, delay})
}

// ambiguous handles a Send of j to j.cands[j.next] that ended without a known result. The provider
// may have taken the message, and only a resend to it with the same idempotency key is sure not to
// deliver it twice: so the pass ends here and the next one starts with this provider, until
// MaxAmbiguous such Sends in a row make the message move on. The resend waits for the backoff
// rather than going at once because what causes an unknown result, a plugin restarting after a
// crash or an overloaded provider, rarely clears within milliseconds; an immediate resend would
// mostly use up MaxAmbiguous and fail over, the very duplicate this avoids.
func (d *Dispatcher) ambiguous(j *job, p *plan) {
	name := j.cands[j.next]
	if !slices.Contains(j.maybe, name) {
		j.maybe = append(j.maybe, name)
	}
	j.unsure++
	if j.unsure >= d.cfg.MaxAmbiguous {
		j.unsure = 0
		j.next++
		d.place(j, p)
		return
	}
	d.endPass(j, p, name)
}

// notSent handles a Send of j to j.cands[j.next] whose error says the provider took no message of
// the batch: like a retryable refusal, it moves the message on to the next provider at once. The
// provider did not answer for the message, so an earlier Send to it without a known result stays
// unsettled and later outcomes still carry AfterAmbiguous; and since it cannot take the message now,
// the message stops waiting for it, as when its breaker is open.
func (d *Dispatcher) notSent(j *job, p *plan) {
	j.unsure = 0
	j.next++
	d.place(j, p)
}

// answered notes that the provider named answered for j: if its earlier Send had no known result,
// the answer to the resend under the same idempotency key settles it.
func (j *job) answered(name string) {
	j.unsure = 0
	if i := slices.Index(j.maybe, name); i >= 0 {
		j.maybe = slices.Delete(j.maybe, i, i+1)
	}
}

// execute records p's outcomes, then moves its messages on, so that a message's outcomes are
// recorded in order.
func (d *Dispatcher) execute(p *plan) {
	if len(p.outs) > 0 {
		d.rec.Sent(d.ctx, p.outs)
	}
	for _, j := range p.pushes {
		d.lanes[j.cands[j.next]].push(j)
	}
	if len(p.retries) == 0 && p.done == 0 {
		return
	}
	d.mu.Lock()
	for _, r := range p.retries {
		if d.closed {
			<-d.slots // dropped: the recorded RetryAt keeps it pending for the outbox
			continue
		}
		j := r.j
		d.timers[j] = d.router.clock.AfterFunc(r.delay, func() { d.fire(j) })
	}
	for range p.done {
		<-d.slots
	}
	d.active -= len(p.retries) + p.done
	d.checkIdle()
	d.mu.Unlock()
}

// abandon drops messages without an outcome, when Close gave up draining.
func (d *Dispatcher) abandon(n int) {
	d.mu.Lock()
	for range n {
		<-d.slots
	}
	d.active -= n
	d.checkIdle()
	d.mu.Unlock()
}

// fire starts another pass for j when its backoff has passed.
func (d *Dispatcher) fire(j *job) {
	d.mu.Lock()
	delete(d.timers, j)
	if d.closed {
		d.mu.Unlock()
		<-d.slots
		return
	}
	d.active++
	d.mu.Unlock()
	j.attempt++
	if j.unsure == 0 {
		j.next = 0
	}
	var p plan
	d.place(j, &p)
	d.execute(&p)
}

// work is one worker of a provider: it sends whatever is queued, in batches.
func (d *Dispatcher) work(ln *lane) {
	for {
		batch := ln.take()
		if len(batch) == 0 {
			select {
			case <-ln.wake:
				continue
			case <-d.quit:
				return
			}
		}
		d.send(ln, batch)
	}
}

// send hands one batch to the lane's provider and works out what happens to each message.
func (d *Dispatcher) send(ln *lane, batch []*job) {
	if d.ctx.Err() != nil {
		d.abandon(len(batch))
		return
	}
	var p plan
	gen, ok := ln.breaker.allow()
	if !ok { // the breaker opened after these messages were queued: move them on untried
		for _, j := range batch {
			j.unsure = 0
			j.next++
			d.place(j, &p)
		}
		d.execute(&p)
		return
	}
	reqs := make([]provider.SendRequest, len(batch))
	for i, j := range batch {
		reqs[i] = j.item.Req
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.router.timeout)
	res, err := ln.sender.Send(ctx, reqs)
	cancel()
	if d.ctx.Err() != nil {
		d.abandon(len(batch)) // outcome unknown; the provider dedups a later resend by idempotency key
		return
	}
	code := ""
	switch {
	case err != nil && nothingSent(err):
		code = CodeProviderNotSent
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		code = CodeProviderTimeout
	case err != nil:
		code = CodeProviderError
	case len(res) != len(reqs):
		code, err = CodeProviderProtocol, fmt.Errorf("%d results for %d requests", len(res), len(reqs))
	default:
		for i := range res {
			if res[i].MessageID != "" && res[i].MessageID != reqs[i].MessageID {
				code, err = CodeProviderProtocol, fmt.Errorf("result %d is for another message", i)
				break
			}
		}
	}
	if err != nil {
		// Unless the error says nothing was sent, the provider may have taken any message of the batch.
		next, what := d.ambiguous, "provider send failed"
		if code == CodeProviderNotSent {
			next, what = d.notSent, "provider took no message of the batch"
		}
		ln.breaker.done(gen, false)
		d.log.Warn(what, "provider", ln.name, "code", code, "messages", len(batch))
		for _, j := range batch {
			o := j.outcome(ln.name)
			o.Code, o.Message = code, err.Error()
			p.outs = append(p.outs, o)
			next(j, &p)
		}
		d.execute(&p)
		return
	}
	healthy := false
	for i, r := range res {
		j := batch[i]
		o := j.outcome(ln.name)
		o.ProviderMessageID, o.Accepted, o.Code, o.Message = r.ProviderMessageID, r.Accepted, r.ErrorCode, r.ErrorMessage
		j.answered(ln.name)
		if !r.Accepted && o.Code == "" {
			o.Code = CodeProviderRefused
		}
		if r.Accepted || !r.Retryable {
			healthy = true // the provider answered for itself: it is up
			o.Final = true
			p.outs = append(p.outs, o)
			p.done++
			continue
		}
		p.outs = append(p.outs, o)
		j.next++
		d.place(j, &p)
	}
	ln.breaker.done(gen, healthy)
	d.execute(&p)
}

// lane is one provider's queue.
type lane struct {
	*member
	maxBatch int
	wake     chan struct{} // holds a token while work may be waiting

	mu   sync.Mutex
	q    []*job
	head int
}

// push queues j and wakes a worker.
func (ln *lane) push(j *job) {
	ln.mu.Lock()
	ln.q = append(ln.q, j)
	ln.mu.Unlock()
	ln.signal()
}

func (ln *lane) signal() {
	select {
	case ln.wake <- struct{}{}:
	default:
	}
}

// take removes up to maxBatch queued jobs; if more remain it wakes another worker for them.
func (ln *lane) take() []*job {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	n := min(len(ln.q)-ln.head, ln.maxBatch)
	if n == 0 {
		return nil
	}
	batch := make([]*job, n)
	copy(batch, ln.q[ln.head:])
	clear(ln.q[ln.head : ln.head+n])
	ln.head += n
	switch {
	case ln.head == len(ln.q):
		ln.q, ln.head = ln.q[:0], 0
	case ln.head > len(ln.q)/2:
		rest := copy(ln.q, ln.q[ln.head:])
		clear(ln.q[rest:])
		ln.q, ln.head = ln.q[:rest], 0
	}
	if ln.head < len(ln.q) {
		ln.signal()
	}
	return batch
}

// backoff returns the delay before pass attempt+1: min doubled attempt-1 times, capped at max, then
// jittered by r in [0, 1] to between half of it and all of it.
func backoff(attempt int, minD, maxD time.Duration, r float64) time.Duration {
	d := maxD
	if attempt >= 1 && attempt <= 62 {
		if v := minD << (attempt - 1); v > 0 && v>>(attempt-1) == minD && v < maxD {
			d = v
		}
	}
	return d/2 + time.Duration(r*float64(d-d/2))
}
