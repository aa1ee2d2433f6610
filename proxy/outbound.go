package proxy

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/route"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// outbound is everything after the record step: the provider plugins, the router and dispatcher, the
// recorder of their outcomes, the receipt streams and the outbox recovery.
type outbound struct {
	p          *Proxy
	plugins    map[string]*provider.Plugin
	router     *route.Router
	dispatcher *route.Dispatcher

	mu       sync.Mutex
	inFlight map[string]struct{} // messages the dispatcher holds
	// finished collects the messages the dispatcher finishes while a sweep runs (nil otherwise): a
	// sweep's page may list a row that was in flight when read and is finished by the time it is
	// checked, and such a row must not be handed over again.
	finished map[string]struct{}
	backlog  atomic.Bool // the outbox holds messages nobody dispatches
	// umu guards unmatched, which holds when each receipt naming a message not recorded as sent
	// was first refused. It is not mu, which Submit's hand-over takes.
	umu       sync.Mutex
	unmatched map[string]time.Time
}

// unmatchedFor is how long a receipt whose message is not recorded as sent is refused, so that the
// provider delivers it again, before it is acknowledged and dropped. A "sent" record is written
// moments after the provider's answer; a receipt still unmatched after this long belongs to a Send
// whose answer was lost (a timeout, a crash) or to a message this proxy never sent, and refusing
// it for ever would only have the provider redeliver it for ever. maxUnmatched bounds the memory.
const (
	unmatchedFor = 10 * time.Minute
	maxUnmatched = 100_000
)

// dropUnmatched reports whether a receipt whose message is not recorded as sent has been refused
// for unmatchedFor and is to be acknowledged now.
func (o *outbound) dropUnmatched(key string, now time.Time) bool {
	o.umu.Lock()
	defer o.umu.Unlock()
	first, seen := o.unmatched[key]
	if !seen {
		if o.unmatched == nil {
			o.unmatched = map[string]time.Time{}
		}
		if len(o.unmatched) >= maxUnmatched {
			for k, t := range o.unmatched {
				if now.Sub(t) >= unmatchedFor {
					delete(o.unmatched, k)
				}
			}
			if len(o.unmatched) >= maxUnmatched {
				clear(o.unmatched)
			}
		}
		o.unmatched[key] = now
		return false
	}
	if now.Sub(first) < unmatchedFor {
		return false
	}
	delete(o.unmatched, key)
	return true
}

