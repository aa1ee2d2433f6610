// Package proxy wires smsproxy together and runs it: the store, the policy engine, the limiter, the
// provider plugins, the dispatcher and the HTTP front. Submit, the one path every message takes,
// lives here too (submit.go). The package holds wiring and lifecycle only; every step's logic lives in
// the step's own package.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsproxy/smsproxy/policies"
	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/front"
	"github.com/smsproxy/smsproxy/proxy/limit"
	"github.com/smsproxy/smsproxy/proxy/policy"
	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
	"github.com/smsproxy/smsproxy/regions"
)

// messageStore is what the proxy needs from the store; SQLite and, later, PostgreSQL provide it.
type messageStore interface {
	Accept(ctx context.Context, a store.Accepted) (store.AcceptResult, error)
	Refuse(ctx context.Context, r store.Refused) error
	FindIdempotent(ctx context.Context, app, key string) (store.MessageView, bool, error)
	Get(ctx context.Context, app, id string) (store.MessageView, error)
	PendingOutbox(ctx context.Context, limit int, after string) ([]store.OutboxItem, error)
	RecordSent(ctx context.Context, sent []store.Sent) error
	RecordFailed(ctx context.Context, failed []store.Failed) error
	RecordRetry(ctx context.Context, id string, attempts int, nextAt time.Time, code string) error
	ApplyReceipt(ctx context.Context, r store.Receipt) (store.ReceiptResult, error)
	Close() error
}

// limiter reserves every limit a decision names, all or none; in process now, Redis when replicas
// share a region.
type limiter interface {
	Reserve(now time.Time, limits []limit.Limit) (limit.Reservation, *limit.Denied)
}

// Options are what New needs besides the configuration.
type Options struct {
	Config config.Config
	Logger *slog.Logger
	// PluginCommand returns the command that runs a built-in plugin, e.g. the smsproxy binary
	// re-executed as "smsproxy plugin simulator".
	PluginCommand func(name string) (path string, args []string)
}

// Proxy is one running regional proxy.
type Proxy struct {
	cfg     config.Config
	log     *slog.Logger
	now     func() time.Time
	rt      atomic.Pointer[runtime]
	policy  *policy.Engine
	limiter limiter
	store   messageStore
	front   *front.Front
	out     *outbound
	facts   *recipientFacts
	shadow  *shadow // nil unless shadow_policies_dir is set
	ready   atomic.Bool
}

// runtime is what a reload replaces at once: the region data and the templates built from it.
type runtime struct {
	region    *config.Region
	templates *sms.Templates
}

func (p *Proxy) runtime() *runtime { return p.rt.Load() }

// New builds a proxy from a validated configuration: it loads the region data, compiles and tests the
// policy bundle, opens the store and starts the provider plugins. Close releases all of it.
func New(ctx context.Context, o Options) (_ *Proxy, err error) {
	cfg := o.Config
	p := &Proxy{cfg: cfg, log: o.Logger, now: time.Now}
	if p.log == nil {
		p.log = slog.Default()
	}
	rt, err := p.loadRuntime()
	if err != nil {
		return nil, err
	}
	p.rt.Store(rt)
	bundle, err := p.loadBundle(rt.region)
	if err != nil {
		return nil, err
	}
	prepared, err := policy.Compile(ctx, bundle)
	if err != nil {
		return nil, err
	}
	p.policy = policy.NewEngine(prepared, p.log)
	lim, err := limit.New(cfg.Limits.Keys)
	if err != nil {
		return nil, err
	}
	p.limiter = lim

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	st, err := store.OpenSQLite(ctx, cfg.StorePath(), store.Options{MaxBatch: cfg.Store.MaxBatch, Logger: p.log})
	if err != nil {
		return nil, err
	}
	p.store = st
	p.facts = newRecipientFacts(st, 0)
	defer func() {
		if err != nil {
			_ = st.Close()
		}
	}()
	if cfg.ShadowPoliciesDir != "" {
		p.shadow = newShadow(p.log, shadowQueue)
		defer func() {
			if err != nil {
				p.shadow.close()
			}
		}()
		p.reloadShadow(ctx, rt.region)
	}

	p.out, err = newOutbound(ctx, p, rt.region, o.PluginCommand)
	if err != nil {
		return nil, err
	}
	apps := make(map[string]string, len(cfg.Apps))
	for _, a := range cfg.Apps {
		apps[a.KeySHA256] = a.Name
	}
	p.front = front.New(p, front.Options{Apps: apps, Ready: p.ready.Load, Logger: p.log})
	return p, nil
}

