package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/smsproxy/smsproxy/policies"
	"github.com/smsproxy/smsproxy/proxy"
	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/policy"
	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/regions"
)

// Exit codes of smsproxy policy eval.
const (
	exitAllow = 0
	exitError = 1
	exitUsage = 2
	exitDeny  = 3
)

const policyUsage = `usage:
  smsproxy policy eval [-config f] [--region r] [--policies dir] [--explain notes|fails|full]
                       [--facts facts.json] [--now RFC3339] [--app name] message.json
  smsproxy policy test [-config f] [--region r] [--policies dir] [-v]`

// policyCmd runs "smsproxy policy eval|test".
func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, policyUsage)
		return exitUsage
	}
	switch args[0] {
	case "eval":
		return policyEval(args[1:], stdout, stderr)
	case "test":
		return policyTest(args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, policyUsage)
	return exitUsage
}

// policyFlags are the flags both policy subcommands share.
type policyFlags struct {
	config, region, policies string
}

func (pf *policyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&pf.config, "config", "", "YAML config file (default: embedded defaults, region dev)")
	fs.StringVar(&pf.region, "region", "", "region whose data the policy reads (default: the config's)")
	fs.StringVar(&pf.policies, "policies", "", "policy directory (default: the config's policies_dir, else the embedded policies)")
}

// parseInterspersed parses flags before and after positional arguments and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// loadPolicy reads the configuration, the region data and the policy bundle as the proxy does.
func (pf *policyFlags) load(stderr io.Writer) (config.Config, *config.Region, policy.Bundle, bool) {
	cfg := config.Default()
	if pf.config != "" {
		var err error
		if cfg, err = config.Load(pf.config); err != nil {
			fmt.Fprintf(stderr, "smsproxy: invalid config %s:\n%v\n", pf.config, err)
			return cfg, nil, policy.Bundle{}, false
		}
	}
	if pf.region != "" {
		cfg.Region = pf.region
	}
	if pf.policies != "" {
		cfg.PoliciesDir = pf.policies
	}
	var rfs fs.FS = regions.FS
	if cfg.RegionsDir != "" {
		rfs = os.DirFS(cfg.RegionsDir)
	}
	region, err := config.LoadRegion(rfs, cfg.Region)
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy: region %q: %v\n", cfg.Region, err)
		return cfg, nil, policy.Bundle{}, false
	}
	var pfs fs.FS = policies.FS
	if cfg.PoliciesDir != "" {
		pfs = os.DirFS(cfg.PoliciesDir)
	}
	b, err := policy.LoadBundle(pfs, map[string]any{"region": region.Data})
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy: policies: %v\n", err)
		return cfg, nil, policy.Bundle{}, false
	}
	return cfg, region, b, true
}

// evalMessage is message.json: the body of POST /v1/messages, plus the sending app.
type evalMessage struct {
	App      string            `json:"app"`
	To       string            `json:"to"`
	From     string            `json:"from"`
	Body     *string           `json:"body"`
	Template *sms.TemplateRef  `json:"template"`
	Category string            `json:"category"`
	DeviceID string            `json:"device_id"`
	Metadata map[string]string `json:"metadata"`
}

// evalFacts is facts.json. Local time fields left out are computed from the number at --now.
type evalFacts struct {
	OptedOut     bool                   `json:"opted_out"`
	Consents     map[string]evalConsent `json:"consents"`
	LocalHour    *int                   `json:"local_hour"`
	LocalWeekday *int                   `json:"local_weekday"`
	TimeZone     *string                `json:"time_zone"`
}

type evalConsent struct {
	Basis     string    `json:"basis"`
	GrantedAt time.Time `json:"granted_at"`
	Withdrawn bool      `json:"withdrawn"`
}

// evalOutput is what policy eval prints.
type evalOutput struct {
	Revision string `json:"revision"`
	// Facts is input.facts exactly as the policy saw it.
	Facts    any             `json:"facts"`
	Decision policy.Decision `json:"decision"`
}

