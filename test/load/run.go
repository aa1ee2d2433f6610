package load

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Config is one run of the load generator.
type Config struct {
	// Label names the run in reports ("proxy", "bare").
	Label string
	// URL is the endpoint, e.g. http://127.0.0.1:8080/v1/messages; http and https are supported.
	URL string
	// APIKey is sent as "Authorization: Bearer <APIKey>" when not empty.
	APIKey string
	// Concurrency is the number of connections and of sending goroutines.
	Concurrency int
	// Rate is the open-loop target in requests per second; 0 sends flat out (closed loop).
	Rate float64
	// Duration is how long the measured part lasts; 0 means until Requests are done.
	Duration time.Duration
	// Requests bounds the number of measured requests; 0 means until Duration is over.
	Requests int64
	// Warmup is sent before the measured part and left out of every figure.
	Warmup time.Duration
	// Timeout bounds each request, including the wait for a free connection.
	Timeout time.Duration
	// Grace is how long after the end of a fixed-rate run overdue requests are still sent; 0 means
	// SendGrace.
	Grace time.Duration
	// Idempotency sends a unique Idempotency-Key header with every request.
	Idempotency bool
	// Insecure skips TLS certificate verification.
	Insecure bool
	// Seed makes the requests reproducible; 0 picks one at random (reported in the Result).
	Seed uint64
	// Payload says what the requests look like.
	Payload PayloadConfig
}

// Validate reports the first problem in c, with a stable code.
func (c Config) Validate() error {
	if _, _, err := parseTarget(c.URL); err != nil {
		return err
	}
	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("invalid_concurrency: %d, want at least 1", c.Concurrency)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("invalid_rate: %v, want 0 (flat out) or a positive rate", c.Rate)
	case c.Duration < 0 || c.Warmup < 0 || c.Grace < 0:
		return errors.New("invalid_duration: durations must not be negative")
	case c.Requests < 0:
		return fmt.Errorf("invalid_requests: %d is negative", c.Requests)
	case c.Duration == 0 && c.Requests == 0:
		return errors.New("unbounded_run: set a duration, a number of requests or both")
	case c.Timeout <= 0:
		return fmt.Errorf("invalid_timeout: %v, want a positive timeout", c.Timeout)
	}
	return c.Payload.Validate()
}

