package load

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what one run measured. Every figure covers the measured part only: the warm-up is counted
// in WarmupSent and nowhere else.
type Result struct {
	Label       string
	URL         string
	Concurrency int
	Rate        float64
	Duration    time.Duration
	Warmup      time.Duration
	Seed        uint64
	// Interrupted is set when the run was cancelled before its end.
	Interrupted bool
	// Sent is the number of measured requests; OK those answered 2xx.
	Sent, OK int64
	// Missed counts requests of a fixed-rate run that were due in the measured window but never sent
	// because the run was too far behind its schedule when it ended (see SendGrace).
	Missed int64
	// WarmupSent is the number of requests sent during the warm-up.
	WarmupSent int64
	// ByStatus counts responses by HTTP status, 2xx included.
	ByStatus map[int]int64
	// ByCode counts non-2xx responses by the "code" field of their JSON body ("(none)" without one).
	ByCode map[string]int64
	// Transport counts requests that got no response: timeout, dial, connection_closed, no_free_conns, other.
	Transport map[string]int64
	// Elapsed is the measured window: from the end of the warm-up to the last measured response.
	Elapsed time.Duration
	// Latency is measured from the due time in fixed-rate mode (coordinated omission corrected) and
	// from the actual send otherwise.
	Latency *Histogram
	// Lag is how late each request was actually sent after its due time (fixed-rate mode only). A large
	// lag means the client or the connection pool, not the server, set the pace. Go timers wake with
	// up to 1 ms of delay on an idle Linux box (epoll waits in whole milliseconds), so below that the
	// lag is the client's pacing error rather than the target's doing.
	Lag *Histogram
	// Service is measured from the actual send to the response (fixed-rate mode only): the target's
	// own latency, without the wait for a free connection or for the client's timer.
	Service *Histogram
}

// Errors returns the number of measured requests that did not get a 2xx answer.
func (r *Result) Errors() int64 { return r.Sent - r.OK }

// ErrorRate returns the share of due requests that did not get a 2xx answer: (Errors+Missed) over
// (Sent+Missed), 0 when nothing was due.
func (r *Result) ErrorRate() float64 {
	if r.Sent+r.Missed == 0 {
		return 0
	}
	return float64(r.Errors()+r.Missed) / float64(r.Sent+r.Missed)
}

// Throughput returns 2xx answers per second over the measured window.
func (r *Result) Throughput() float64 { return perSecond(r.OK, r.Elapsed) }

// SendRate returns measured requests per second over the measured window.
func (r *Result) SendRate() float64 { return perSecond(r.Sent, r.Elapsed) }

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Percentiles are latency figures in microseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func percentilesOf(h *Histogram) Percentiles {
	us := func(d time.Duration) float64 { return math.Round(float64(d)/1e2) / 10 }
	return Percentiles{
		P50: us(h.Percentile(50)), P90: us(h.Percentile(90)), P99: us(h.Percentile(99)),
		P999: us(h.Percentile(99.9)), Max: us(h.Max()), Mean: us(h.Mean()),
	}
}

// Summary is the machine-readable form of a Result.
type Summary struct {
	Label       string           `json:"label"`
	URL         string           `json:"url"`
	Concurrency int              `json:"concurrency"`
	Rate        float64          `json:"rate"`
	DurationS   float64          `json:"duration_s"`
	WarmupS     float64          `json:"warmup_s"`
	Seed        uint64           `json:"seed"`
	Interrupted bool             `json:"interrupted"`
	Sent        int64            `json:"sent"`
	OK          int64            `json:"ok"`
	Errors      int64            `json:"errors"`
	ErrorRate   float64          `json:"error_rate"`
	Missed      int64            `json:"missed"`
	WarmupSent  int64            `json:"warmup_sent"`
	ElapsedS    float64          `json:"elapsed_s"`
	Throughput  float64          `json:"throughput_ok_per_s"`
	SendRate    float64          `json:"sent_per_s"`
	ByStatus    map[string]int64 `json:"by_status"`
	ByCode      map[string]int64 `json:"by_code"`
	Transport   map[string]int64 `json:"transport_errors"`
	LatencyUS   Percentiles      `json:"latency_us"`
	SendLagUS   *Percentiles     `json:"send_lag_us,omitempty"`
	ServiceUS   *Percentiles     `json:"service_us,omitempty"`
}

// Summary returns r in machine-readable form.
func (r *Result) Summary() Summary {
	s := Summary{
		Label: r.Label, URL: r.URL, Concurrency: r.Concurrency, Rate: r.Rate,
		DurationS: r.Duration.Seconds(), WarmupS: r.Warmup.Seconds(), Seed: r.Seed, Interrupted: r.Interrupted,
		Sent: r.Sent, OK: r.OK, Errors: r.Errors(), ErrorRate: round(r.ErrorRate(), 6), Missed: r.Missed, WarmupSent: r.WarmupSent,
		ElapsedS: round(r.Elapsed.Seconds(), 3), Throughput: round(r.Throughput(), 1), SendRate: round(r.SendRate(), 1),
		ByStatus: make(map[string]int64), ByCode: r.ByCode, Transport: r.Transport,
		LatencyUS: percentilesOf(r.Latency),
	}
	for k, v := range r.ByStatus {
		s.ByStatus[strconv.Itoa(k)] = v
	}
	if r.Rate > 0 && r.Lag != nil && r.Lag.Count() > 0 {
		lag := percentilesOf(r.Lag)
		s.SendLagUS = &lag
	}
	if r.Rate > 0 && r.Service != nil && r.Service.Count() > 0 {
		svc := percentilesOf(r.Service)
		s.ServiceUS = &svc
	}
	return s
}