// newOutbound starts every provider plugin of the region and builds the dispatcher over them.
func newOutbound(ctx context.Context, p *Proxy, region *config.Region, command func(string) (string, []string)) (_ *outbound, err error) {
	o := &outbound{p: p, plugins: map[string]*provider.Plugin{}, inFlight: map[string]struct{}{}}
	defer func() {
		if err != nil {
			o.closePlugins()
		}
	}()
	senders := map[string]route.Sender{}
	maxBatch := map[string]int{}
	for name, spec := range region.Providers {
		override := p.cfg.Providers[name]
		if override.Disabled {
			continue
		}
		plug, err := launch(ctx, p, name, spec, override, command)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", name, err)
		}
		o.plugins[name] = plug
		caps, err := plug.Capabilities(ctx)
		if err != nil {
			return nil, fmt.Errorf("provider %s: capabilities: %w", name, err)
		}
		senders[name] = plug
		maxBatch[name] = caps.MaxBatch
	}
	countries := map[string][]string{}
	for code, c := range region.Countries {
		countries[code] = p.usableIn(c.Providers, senders)
	}
	o.router, err = route.New(route.Config{
		Providers: senders,
		Countries: countries,
		MaxBatch:  maxBatch,
		Timeout:   p.cfg.Dispatch.Timeout.D(),
		Breaker: route.BreakerConfig{
			ConsecutiveFailures: p.cfg.Dispatch.BreakerFailures,
			OpenFor:             p.cfg.Dispatch.BreakerOpenFor.D(),
		},
		Logger: p.log,
	})
	if err != nil {
		return nil, err
	}
	o.dispatcher, err = route.NewDispatcher(o.router, route.DispatcherConfig{
		Recorder:    o,
		MaxAttempts: p.cfg.Dispatch.MaxAttempts,
		Logger:      p.log,
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// launch starts one provider plugin: a built-in one by re-executing smsproxy, a third-party one from
// its path, checked against its checksum.
func launch(ctx context.Context, p *Proxy, name string, spec config.ProviderSpec, override config.ProviderOverride, command func(string) (string, []string)) (*provider.Plugin, error) {
	conf := maps.Clone(spec.Config)
	if conf == nil {
		conf = map[string]any{}
	}
	maps.Copy(conf, override.Config)
	if name == "simulator" {
		if _, ok := conf["state_dir"]; !ok {
			conf["state_dir"] = p.cfg.DataDir + "/simulator"
		}
	}
	raw, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	path, args := spec.Path, []string(nil)
	var sum []byte
	if spec.Plugin != "" {
		if command == nil {
			return nil, errors.New("no way to run built-in plugins")
		}
		path, args = command(spec.Plugin)
	} else if sum, err = hex.DecodeString(spec.SHA256); err != nil {
		return nil, fmt.Errorf("sha256: %w", err)
	}
	return provider.Launch(ctx, provider.LaunchConfig{
		Name: name,
		Cmd: func() *exec.Cmd {
			cmd := exec.Command(path, args...)
			// The plugin dies with the proxy, even a SIGKILLed one, so that no orphan keeps sending.
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			return cmd
		},
		Checksum: sum,
		PinDir:   p.cfg.DataDir + "/plugins",
		Config:   raw,
		Logger:   p.log,
	})
}

// usableIn keeps the providers that run in this proxy, in order.
func (p *Proxy) usableIn(names []string, running map[string]route.Sender) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if _, ok := running[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// usable keeps the decision's providers that run in this proxy; it reads the plugin set, which is
// fixed after New.
func (p *Proxy) usable(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if _, ok := p.out.plugins[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// hold marks a message as the dispatch path's before its outbox row is written: a sweep that reads
// the row between the commit and dispatch leaves it alone, so the message is handed over once.
// Every hold ends with dispatch (the row was written) or release (it was not).
func (o *outbound) hold(id string) {
	o.mu.Lock()
	o.inFlight[id] = struct{}{}
	o.mu.Unlock()
}

// release ends a hold whose message was not accepted: no outbox row names it.
func (o *outbound) release(id string) {
	o.mu.Lock()
	delete(o.inFlight, id)
	o.mu.Unlock()
}

// accept records a message with its outbox row, holding it for dispatch from before the row exists
// (see hold) until dispatch, or releasing it when nothing was written for it.
func (p *Proxy) accept(ctx context.Context, a store.Accepted) (store.AcceptResult, error) {
	p.out.hold(a.ID)
	acc, err := p.store.Accept(ctx, a)
	if err != nil || acc.Duplicate {
		p.out.release(a.ID)
	}
	return acc, err
}

// dispatch hands an accepted message, held since before its commit, to the dispatcher. When the
// dispatcher cannot take it now, the message stays in the outbox and the sweeper hands it over later.
func (p *Proxy) dispatch(item route.Item) {
	o := p.out
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := o.dispatcher.Enqueue(ctx, item); err != nil {
		o.done(item.Req.MessageID)
		o.backlog.Store(true)
	}
}

func (o *outbound) done(id string) {
	o.mu.Lock()
	delete(o.inFlight, id)
	if o.finished != nil {
		o.finished[id] = struct{}{}
	}
	o.mu.Unlock()
}

// Sent records the dispatcher's outcomes: one grouped store write for the accepted ones, one for the
// final failures, and the retries scheduled.
func (o *outbound) Sent(ctx context.Context, outcomes []route.Outcome) {
	var sent []store.Sent
	var failed []store.Failed
	for _, oc := range outcomes {
		switch {
		case oc.Accepted:
			sent = append(sent, store.Sent{MessageID: oc.MessageID, Provider: oc.Provider, ProviderMessageID: oc.ProviderMessageID,
				Attempts: oc.Attempt, PossibleDuplicate: oc.AfterAmbiguous})
		case oc.Final:
			failed = append(failed, store.Failed{MessageID: oc.MessageID, Provider: oc.Provider, Code: oc.Code,
				Attempts: oc.Attempt, MaybeDelivered: oc.AfterAmbiguous})
		case oc.Handover != "":
			// Before the Send to oc.Handover: a restart must resend to it, not to the route's first
			// provider, which could deliver the message a second time. The pass is not over, so the
			// attempts recorded are the passes before it.
			if err := o.p.store.RecordRetry(ctx, oc.MessageID, oc.Attempt-1, time.Now(), oc.Code, oc.MaybeSent); err != nil {
				o.p.log.Error("cannot record a handover to another provider", "provider", oc.Handover, "err", err)
			}
		case !oc.RetryAt.IsZero():
			if err := o.p.store.RecordRetry(ctx, oc.MessageID, oc.Attempt, oc.RetryAt, oc.Code, oc.MaybeSent); err != nil {
				o.p.log.Error("cannot record a retry", "err", err)
			}
		}
	}
	if len(sent) > 0 {
		if err := o.p.store.RecordSent(ctx, sent); err != nil {
			// The outbox still holds them; the provider recognises the idempotency key when they go again.
			o.p.log.Error("cannot record sent messages; they stay in the outbox", "err", err, "count", len(sent))
			o.backlog.Store(true)
		}
		for _, s := range sent {
			o.done(s.MessageID)
		}
	}
	if len(failed) > 0 {
		if err := o.p.store.RecordFailed(ctx, failed); err != nil {
			o.p.log.Error("cannot record failed messages; they stay in the outbox", "err", err, "count", len(failed))
			o.backlog.Store(true)
		}
		for _, f := range failed {
			o.done(f.MessageID)
		}
	}
}

// start runs the receipt stream of every plugin and the outbox sweeper until ctx ends. The first sweep
// hands over what a crash or a stop left in the outbox, in the background: start-up does not wait for
// a long outbox.
func (o *outbound) start(ctx context.Context, wg *sync.WaitGroup) {
	o.backlog.Store(true)
	for name, plug := range o.plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := plug.Receive(ctx, func(ev provider.Event) error { return o.event(ctx, name, ev) })
			if err != nil && ctx.Err() == nil {
				o.p.log.Error("receive stream stopped", "provider", name, "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.sweep(ctx)
	}()
}

// event applies one receipt. It returns an error, so that the provider delivers the receipt again,
// when the receipt cannot be stored or names a message whose hand-over is not recorded yet.
func (o *outbound) event(ctx context.Context, name string, ev provider.Event) error {
	switch ev.Kind {
	case provider.EventReceipt:
		_, err := o.p.store.ApplyReceipt(ctx, store.Receipt{
			Provider: name, ProviderMessageID: ev.ProviderMessageID, Status: ev.Status, Code: ev.ErrorCode, At: ev.At,
		})
		if errors.Is(err, store.ErrNotFound) {
			if o.dropUnmatched(name+"\x00"+ev.ProviderMessageID, o.p.now()) {
				o.p.log.Warn("receipt for no message recorded as sent, refused for "+unmatchedFor.String()+"; dropped",
					"provider", name, "provider_message_id", ev.ProviderMessageID, "status", ev.Status)
				return nil
			}
			return fmt.Errorf("receipt for a message not yet recorded as sent: %w", err)
		}
		return err
	case provider.EventInbound:
		// Replies are handled by the two-way work; until then they are acknowledged and counted.
		o.p.log.Info("inbound message received; replies are not handled yet", "provider", name)
		return nil
	}
	o.p.log.Warn("unknown provider event ignored", "provider", name, "kind", string(ev.Kind))
	return nil
}

// sweep hands outbox rows nobody dispatches to the dispatcher: at start (what a crash or a stop left)
// and whenever the dispatcher could not take a message.
func (o *outbound) sweep(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if o.backlog.Swap(false) {
			if err := o.drainOutbox(ctx); err != nil && ctx.Err() == nil {
				o.p.log.Error("outbox sweep failed; will try again", "err", err)
				o.backlog.Store(true)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (o *outbound) drainOutbox(ctx context.Context) error {
	o.mu.Lock()
	o.finished = map[string]struct{}{}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.finished = nil
		o.mu.Unlock()
	}()
	after := ""
	handed := 0
	for {
		items, err := o.p.store.PendingOutbox(ctx, 256, after)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			after = it.MessageID
			o.mu.Lock()
			_, busy := o.inFlight[it.MessageID]
			_, finished := o.finished[it.MessageID]
			if !busy && !finished {
				o.inFlight[it.MessageID] = struct{}{}
			}
			o.mu.Unlock()
			if busy || finished {
				continue
			}
			var pl outboxPayload
			if err := json.Unmarshal(it.Payload, &pl); err != nil {
				o.done(it.MessageID)
				o.p.log.Error("unreadable outbox row; failing the message", "message_id", it.MessageID, "err", err)
				_ = o.p.store.RecordFailed(ctx, []store.Failed{{MessageID: it.MessageID, Code: "outbox_corrupt", Attempts: it.Attempts}})
				continue
			}
			item := route.Item{Req: pl.Req, Country: pl.Req.Country, Providers: o.p.usable(pl.Providers), Attempt: it.Attempts,
				MaybeSent: it.MaybeSent}
			if it.Attempts > 0 {
				// A retry keeps the time its last pass chose. A message never tried goes now,
				// whatever the clock of the replica that accepted it said.
				item.NotBefore = it.NextAttemptAt
			}
			if err := o.dispatcher.Enqueue(ctx, item); err != nil {
				o.done(it.MessageID)
				if route.CodeOf(err) != route.CodeNoRoute {
					return err // closed or full: the next sweep goes on from the start
				}
				// No provider serves it (a provider was disabled or removed since): it can never go
				// out, so it fails now instead of blocking the rows after it.
				o.p.log.Warn("outbox row has no route; failing the message", "message_id", it.MessageID, "country", pl.Req.Country)
				if ferr := o.p.store.RecordFailed(ctx, []store.Failed{{MessageID: it.MessageID, Code: route.CodeNoRoute, Attempts: it.Attempts}}); ferr != nil {
					return ferr
				}
				continue
			}
			handed++
		}
	}
	if handed > 0 {
		o.p.log.Info("outbox rows handed to the dispatcher", "count", handed)
	}
	return nil
}

// close drains the dispatcher until ctx ends and stops the plugins. What is not handed over stays in
// the outbox for the next start.
func (o *outbound) close(ctx context.Context) {
	if o.dispatcher != nil {
		if err := o.dispatcher.Close(ctx); err != nil {
			o.p.log.Warn("dispatcher did not drain before the shutdown timeout; the outbox keeps the rest", "err", err)
		}
	}
	o.closePlugins()
}

func (o *outbound) closePlugins() {
	for name, plug := range o.plugins {
		if err := plug.Close(); err != nil {
			o.p.log.Warn("plugin did not stop cleanly", "provider", name, "err", err)
		}
	}
}