// parseTarget returns the host:port to dial and whether to use TLS.
func parseTarget(raw string) (addr string, isTLS bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", false, fmt.Errorf("invalid_url: %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "http":
	case "https":
		isTLS = true
	default:
		return "", false, fmt.Errorf("invalid_url: scheme %q, want http or https", u.Scheme)
	}
	addr = u.Host
	if u.Port() == "" {
		port := "80"
		if isTLS {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return addr, isTLS, nil
}

// SendGrace is how long after the end of a fixed-rate run requests that are overdue are still sent.
// Beyond it the rest of the schedule is counted as missed, so a target that cannot keep up with the
// rate ends the run on time instead of draining an ever longer backlog.
const SendGrace = time.Second

// maxCodes bounds how many distinct error codes a run keeps apart; the rest count as "(other)".
const maxCodes = 64

// tally is what one sending goroutine saw; tallies are merged once the run is over.
type tally struct {
	sent, ok, warmup int64
	status           map[int]int64
	codes            map[string]int64
	transport        map[string]int64
	latency, lag     *Histogram
	service          *Histogram
	first, last      time.Time
}

// newTally returns an empty tally; lag and service time are only kept at a fixed rate, where they
// differ from latency.
func newTally(fixedRate bool) *tally {
	t := &tally{
		status:    make(map[int]int64),
		codes:     make(map[string]int64),
		transport: make(map[string]int64),
		latency:   NewHistogram(),
	}
	if fixedRate {
		t.lag, t.service = NewHistogram(), NewHistogram()
	}
	return t
}

// errorBody is the part of the proxy's error document the report groups by.
type errorBody struct {
	Code string `json:"code"`
}

// Run drives cfg.URL as cfg says and returns what it measured. Cancelling ctx stops sending new
// requests; requests in flight finish (each bounded by cfg.Timeout) and the partial Result is returned
// with Interrupted set. An error is returned only for an invalid Config.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	addr, isTLS, _ := parseTarget(cfg.URL)
	if cfg.Seed == 0 {
		cfg.Seed = mrand.Uint64() | 1
	}
	gen, err := NewGenerator(cfg.Payload, cfg.Seed)
	if err != nil {
		return nil, err
	}
	client := &fasthttp.HostClient{
		Addr:                      addr,
		IsTLS:                     isTLS,
		MaxConns:                  cfg.Concurrency,
		MaxConnWaitTimeout:        cfg.Timeout,
		ReadTimeout:               cfg.Timeout,
		WriteTimeout:              cfg.Timeout,
		MaxIdemponentCallAttempts: 1, // POST: never resend on our own
		NoDefaultUserAgentHeader:  true,
	}
	if isTLS {
		client.TLSConfig = &tls.Config{InsecureSkipVerify: cfg.Insecure} //nolint:gosec // opt-in flag for test setups
	}
	defer client.CloseIdleConnections()

	var idPrefix [6]byte
	_, _ = rand.Read(idPrefix[:])
	r := &runner{
		cfg:    cfg,
		client: client,
		gen:    gen,
		runID:  hex.EncodeToString(idPrefix[:]),
		start:  time.Now(),
	}
	r.sched = NewSchedule(r.start, cfg.Rate)
	r.measureFrom = r.start.Add(cfg.Warmup)
	if cfg.Duration > 0 {
		r.stopAt = r.measureFrom.Add(cfg.Duration)
		r.sendUntil = r.stopAt.Add(cmp.Or(cfg.Grace, SendGrace))
	}
	r.warmupTickets = r.sched.CountBefore(cfg.Warmup)

	tallies := make([]*tally, cfg.Concurrency)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		tallies[w] = newTally(cfg.Rate > 0)
		wg.Go(func() { r.work(ctx, w, tallies[w]) })
	}
	wg.Wait()
	return r.result(ctx, tallies), nil
}

// runner holds what the sending goroutines share.
type runner struct {
	cfg           Config
	client        *fasthttp.HostClient
	gen           *Generator
	runID         string
	start         time.Time
	sched         Schedule
	measureFrom   time.Time
	stopAt        time.Time // zero: no time limit; no request due at or after it is sent
	sendUntil     time.Time // an overdue request is not sent after this; it counts as missed
	warmupTickets int64
	tickets       atomic.Int64 // next sequence number
	measured      atomic.Int64 // measured requests claimed (flat out)
}