func decodeStrict(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

func policyEval(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf policyFlags
	pf.register(fs)
	explain := fs.String("explain", "", "show the trace: notes, fails or full")
	factsPath := fs.String("facts", "", "JSON file of facts: opted_out, consents, local_hour, local_weekday, time_zone")
	nowFlag := fs.String("now", "", "decision time, RFC 3339 (default: now)")
	appFlag := fs.String("app", "", "sending app (default: message.json's app, else the config's first app)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, policyUsage)
		return exitUsage
	}
	mode := policy.Explain(*explain)
	switch mode {
	case policy.ExplainOff, policy.ExplainNotes, policy.ExplainFails, policy.ExplainFull:
	default:
		fmt.Fprintf(stderr, "smsproxy: --explain must be notes, fails or full, got %q\n", *explain)
		return exitUsage
	}
	now := time.Now()
	if *nowFlag != "" {
		if now, err = time.Parse(time.RFC3339, *nowFlag); err != nil {
			fmt.Fprintf(stderr, "smsproxy: --now must be RFC 3339, e.g. 2026-11-27T10:00:00Z: %v\n", err)
			return exitUsage
		}
	}

	var m evalMessage
	if err := decodeStrict(pos[0], &m); err != nil {
		fmt.Fprintf(stderr, "smsproxy: %s: %v\n", pos[0], err)
		return exitError
	}
	var ef evalFacts
	if *factsPath != "" {
		if err := decodeStrict(*factsPath, &ef); err != nil {
			fmt.Fprintf(stderr, "smsproxy: %s: %v\n", *factsPath, err)
			return exitError
		}
	}
	cfg, region, bundle, ok := pf.load(stderr)
	if !ok {
		return exitError
	}
	tpls, err := sms.NewTemplates(region.Templates, region.DefaultLocale)
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy: region %q templates: %v\n", cfg.Region, err)
		return exitError
	}
	app := *appFlag
	if app == "" {
		app = m.App
	}
	if app == "" && len(cfg.Apps) > 0 {
		app = cfg.Apps[0].Name
	}

	// Normalise exactly as Submit does, then build the input with the facts given.
	d := sms.Draft{App: app, To: m.To, From: m.From, Template: m.Template, Category: m.Category,
		DeviceID: m.DeviceID, Metadata: m.Metadata}
	if m.Body != nil {
		d.Body = *m.Body
	}
	msg, err := sms.Normalize(d, tpls)
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy: the message is invalid: %v\n", err)
		return exitError
	}
	msg.CreatedAt = now
	in := policy.NewInput(&msg, now)
	in.Facts = ef.facts(msg.To.E164, now)

	ctx := context.Background()
	prep, err := policy.Compile(ctx, bundle)
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy: the policy bundle is refused:\n%v\n", err)
		return exitError
	}
	ev, err := policy.Eval(ctx, prep, in, mode)
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy: evaluation failed: %v\n", err)
		for _, l := range ev.Trace {
			fmt.Fprintln(stderr, l)
		}
		return exitError
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(evalOutput{Revision: ev.Revision, Facts: in.Map()["facts"], Decision: ev.Decision}); err != nil {
		return exitError
	}
	if mode != policy.ExplainOff {
		fmt.Fprintf(stdout, "\n# trace (%s)\n", mode)
		for _, l := range ev.Trace {
			fmt.Fprintln(stdout, l)
		}
	}
	if !ev.Decision.Allow {
		return exitDeny
	}
	return exitAllow
}

// facts turns facts.json into the policy's facts, computing the local time from the number where
// the file does not give it.
func (ef *evalFacts) facts(e164 string, now time.Time) policy.Facts {
	hour, wday, zone := proxy.LocalTime(e164, now)
	f := policy.Facts{OptedOut: ef.OptedOut, LocalHour: hour, LocalWeekday: wday, TimeZone: zone}
	if ef.LocalHour != nil {
		f.LocalHour = *ef.LocalHour
	}
	if ef.LocalWeekday != nil {
		f.LocalWeekday = *ef.LocalWeekday
	}
	if ef.TimeZone != nil {
		f.TimeZone = *ef.TimeZone
	}
	for cat, c := range ef.Consents {
		if f.Consents == nil {
			f.Consents = map[string]policy.Consent{}
		}
		f.Consents[cat] = policy.Consent{Basis: c.Basis, GrantedAt: c.GrantedAt, Withdrawn: c.Withdrawn}
	}
	return f
}

func policyTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf policyFlags
	pf.register(fs)
	verbose := fs.Bool("v", false, "print every test, not only failures")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, policyUsage)
		return exitUsage
	}
	_, _, bundle, ok := pf.load(stderr)
	if !ok {
		return exitError
	}
	results, err := policy.Test(context.Background(), bundle)
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy: the policy bundle does not compile:\n%v\n", err)
		return exitError
	}
	var pass, fail, skip int
	for _, r := range results {
		switch {
		case r.Skip:
			skip++
			if *verbose {
				fmt.Fprintf(stdout, "SKIP %s (%s)\n", r.Name, r.Location)
			}
		case r.Pass:
			pass++
			if *verbose {
				fmt.Fprintf(stdout, "PASS %s (%s)\n", r.Name, r.Duration.Round(time.Microsecond))
			}
		default:
			fail++
			fmt.Fprintf(stdout, "FAIL %s (%s): %s\n", r.Name, r.Location, r.Failure)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed, %d skipped (revision %s)\n", pass, fail, skip, bundle.Revision)
	if fail > 0 {
		return exitError
	}
	if pass == 0 {
		// The proxy refuses such a bundle (policy_no_tests); the command says so rather than "ok".
		fmt.Fprintln(stderr, "smsproxy: no policy test passed: the proxy refuses a bundle without a passing test (policy_no_tests)")
		return exitError
	}
	return 0
}
