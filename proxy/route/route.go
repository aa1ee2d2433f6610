// Package route chooses providers for a message and hands messages to them: a Router knows the
// providers, each country's default order and each provider's circuit breaker; a Dispatcher takes
// messages through a bounded queue, sends them to providers in batches, fails over from one provider
// to the next, retries with backoff and reports every outcome to a Recorder.
//
// Data only flows down: route knows nothing of the store or the proxy; the proxy gives it items and
// learns what happened through the Recorder.
package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// Stable error and outcome codes.
const (
	// CodeInvalidConfig marks a Config or DispatcherConfig that cannot be used.
	CodeInvalidConfig = "invalid_config"
	// CodeUnknownProvider marks a country order that names a provider the Router does not have.
	CodeUnknownProvider = "unknown_provider"
	// CodeNoRoute is returned by Enqueue when neither the item nor its country names a known provider.
	CodeNoRoute = "no_route"
	// CodeQueueFull is returned by Enqueue when its context ends while the queue is full.
	CodeQueueFull = "dispatch_queue_full"
	// CodeClosed is returned by Enqueue once Close has been called.
	CodeClosed = "dispatcher_closed"
	// CodeDrainTimeout is returned by Close when its context ended before every message was done.
	CodeDrainTimeout = "dispatch_drain_timeout"
	// CodeNoProviderAvailable is the outcome of a pass over the providers where none took the message.
	CodeNoProviderAvailable = "no_provider_available"
	// CodeProviderError is the outcome of a Send that returned an error.
	CodeProviderError = "provider_error"
	// CodeProviderTimeout is the outcome of a Send that did not answer within Config.Timeout.
	CodeProviderTimeout = "provider_timeout"
	// CodeProviderNotSent is the outcome of a Send whose error says the provider certainly took no
	// message of the batch, e.g. a plugin that is restarting; see NotSentError.
	CodeProviderNotSent = "provider_not_sent"
	// CodeProviderProtocol is the outcome of a Send whose results do not match its requests.
	CodeProviderProtocol = "provider_protocol_error"
	// CodeProviderRefused is the outcome of a refusal that carried no code of its own.
	CodeProviderRefused = "provider_refused"
	// CodeHandover marks an outcome that records where the dispatcher sends a message next within
	// a pass (Outcome.Handover).
	CodeHandover = "handover"
)

// Error is an error with a stable code.
type Error struct {
	// Code is stable across releases, e.g. "dispatch_queue_full".
	Code string
	// Message is a sentence for a person.
	Message string
	// Err is the underlying cause, if any.
	Err error
}

// CodeOf returns the code of an *Error in err's chain, or "" when there is none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Error returns the code and the sentence.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Sender is the part of a provider the router uses. Send hands over a batch; results are in request
// order, and an error means no result is known for any request of the batch, unless it is a
// NotSentError that says the provider took none of them. Send must honour ctx.
type Sender interface {
	Send(ctx context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error)
}

// Every provider plugin is a Sender.
var _ Sender = provider.Provider(nil)

// NotSentError is an optional ability of a Send error: NothingSent reports true when the provider
// certainly took no message of the batch, e.g. because the call never reached it. Such an error
// leaves no doubt, so the messages move on to the next provider at once, as after a retryable
// refusal; any other Send error may hide an acceptance. The plugin host's errors have it.
type NotSentError interface {
	error
	NothingSent() bool
}

// nothingSent reports whether err, or an error it wraps, is a NotSentError that says nothing was
// sent.
func nothingSent(err error) bool {
	var ns NotSentError
	return errors.As(err, &ns) && ns.NothingSent()
}

// Timer is a pending call made by Clock.AfterFunc.
type Timer interface {
	// Stop prevents the call; it reports false if the call already ran or started.
	Stop() bool
}

// Clock is the time source of a Router and its Dispatcher; tests inject a fake one.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

type systemClock struct{}

