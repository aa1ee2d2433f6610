// Command smsbench drives the smsproxy submit API (POST /v1/messages) with valid, varied messages at a
// fixed open-loop rate or flat out, and reports throughput, latency percentiles and errors by HTTP
// status and by the proxy's error code.
//
// With -bare it first drives a minimal in-process fasthttp server with identical settings, then the
// proxy, and prints both side by side with the proxy/bare ratio: the share of the machine's HTTP
// capacity the proxy keeps. -bare-only measures that floor alone.
//
// Exit status: 0 when the error rate is within -max-errors, 1 when it is not (or nothing was
// measured), 2 for bad flags, 130 when interrupted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/smsproxy/smsproxy/test/load"
)

// Exit statuses.
const (
	exitOK          = 0
	exitErrors      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed command line.
type options struct {
	cfg       load.Config
	bare      bool
	bareOnly  bool
	json      bool
	maxErrors float64
	pids      []int // processes whose CPU time the proxy run reports
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var (
		o          options
		countries  string
		senders    string
		categories string
		pids       string
	)
	fs := flag.NewFlagSet("smsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: smsbench [flags]\n\nDrives POST /v1/messages and reports throughput, latency and errors.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	c := &o.cfg
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080/v1/messages", "submit endpoint of the proxy")
	fs.StringVar(&c.APIKey, "key", "", "API key sent as a bearer token (default $SMSBENCH_API_KEY; the key is never printed)")
	fs.IntVar(&c.Concurrency, "c", 16, "connections, one sending goroutine each")
	fs.Float64Var(&c.Rate, "rate", 0, "open-loop rate in messages/s; latency counts from each message's due time (0: flat out)")
	fs.DurationVar(&c.Duration, "d", 10*time.Second, "measured duration (0: until -n requests are done)")
	fs.Int64Var(&c.Requests, "n", 0, "measured requests (0: until -d is over)")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "warm-up before measuring, left out of every figure")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Second, "per-request timeout")
	fs.BoolVar(&c.Idempotency, "idempotency", false, "send a unique Idempotency-Key with every request")
	fs.BoolVar(&c.Insecure, "insecure", false, "skip TLS certificate verification")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed for recipients, codes and categories (0: random, printed in the report)")
	fs.StringVar(&countries, "countries", "SG,US,GB,DE,ID,MY", "recipient countries, taken in turn (supported: "+strings.Join(load.SupportedCountries(), ",")+")")
	fs.StringVar(&senders, "from", "", `senders per country, "SG=PAYLINK88,US=+12015550123", or one sender for all (default: a placeholder of the right kind per country)`)
	fs.StringVar(&categories, "categories", "transaction", "categories drawn at random per message (otp,transaction,alert,security,marketing)")
	fs.IntVar(&c.Payload.BodyLen, "body-len", 70, fmt.Sprintf("body length in characters (at least %d)", load.MinBodyLen))
	fs.StringVar(&c.Payload.Template, "template", "", `send {"template":{"id":ID,"locale":"en","params":{"code":...}}} instead of a body`)
	fs.IntVar(&c.Payload.Devices, "devices", 0, "add a device_id drawn from this many devices (0: none)")
	fs.BoolVar(&o.bare, "bare", false, "first drive an in-process bare fasthttp server with the same settings, then the proxy, and compare")
	fs.BoolVar(&o.bareOnly, "bare-only", false, "drive only the in-process bare server (-url is ignored)")
	fs.BoolVar(&o.json, "json", false, "print a JSON summary on stdout; the text report goes to stderr")
	fs.Float64Var(&o.maxErrors, "max-errors", 0, "highest tolerated error rate, a fraction (0.01 = 1%); above it the exit status is 1")
	fs.StringVar(&pids, "pids", "", "process ids (comma-separated; Linux) whose CPU time per message the proxy run reports, e.g. the proxy and its plugin")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected_argument: %q (all settings are flags)", fs.Arg(0))
	}
	if o.maxErrors < 0 || o.maxErrors > 1 {
		return o, fmt.Errorf("invalid_max_errors: %v, want a fraction between 0 and 1", o.maxErrors)
	}
	if c.APIKey == "" {
		c.APIKey = os.Getenv("SMSBENCH_API_KEY")
	}
	var err error
	if o.pids, err = parsePIDs(pids); err != nil {
		return o, err
	}
	c.Payload.Countries = load.SplitList(countries)
	c.Payload.Categories = load.SplitList(categories)
	if c.Payload.Senders, err = load.ParseSenders(senders, c.Payload.Countries); err != nil {
		return o, err
	}
	if c.Seed == 0 {
		c.Seed = mrand.Uint64() | 1 // one seed for both runs of -bare, so they send the same messages
	}
	check := *c
	if o.bareOnly {
		check.URL = "http://127.0.0.1:1" + load.BarePath
	}
	return o, check.Validate()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "smsbench:", err)
		return exitUsage
	}
	text := stdout
	if o.json {
		text = stderr
	}

	var bare, proxy *load.Result
	if o.bare || o.bareOnly {
		if bare, err = runBare(ctx, o.cfg); err != nil {
			fmt.Fprintln(stderr, "smsbench:", err)
			return exitUsage
		}
		_ = load.WriteText(text, bare)
	}
	if !o.bareOnly && ctx.Err() == nil {
		cfg := o.cfg
		cfg.Label = "proxy"
		runtime.GC() // start from a clean heap, as the bare run did
		cpu, err := startCPU(o.pids)
		if err != nil {
			fmt.Fprintln(stderr, "smsbench:", err)
			return exitUsage
		}
		if proxy, err = load.Run(ctx, cfg); err != nil {
			fmt.Fprintln(stderr, "smsbench:", err)
			return exitUsage
		}
		_ = load.WriteText(text, proxy)
		if err := cpu.report(text, proxy.Sent+proxy.WarmupSent); err != nil {
			fmt.Fprintln(stderr, "smsbench:", err)
		}
	}
	if bare != nil && proxy != nil {
		fmt.Fprintln(text)
		_ = load.WriteComparison(text, bare, proxy)
	}

	if o.json {
		var doc any
		switch {
		case bare != nil && proxy != nil:
			doc = load.Compare(bare, proxy)
		case proxy != nil:
			doc = proxy.Summary()
		case bare != nil:
			doc = bare.Summary()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if doc != nil {
			_ = enc.Encode(doc)
		}
	}
	return verdict(ctx, cmpOr(proxy, bare), o.maxErrors, stderr)
}

// runBare drives an in-process bare server with cfg and stops it.
func runBare(ctx context.Context, cfg load.Config) (*load.Result, error) {
	srv, err := load.StartBare()
	if err != nil {
		return nil, err
	}
	defer func() { _ = srv.Close() }()
	cfg.Label = "bare"
	cfg.URL = srv.URL
	cfg.Insecure = false
	runtime.GC()
	return load.Run(ctx, cfg)
}

func cmpOr(a, b *load.Result) *load.Result {
	if a != nil {
		return a
	}
	return b
}

// verdict returns the exit status for the run that counts: the proxy's, or the bare one with -bare-only.
func verdict(ctx context.Context, r *load.Result, maxErrors float64, stderr io.Writer) int {
	switch {
	case ctx.Err() != nil || r == nil || r.Interrupted:
		return exitInterrupted
	case r.Sent == 0:
		fmt.Fprintln(stderr, "smsbench: no_requests: nothing was measured")
		return exitErrors
	case r.ErrorRate() > maxErrors:
		fmt.Fprintf(stderr, "smsbench: too_many_errors: error rate %.4f%% is above -max-errors %.4f%%\n", r.ErrorRate()*100, maxErrors*100)
		return exitErrors
	}
	return exitOK
}