// loadRuntime reads the region data (embedded, or from RegionsDir) and builds its templates.
func (p *Proxy) loadRuntime() (*runtime, error) {
	var fsys fs.FS = regions.FS
	if p.cfg.RegionsDir != "" {
		fsys = os.DirFS(p.cfg.RegionsDir)
	}
	region, err := config.LoadRegion(fsys, p.cfg.Region)
	if err != nil {
		return nil, err
	}
	tpls, err := sms.NewTemplates(region.Templates, region.DefaultLocale)
	if err != nil {
		return nil, err
	}
	return &runtime{region: region, templates: tpls}, nil
}

// loadBundle reads the policies (embedded, or from PoliciesDir) with the region as data.region.
func (p *Proxy) loadBundle(region *config.Region) (policy.Bundle, error) {
	var fsys fs.FS = policies.FS
	if p.cfg.PoliciesDir != "" {
		fsys = os.DirFS(p.cfg.PoliciesDir)
	}
	return policy.LoadBundle(fsys, map[string]any{"region": region.Data})
}

// Reload reads the region data and the policies again and swaps them in if the new bundle compiles
// and passes its tests; otherwise the running ones stay and the error is returned (and logged).
// Providers are fixed at start: a change to them needs a restart.
func (p *Proxy) Reload(ctx context.Context) error {
	rt, err := p.loadRuntime()
	if err != nil {
		p.log.Error("reload refused: region data invalid, keeping the running data", "err", err)
		return err
	}
	err = p.policy.Reload(ctx, func() (policy.Bundle, error) { return p.loadBundle(rt.region) })
	if err != nil {
		return err
	}
	p.rt.Store(rt)
	p.reloadShadow(ctx, rt.region)
	return nil
}

// Run serves the HTTP front on ln and the provider receive streams until ctx ends, then shuts down
// gracefully: no new requests, in-flight requests answered, queued messages handed over or left in
// the outbox, plugins stopped, store closed.
func (p *Proxy) Run(ctx context.Context, ln net.Listener) error {
	runCtx, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	p.out.start(runCtx, &wg)
	if p.cfg.PoliciesDir != "" || p.cfg.RegionsDir != "" || p.cfg.ShadowPoliciesDir != "" {
		var paths []string
		for _, d := range []string{p.cfg.PoliciesDir, p.cfg.RegionsDir, p.cfg.ShadowPoliciesDir} {
			if d != "" {
				paths = append(paths, d)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			policy.Watch(runCtx, paths, func() { _ = p.Reload(runCtx) })
		}()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- p.front.Serve(ln) }()
	p.ready.Store(true)
	p.log.Info("smsproxy ready", "region", p.cfg.Region, "listen", ln.Addr().String(), "policy_revision", p.policy.Revision())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	p.ready.Store(false)
	p.log.Info("smsproxy stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout.D())
	defer cancel()
	if serr := p.front.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = serr
	}
	p.out.close(shutdownCtx)
	stopBackground()
	wg.Wait()
	p.shadow.close()
	if cerr := p.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	p.log.Info("smsproxy stopped")
	return err
}

// Close releases what New opened when Run is never called.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout.D())
	defer cancel()
	p.out.close(ctx)
	p.shadow.close()
	return p.store.Close()
}

// newMessageID returns a time-ordered unique id: "msg_", 12 hex digits of Unix milliseconds and 16 of
// randomness.
func newMessageID(now time.Time) string {
	var b [14]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails; it crashes the program if it cannot.
	return "msg_" + hex.EncodeToString(b[:])
}

// Check validates a configuration offline: the region data, its templates, and the policy bundle,
// which is compiled and whose Rego tests are run, exactly as at start-up.
func Check(ctx context.Context, cfg config.Config) error {
	p := &Proxy{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	rt, err := p.loadRuntime()
	if err != nil {
		return err
	}
	for name := range cfg.Providers {
		if _, ok := rt.region.Providers[name]; !ok {
			return &config.Error{Key: "providers." + name, Msg: fmt.Sprintf("region %q has no provider %q", cfg.Region, name)}
		}
	}
	bundle, err := p.loadBundle(rt.region)
	if err != nil {
		return err
	}
	if _, err = policy.Compile(ctx, bundle); err != nil || cfg.ShadowPoliciesDir == "" {
		return err
	}
	if bundle, err = loadShadowBundle(&cfg, rt.region); err == nil {
		_, err = policy.Compile(ctx, bundle)
	}
	if err != nil {
		return fmt.Errorf("shadow_policies_dir: %w", err)
	}
	return nil
}