func (systemClock) Now() time.Time                            { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// BreakerConfig configures each provider's circuit breaker.
type BreakerConfig struct {
	// ConsecutiveFailures is how many failed sends in a row open the breaker; 0 means 5.
	ConsecutiveFailures int
	// OpenFor is how long an open breaker refuses before it lets one probe through; 0 means 30s.
	OpenFor time.Duration
}

// Config describes a Router.
type Config struct {
	// Providers maps a provider's name to its Sender.
	Providers map[string]Sender
	// Countries maps an ISO 3166-1 alpha-2 code to the default provider order for that country.
	// The key "*" is the order for countries not listed.
	Countries map[string][]string
	// MaxBatch optionally caps the batch size per provider (Capabilities.MaxBatch); 0 means no cap.
	MaxBatch map[string]int
	// Timeout bounds each Send call; 0 means 10s.
	Timeout time.Duration
	// Breaker configures every provider's circuit breaker.
	Breaker BreakerConfig
	// Clock is the time source; nil means the system clock.
	Clock Clock
	// Logger receives breaker state changes, never message content; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports whether the configuration can be used; errors carry code "invalid_config" or
// "unknown_provider".
func (c Config) Validate() error {
	if len(c.Providers) == 0 {
		return &Error{Code: CodeInvalidConfig, Message: "no providers configured"}
	}
	for name, s := range c.Providers {
		if name == "" || s == nil {
			return &Error{Code: CodeInvalidConfig, Message: fmt.Sprintf("provider %q has no name or no sender", name)}
		}
	}
	for country, order := range c.Countries {
		for _, name := range order {
			if _, ok := c.Providers[name]; !ok {
				return &Error{Code: CodeUnknownProvider, Message: fmt.Sprintf("country %s names provider %q, which is not configured", country, name)}
			}
		}
	}
	for name, n := range c.MaxBatch {
		if n < 0 {
			return &Error{Code: CodeInvalidConfig, Message: fmt.Sprintf("provider %q: max batch must not be negative", name)}
		}
	}
	switch {
	case c.Timeout < 0:
		return &Error{Code: CodeInvalidConfig, Message: "timeout must not be negative"}
	case c.Breaker.ConsecutiveFailures < 0:
		return &Error{Code: CodeInvalidConfig, Message: "breaker consecutive failures must not be negative"}
	case c.Breaker.OpenFor < 0:
		return &Error{Code: CodeInvalidConfig, Message: "breaker open time must not be negative"}
	}
	return nil
}

// Router knows the providers, each country's default order and each provider's circuit breaker.
// It is safe for concurrent use and does not change after New.
type Router struct {
	providers map[string]*member
	countries map[string][]string
	timeout   time.Duration
	clock     Clock
}

// member is one provider as the router holds it.
type member struct {
	name     string
	sender   Sender
	maxBatch int
	breaker  *breaker
}

// New validates cfg and returns a Router.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Breaker.ConsecutiveFailures == 0 {
		cfg.Breaker.ConsecutiveFailures = 5
	}
	if cfg.Breaker.OpenFor == 0 {
		cfg.Breaker.OpenFor = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Router{
		providers: make(map[string]*member, len(cfg.Providers)),
		countries: make(map[string][]string, len(cfg.Countries)),
		timeout:   cfg.Timeout,
		clock:     cfg.Clock,
	}
	for name, s := range cfg.Providers {
		r.providers[name] = &member{
			name:     name,
			sender:   s,
			maxBatch: cfg.MaxBatch[name],
			breaker:  newBreaker(name, cfg.Breaker, cfg.Clock, cfg.Logger),
		}
	}
	for country, order := range cfg.Countries {
		r.countries[strings.ToUpper(country)] = dedupe(order)
	}
	return r, nil
}

// Candidates returns the providers to try for a message to country, in order: the decision's route
// when it names any configured provider (names the router does not know are skipped), else the
// country's default order, else the "*" order. It returns nil when there is none. Breaker state is
// not considered.
func (r *Router) Candidates(country string, route []string) []string {
	return slices.Clone(r.candidates(country, route))
}

// candidates is Candidates without the copy; the result must not be modified.
func (r *Router) candidates(country string, route []string) []string {
	if len(route) > 0 {
		known := true
		for i, name := range route {
			if _, ok := r.providers[name]; !ok || slices.Contains(route[:i], name) {
				known = false
				break
			}
		}
		if known {
			return route
		}
		var out []string
		for _, name := range route {
			if _, ok := r.providers[name]; ok && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	if order, ok := r.countries[country]; ok {
		return order
	}
	if order, ok := r.countries[strings.ToUpper(country)]; ok {
		return order
	}
	return r.countries["*"]
}

// State returns the state of a provider's circuit breaker; an unknown provider reads as open.
func (r *Router) State(name string) State {
	m, ok := r.providers[name]
	if !ok {
		return StateOpen
	}
	return m.breaker.state()
}

func dedupe(order []string) []string {
	out := make([]string, 0, len(order))
	for _, name := range order {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}