// work sends requests until the run is over. Fixed rate: take the next sequence number, wait for its
// due time, send, charge latency from the due time. Flat out: send back to back.
func (r *runner) work(ctx context.Context, w int, t *tally) {
	rng := mrand.New(mrand.NewPCG(r.cfg.Seed, uint64(w)+1))
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(r.cfg.URL)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if r.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.APIKey)
	}
	var (
		body  = make([]byte, 0, 512)
		key   = make([]byte, 0, 48)
		timer = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()

	for ctx.Err() == nil {
		seq := r.tickets.Add(1) - 1
		var due time.Time
		measured := true
		if r.cfg.Rate > 0 {
			due = r.sched.At(seq)
			if !r.stopAt.IsZero() && !due.Before(r.stopAt) {
				return
			}
			if r.cfg.Requests > 0 && seq >= r.warmupTickets+r.cfg.Requests {
				return
			}
			measured = seq >= r.warmupTickets
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			} else if !r.sendUntil.IsZero() && time.Now().After(r.sendUntil) {
				return // hopelessly behind: what is left of the schedule counts as missed
			}
		} else {
			due = time.Now()
			if !r.stopAt.IsZero() && !due.Before(r.stopAt) {
				return
			}
			measured = !due.Before(r.measureFrom)
			if measured && r.cfg.Requests > 0 && r.measured.Add(1) > r.cfg.Requests {
				return
			}
		}

		body = r.gen.Append(body[:0], uint64(seq), rng)
		req.SetBodyRaw(body)
		if r.cfg.Idempotency {
			key = append(key[:0], r.runID...)
			key = append(key, '-')
			key = strconv.AppendInt(key, seq, 10)
			req.Header.SetBytesV("Idempotency-Key", key)
		}
		sentAt := time.Now()
		err := r.client.DoTimeout(req, resp, r.cfg.Timeout)
		done := time.Now()
		if !measured {
			t.warmup++
			continue
		}
		t.sent++
		if t.first.IsZero() {
			t.first = sentAt
		}
		t.last = done
		t.latency.Record(done.Sub(due))
		if r.cfg.Rate > 0 {
			t.lag.Record(sentAt.Sub(due))
			t.service.Record(done.Sub(sentAt))
		}
		if err != nil {
			t.transport[transportCode(err)]++
			continue
		}
		status := resp.StatusCode()
		t.status[status]++
		if status >= 200 && status < 300 {
			t.ok++
			continue
		}
		var eb errorBody
		code := "(none)"
		if json.Unmarshal(resp.Body(), &eb) == nil && eb.Code != "" {
			code = eb.Code
			if len(code) > 64 {
				code = code[:64]
			}
		}
		if _, seen := t.codes[code]; !seen && len(t.codes) >= maxCodes {
			code = "(other)"
		}
		t.codes[code]++
	}
}

// transportCode names a failed exchange for the report.
func transportCode(err error) string {
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no_free_conns"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "connection_closed"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return "dial"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	default:
		return "other"
	}
}

// result merges the tallies into a Result.
func (r *runner) result(ctx context.Context, tallies []*tally) *Result {
	res := &Result{
		Label:       r.cfg.Label,
		URL:         r.cfg.URL,
		Concurrency: r.cfg.Concurrency,
		Rate:        r.cfg.Rate,
		Duration:    r.cfg.Duration,
		Warmup:      r.cfg.Warmup,
		Seed:        r.cfg.Seed,
		ByStatus:    make(map[int]int64),
		ByCode:      make(map[string]int64),
		Transport:   make(map[string]int64),
		Latency:     NewHistogram(),
		Lag:         NewHistogram(),
		Service:     NewHistogram(),
		Interrupted: ctx.Err() != nil,
	}
	var first, last time.Time
	for _, t := range tallies {
		res.Sent += t.sent
		res.OK += t.ok
		res.WarmupSent += t.warmup
		for k, v := range t.status {
			res.ByStatus[k] += v
		}
		for k, v := range t.codes {
			res.ByCode[k] += v
		}
		for k, v := range t.transport {
			res.Transport[k] += v
		}
		res.Latency.Merge(t.latency)
		res.Lag.Merge(t.lag)
		res.Service.Merge(t.service)
		if !t.first.IsZero() && (first.IsZero() || t.first.Before(first)) {
			first = t.first
		}
		if t.last.After(last) {
			last = t.last
		}
	}
	// The measured window opens when warm-up ends (or at the first measured send, if later: a
	// fixed-rate run with a fractional schedule) and closes at the last measured response.
	if !first.IsZero() {
		from := r.measureFrom
		if r.cfg.Rate > 0 {
			from = r.sched.At(r.warmupTickets)
		}
		if first.Before(from) {
			from = first
		}
		res.Elapsed = last.Sub(from)
	}
	if r.cfg.Rate > 0 && !res.Interrupted {
		due := r.warmupTickets + r.cfg.Requests
		if r.cfg.Duration > 0 {
			byTime := r.sched.CountBefore(r.cfg.Warmup + r.cfg.Duration)
			if r.cfg.Requests == 0 || byTime < due {
				due = byTime
			}
		}
		res.Missed = max(due-r.warmupTickets-res.Sent, 0)
	}
	return res
}