// Comparison is the machine-readable form of a bare-versus-proxy run.
type Comparison struct {
	Bare  Summary `json:"bare"`
	Proxy Summary `json:"proxy"`
	// ThroughputRatio is proxy throughput over bare throughput.
	ThroughputRatio float64 `json:"throughput_ratio"`
}

// Compare returns the comparison of a proxy run with the bare run made with the same settings.
func Compare(bare, proxy *Result) Comparison {
	return Comparison{Bare: bare.Summary(), Proxy: proxy.Summary(), ThroughputRatio: round(ratio(proxy.Throughput(), bare.Throughput()), 4)}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func round(v float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(v*p) / p
}

// WriteText writes the human-readable report of r to w.
func WriteText(w io.Writer, r *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s\n", cmp.Or(r.Label, "run"), r.URL)
	fmt.Fprintf(&b, "  load        %s (seed %d)\n", describeLoad(r), r.Seed)
	fmt.Fprintf(&b, "  requests    sent %d, ok %d (%s), errors %d (%s); warm-up %d not counted\n",
		r.Sent, r.OK, pct(ratio(float64(r.OK), float64(r.Sent)), r.Sent), r.Errors(),
		pct(ratio(float64(r.Errors()), float64(r.Sent)), r.Sent), r.WarmupSent)
	if r.Missed > 0 {
		fmt.Fprintf(&b, "  MISSED      %d requests due in the window were never sent: the rate was not sustained\n", r.Missed)
	}
	if len(r.ByStatus) > 0 {
		keys := slices.Sorted(maps.Keys(r.ByStatus))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%d: %d", k, r.ByStatus[k])
		}
		fmt.Fprintf(&b, "  status      %s\n", strings.Join(parts, "  "))
	}
	if len(r.ByCode) > 0 {
		fmt.Fprintf(&b, "  codes       %s\n", joinCounts(r.ByCode))
	}
	if len(r.Transport) > 0 {
		fmt.Fprintf(&b, "  no answer   %s\n", joinCounts(r.Transport))
	}
	fmt.Fprintf(&b, "  throughput  %.1f ok/s (%.1f sent/s over %s)\n", r.Throughput(), r.SendRate(), fmtDur(r.Elapsed))
	fmt.Fprintf(&b, "  latency     %s\n", fmtPercentiles(r.Latency))
	if r.Rate > 0 && r.Service != nil && r.Service.Count() > 0 {
		fmt.Fprintf(&b, "  service     %s\n", fmtPercentiles(r.Service))
	}
	if r.Rate > 0 && r.Lag != nil && r.Lag.Count() > 0 {
		fmt.Fprintf(&b, "  send lag    %s\n", fmtPercentiles(r.Lag))
	}
	if r.Interrupted {
		b.WriteString("  INTERRUPTED: partial results\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteComparison writes bare and proxy side by side, with the proxy/bare ratio of each figure.
func WriteComparison(w io.Writer, bare, proxy *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tbare\tproxy\tproxy/bare\t\n")
	fmt.Fprintf(tw, "throughput ok/s\t%.1f\t%.1f\t%.3f\t\n", bare.Throughput(), proxy.Throughput(), ratio(proxy.Throughput(), bare.Throughput()))
	for _, q := range []struct {
		name string
		f    func(*Histogram) time.Duration
	}{
		{"p50", func(h *Histogram) time.Duration { return h.Percentile(50) }},
		{"p90", func(h *Histogram) time.Duration { return h.Percentile(90) }},
		{"p99", func(h *Histogram) time.Duration { return h.Percentile(99) }},
		{"p99.9", func(h *Histogram) time.Duration { return h.Percentile(99.9) }},
		{"max", (*Histogram).Max},
	} {
		b, p := q.f(bare.Latency), q.f(proxy.Latency)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fx\t\n", q.name, fmtDur(b), fmtDur(p), ratio(float64(p), float64(b)))
	}
	fmt.Fprintf(tw, "errors\t%d\t%d\t-\t\n", bare.Errors(), proxy.Errors())
	return tw.Flush()
}

func describeLoad(r *Result) string {
	pace := "flat out"
	if r.Rate > 0 {
		pace = fmt.Sprintf("%g msg/s open loop", r.Rate)
	}
	bound := fmtDur(r.Duration)
	if r.Duration == 0 {
		bound = "until done"
	}
	return fmt.Sprintf("c=%d, %s, %s after %s warm-up", r.Concurrency, pace, bound, fmtDur(r.Warmup))
}

func fmtPercentiles(h *Histogram) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s",
		fmtDur(h.Percentile(50)), fmtDur(h.Percentile(90)), fmtDur(h.Percentile(99)),
		fmtDur(h.Percentile(99.9)), fmtDur(h.Max()), fmtDur(h.Mean()))
}

func joinCounts(m map[string]int64) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) // most frequent first
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, "  ")
}

func pct(f float64, n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(f*100, 'f', 2, 64) + "%"
}

// fmtDur prints a duration with three significant digits in a fitting unit.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2fµs", float64(d)/1e3)
	case d < 999500*time.Nanosecond: // 999.5µs and up would round to "1000µs"
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 9995*time.Microsecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < 999950*time.Microsecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
