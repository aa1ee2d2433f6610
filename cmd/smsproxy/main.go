// Command smsproxy is the regional SMS policy proxy.
//
//	smsproxy [serve] [-config file]      run the proxy (embedded defaults without -config)
//	smsproxy config check [-config file] validate a config file and its region data offline
//	smsproxy policy eval|test …          evaluate a message against the policy, or run its Rego tests
//	smsproxy audit verify|export|search|erase|keygen …  check, read and erase the audit trail
//	smsproxy version                     print the version
//
// "smsproxy plugin NAME" is how the proxy runs its built-in provider plugins out of process; it is
// not meant to be typed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/smsproxy/smsproxy/plugins/provider"
	"github.com/smsproxy/smsproxy/plugins/simulator"
	"github.com/smsproxy/smsproxy/proxy"
	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/redact"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	setGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultGCPercent is the garbage collector's target when GOGC is not set. Each policy decision
// allocates ≈ 40 KB that dies at once, so at Go's default of 100 the collector ran often enough to
// take ≈ 6 % more CPU per message than at 200; the heap stays small (the limiter's million keys are
// ≈ 25 MB), so the proxy with a full limiter stays ≈ 120 MB resident. GOGC and GOMEMLIMIT in the
// environment take precedence, as for any Go program.
const defaultGCPercent = 200

func setGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "config":
		if len(args) == 0 || args[0] != "check" {
			fmt.Fprintln(stderr, "usage: smsproxy config check [-config file]")
			return 2
		}
		return configCheck(args[1:], stdout, stderr)
	case "policy":
		return policyCmd(args, stdout, stderr)
	case "audit":
		return auditCmd(args, stdout, stderr)
	case "plugin":
		return servePlugin(args, stderr)
	case "version":
		fmt.Fprintln(stdout, "smsproxy", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: smsproxy [serve|config check|policy eval|policy test|audit|version] [-config file]")
		return 0
	}
	fmt.Fprintf(stderr, "smsproxy: unknown command %q (serve, config check, policy, audit, version)\n", cmd)
	return 2
}

// loadConfig reads -config, or returns the embedded defaults when it is not given.
func loadConfig(name string, args []string, stderr io.Writer) (config.Config, bool, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML config file (default: embedded defaults, region dev)")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, false, 2
	}
	if *path == "" {
		return config.Default(), true, 0
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy: invalid config %s:\n%v\n", *path, err)
		return config.Config{}, false, 1
	}
	return cfg, false, 0
}

func serve(args []string, stderr io.Writer) int {
	cfg, defaults, code := loadConfig("serve", args, stderr)
	if code != 0 {
		return code
	}
	if err := cfg.CheckServe(); err != nil {
		fmt.Fprintf(stderr, "smsproxy: cannot serve: %v\n", err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	if defaults {
		log.Warn("running on embedded defaults with the development API key; give -config for anything else",
			"region", cfg.Region, "listen", cfg.Listen, "data_dir", cfg.DataDir)
	} else if apps := cfg.DevKeyApps(); len(apps) > 0 {
		log.Warn("an app uses the public development API key; declare apps with keys of their own",
			"apps", apps, "region", cfg.Region, "listen", cfg.Listen)
	}
	if addr := os.Getenv("SMSPROXY_PPROF_ADDR"); addr != "" {
		// Profiling on a separate, opt-in listener; never on the app-facing port.
		go func() { log.Warn("pprof listener stopped", "err", http.ListenAndServe(addr, nil)) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	self, err := os.Executable()
	if err != nil {
		log.Error("cannot find own executable to run built-in plugins", "err", err)
		return 1
	}
	p, err := proxy.New(ctx, proxy.Options{
		Config: cfg,
		Logger: log,
		PluginCommand: func(name string) (string, []string) {
			return self, []string{"plugin", name}
		},
	})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("cannot listen", "listen", cfg.Listen, "err", err)
		_ = p.Close()
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			log.Info("SIGHUP: reloading policies and region data")
			_ = p.Reload(ctx)
		}
	}()
	if err := p.Run(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped with error", "err", err)
		return 1
	}
	return 0
}

func configCheck(args []string, stdout, stderr io.Writer) int {
	cfg, _, code := loadConfig("config check", args, stderr)
	if code != 0 {
		return code
	}
	err := proxy.Check(context.Background(), cfg)
	if err == nil {
		err = cfg.CheckServe()
	}
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy: config check failed:\n%v\n", err)
		return 1
	}
	if apps := cfg.DevKeyApps(); len(apps) > 0 {
		fmt.Fprintf(stdout, "warning: app %s uses the public development API key\n", strings.Join(apps, ", "))
	}
	fmt.Fprintf(stdout, "ok: config, region %q data and policy bundle are valid\n", cfg.Region)
	return 0
}

// builtinPlugins are the providers compiled into smsproxy and run out of process.
var builtinPlugins = map[string]func() provider.Provider{
	"simulator": func() provider.Provider { return simulator.New() },
}

func servePlugin(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: smsproxy plugin NAME (run by smsproxy itself)")
		return 2
	}
	mk, ok := builtinPlugins[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "smsproxy: no built-in plugin %q\n", args[0])
		return 2
	}
	provider.Serve(mk())
	return 0
}

// newLogger returns the process logger. Every record goes through the redaction layer, so that a
// phone number, a code or a key that reaches a log call by mistake never reaches the output.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if c.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(redact.New(h))
}
