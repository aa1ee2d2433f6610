package route

import (
	"log/slog"
	"sync"
	"time"
)

// State is the state of a provider's circuit breaker.
type State int

// The states of a circuit breaker.
const (
	// StateClosed lets every send through.
	StateClosed State = iota
	// StateOpen refuses sends until BreakerConfig.OpenFor has passed.
	StateOpen
	// StateHalfOpen lets a single probe batch through; its result closes or reopens the breaker.
	StateHalfOpen
)

// String returns "closed", "open" or "half_open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half_open"
	}
	return "unknown"
}

// breaker is a consecutive-failure circuit breaker. It is hand-written rather than taken from
// sony/gobreaker so that it reads an injected Clock (tests move time instead of sleeping), counts
// one batch as one call, and lets the router peek at readiness without taking the half-open probe.
// A generation number discards results of sends that started before the last state change.
type breaker struct {
	name  string
	cfg   BreakerConfig
	clock Clock
	log   *slog.Logger

	mu       sync.Mutex
	st       State
	gen      uint64
	failures int
	openedAt time.Time
	probing  bool
}

func newBreaker(name string, cfg BreakerConfig, clock Clock, log *slog.Logger) *breaker {
	return &breaker{name: name, cfg: cfg, clock: clock, log: log}
}

// state returns the current state, reporting an open breaker whose time is up as half-open.
func (b *breaker) state() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st == StateOpen && !b.clock.Now().Before(b.openedAt.Add(b.cfg.OpenFor)) {
		return StateHalfOpen
	}
	return b.st
}

// ready reports whether a send would be let through now, without taking the half-open probe.
func (b *breaker) ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.st {
	case StateOpen:
		return !b.clock.Now().Before(b.openedAt.Add(b.cfg.OpenFor))
	case StateHalfOpen:
		return !b.probing
	}
	return true
}

// allow reports whether a send may start now and returns the generation to hand to done. In the
// half-open state it admits one probe at a time.
func (b *breaker) allow() (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.st {
	case StateOpen:
		if b.clock.Now().Before(b.openedAt.Add(b.cfg.OpenFor)) {
			return 0, false
		}
		b.setState(StateHalfOpen)
		b.probing = true
	case StateHalfOpen:
		if b.probing {
			return 0, false
		}
		b.probing = true
	}
	return b.gen, true
}

// done records the result of a send allow admitted.
func (b *breaker) done(gen uint64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen != b.gen {
		return // the breaker changed state while this send was in flight
	}
	switch {
	case ok && b.st == StateHalfOpen:
		b.setState(StateClosed)
	case ok:
		b.failures = 0
	case b.st == StateHalfOpen:
		b.setState(StateOpen)
	default:
		b.failures++
		if b.failures >= b.cfg.ConsecutiveFailures {
			b.setState(StateOpen)
		}
	}
}

// setState moves to st; b.mu must be held.
func (b *breaker) setState(st State) {
	if st == StateOpen {
		b.openedAt = b.clock.Now()
	}
	b.st, b.failures, b.probing = st, 0, false
	b.gen++
	b.log.Info("provider circuit breaker changed state", "provider", b.name, "state", st.String())
}
