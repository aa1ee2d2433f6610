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
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsproxy/smsproxy/policies"
	"github.com/smsproxy/smsproxy/proxy/audit"
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
	RecordRetry(ctx context.Context, id string, attempts int, nextAt time.Time, code string, maybeSent []string) error
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
	cfg config.Config
	log *slog.Logger
	now func() time.Time
	rt  atomic.Pointer[runtime]
	// reloadMu serialises Reload.
	reloadMu sync.Mutex
	policy   *policy.Engine
	limiter  limiter
	store    messageStore
	front    *front.Front
	out      *outbound
	facts    *recipientFacts
	shadow   *shadow // nil unless shadow_policies_dir is set
	ready    atomic.Bool
	keys     *audit.Keyring
	admins   map[string]bool
	// keyLocks holds each Idempotency-Key while its request is in Submit.
	keyLocks keyLocks
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
	prepared, err := policy.CompileLive(ctx, bundle)
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
	if p.keys, err = LoadAuditKeyring(&cfg, p.log, true); err != nil {
		return nil, err
	}
	st, err := store.OpenSQLite(ctx, cfg.StorePath(), AuditStoreOptions(&cfg, p.keys, p.log))
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
	p.admins = map[string]bool{}
	for _, a := range cfg.Apps {
		apps[a.KeySHA256] = a.Name
		if a.Admin {
			p.admins[a.Name] = true
		}
	}
	p.front = front.New(p, front.Options{Apps: apps, Ready: p.ready.Load, Logger: p.log})
	p.appendAudit(ctx, store.AuditConfigLoaded, p.configSummary(rt.region))
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
//
// Every reload that changes the policy revision is an audit event ("policy.changed", with the old and
// new revisions), and so is every refused one ("policy.refused", with the kept revision and the
// error's code). A reload that changes nothing records nothing.
func (p *Proxy) Reload(ctx context.Context) error {
	// One reload at a time: SIGHUP and the file watcher may both fire, and two reloads interleaved
	// could leave the newer bundle beside the older region data (each stores its own at the end).
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	old := p.policy.Revision()
	rt, err := p.loadRuntime()
	if err != nil {
		p.log.Error("reload refused: region data invalid, keeping the running data", "err", err)
		p.appendAudit(ctx, store.AuditPolicyRefused, policyRefusedEvent{Revision: old, Code: reloadCode(err), What: "region_data"})
		return err
	}
	err = p.policy.Reload(ctx, func() (policy.Bundle, error) { return p.loadBundle(rt.region) })
	if err != nil {
		p.appendAudit(ctx, store.AuditPolicyRefused, policyRefusedEvent{Revision: old, Code: reloadCode(err), What: "policy"})
		return err
	}
	p.rt.Store(rt)
	if rev := p.policy.Revision(); rev != old {
		p.appendAudit(ctx, store.AuditPolicyChanged, policyChangedEvent{OldRevision: old, NewRevision: rev})
	}
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
	if tr, ok := p.trail(); ok {
		wg.Add(1)
		go func() { defer wg.Done(); p.retentionLoop(runCtx, tr) }()
	}
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
	// The receipt streams and the sweeper stop before the plugins do (a receipt not acknowledged now
	// comes again after the restart); the dispatcher then drains on a budget of its own, so that a slow
	// front cannot leave it none.
	stopBackground()
	wg.Wait()
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout.D())
	defer cancelDrain()
	p.out.close(drainCtx)
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

// Check validates a configuration offline: the region data, its templates, the audit keyring (when
// one is configured) and the retention in force, and the policy bundle, which is compiled and whose
// Rego tests are run, exactly as at start-up.
func Check(ctx context.Context, cfg config.Config) error {
	p := &Proxy{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	rt, err := p.loadRuntime()
	if err != nil {
		return err
	}
	if _, dev := cfg.KeyringRef(); !dev {
		if _, err := LoadAuditKeyring(&cfg, p.log, false); err != nil {
			return err
		}
	}
	if _, _, err := PurgePolicyFor(&cfg, rt.region.Data, time.Now()); err != nil {
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
	if _, err := policy.CompileLive(ctx, bundle); err != nil || cfg.ShadowPoliciesDir == "" {
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

// The audit trail's operator surface: the keyring, the events of configuration and policy changes,
// checkpoints, retention and erasure. The store does the writing and the cryptography (package audit);
// the proxy decides when.

// CodeKeyringRegion is the error code of a keyring made for another region than the configuration's.
const CodeKeyringRegion = "keyring_region_mismatch"

// LoadAuditKeyring loads the keyring that audit.keyring refers to. Without one it uses the development
// keyring in data_dir/audit-keyring.json, and when create is true and that file does not exist it
// generates one (mode 0600) and warns loudly: a development keyring lives beside the data it protects.
// The keyring must be the configured region's.
func LoadAuditKeyring(cfg *config.Config, log *slog.Logger, create bool) (*audit.Keyring, error) {
	if log == nil {
		log = slog.Default()
	}
	ref, dev := cfg.KeyringRef()
	if dev {
		path := strings.TrimPrefix(ref, "file:")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && create {
			if err := writeDevKeyring(path, cfg.Region, time.Now()); err != nil {
				return nil, fmt.Errorf("audit.keyring: %w", err)
			}
			log.Warn("AUDIT KEYRING GENERATED FOR DEVELOPMENT: audit.keyring is not set, so a new keyring was written beside the data it protects; "+
				"anyone who can read data_dir can decrypt the audit trail and forge checkpoints. Set audit.keyring to a file: or env: reference in production",
				"path", path, "region", cfg.Region)
		} else if err == nil {
			log.Warn("using the development audit keyring in data_dir; set audit.keyring in production", "path", path)
		}
	}
	kr, err := audit.LoadKeyring(ref)
	if err != nil {
		return nil, fmt.Errorf("audit.keyring: %w", err)
	}
	if kr.Region() != cfg.Region {
		return nil, &audit.Error{Code: CodeKeyringRegion, Message: "audit.keyring: the keyring is for region " +
			kr.Region() + ", the configuration for region " + cfg.Region}
	}
	return kr, nil
}

// writeDevKeyring generates a keyring for region and writes it to path with mode 0600, never over an
// existing file.
func writeDevKeyring(path, region string, now time.Time) error {
	kr, err := audit.GenerateKeyring(region, now)
	if err != nil {
		return err
	}
	data, err := kr.Export()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	return f.Close()
}

// AuditStoreOptions are the store options of a configuration with its audit keyring. The store signs
// checkpoints itself (every audit.checkpoint_every events or audit.checkpoint_interval, and at Close).
func AuditStoreOptions(cfg *config.Config, kr *audit.Keyring, log *slog.Logger) store.Options {
	return store.Options{MaxBatch: cfg.Store.MaxBatch, Logger: log, Audit: kr, Region: cfg.Region,
		CheckpointEvery: cfg.Audit.CheckpointEvery, CheckpointInterval: cfg.Audit.CheckpointInterval.D()}
}

// trail returns the store's audit trail, when the store keeps one.
func (p *Proxy) trail() (store.AuditTrail, bool) {
	tr, ok := p.store.(store.AuditTrail)
	return tr, ok
}

// appendAudit records an event that is not a message write. v is marshalled to JSON and must hold no
// personal data. A failure is logged, not returned: the change it records has happened either way.
func (p *Proxy) appendAudit(ctx context.Context, kind string, v any) {
	tr, ok := p.trail()
	if !ok {
		return
	}
	data, err := json.Marshal(v)
	if err == nil {
		err = tr.AppendEvent(ctx, store.AuditAppend{Kind: kind, Data: data, At: p.now()})
	}
	if err != nil {
		p.log.Error("cannot record an audit event", "kind", kind, "err", err)
	}
}

// configEvent is the data of a "config.loaded" event: what the proxy runs with, masked (no keys, no
// key hashes, no addresses of people).
type configEvent struct {
	Region         string            `json:"region"`
	Apps           []string          `json:"apps"`
	AdminApps      []string          `json:"admin_apps,omitempty"`
	PolicyRevision string            `json:"policy_revision"`
	Policies       string            `json:"policies"`
	SigningKey     string            `json:"signing_key"`
	ActiveDataKey  string            `json:"active_data_key"`
	DevKeyring     bool              `json:"dev_keyring,omitempty"`
	Retention      map[string]string `json:"retention,omitempty"`
	RetentionFrom  string            `json:"retention_source,omitempty"`
}

func (p *Proxy) configSummary(region *config.Region) configEvent {
	ev := configEvent{Region: p.cfg.Region, PolicyRevision: p.policy.Revision(), Policies: "embedded"}
	for _, a := range p.cfg.Apps {
		ev.Apps = append(ev.Apps, a.Name)
		if a.Admin {
			ev.AdminApps = append(ev.AdminApps, a.Name)
		}
	}
	slices.Sort(ev.Apps)
	slices.Sort(ev.AdminApps)
	if p.cfg.PoliciesDir != "" {
		ev.Policies = "policies_dir"
	}
	if p.keys != nil {
		ev.SigningKey, ev.ActiveDataKey = p.keys.SigningKeyID(), p.keys.ActiveDataKeyID()
	}
	_, ev.DevKeyring = p.cfg.KeyringRef()
	if pp, src, err := PurgePolicyFor(&p.cfg, region.Data, time.Time{}); err == nil {
		ev.Retention = map[string]string{"default": config.Duration(pp.Default).String()}
		for cat, d := range pp.PerCategory {
			ev.Retention[cat] = config.Duration(d).String()
		}
		ev.RetentionFrom = src
	}
	return ev
}

// policyChangedEvent is the data of a "policy.changed" event.
type policyChangedEvent struct {
	OldRevision string `json:"old_revision"`
	NewRevision string `json:"new_revision"`
}

// policyRefusedEvent is the data of a "policy.refused" event: the revision kept, the stable code of
// the reason and what was refused ("policy" or "region_data"). The error text is in the log only.
type policyRefusedEvent struct {
	Revision string `json:"revision"`
	Code     string `json:"code"`
	What     string `json:"what"`
}

// reloadCode is the stable code of a reload error.
func reloadCode(err error) string {
	if c := policy.ErrorCode(err); c != "" {
		return c
	}
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) && coded.ErrorCode() != "" {
		return coded.ErrorCode()
	}
	var cfgCoded interface{ Code() string }
	if errors.As(err, &cfgCoded) && cfgCoded.Code() != "" {
		return cfgCoded.Code()
	}
	return "reload_failed"
}

// CodeRetentionInvalid is the error code of a retention setting that would keep records for less
// than the minimum or cannot be read.
const CodeRetentionInvalid = "retention_invalid"

// PurgePolicyFor returns the retention in force at now and where it comes from: the region data's
// "retention" key ({default: 400d, per_category: {otp: 365d}}) when it has one, else the config's
// audit.retention. Region data wins because compliance owns it. A setting below 365 days, or one that
// cannot be read, is an error: the retention job then purges nothing.
func PurgePolicyFor(cfg *config.Config, regionData map[string]any, now time.Time) (store.PurgePolicy, string, error) {
	pp := store.PurgePolicy{Now: now, Default: cfg.Audit.Retention.Default.D(), PerCategory: map[string]time.Duration{}}
	for cat, d := range cfg.Audit.Retention.PerCategory {
		pp.PerCategory[cat] = d.D()
	}
	src := "config"
	if raw, ok := regionData["retention"]; ok {
		src = "region"
		bad := func(key, msg string) (store.PurgePolicy, string, error) {
			return store.PurgePolicy{}, src, &audit.Error{Code: CodeRetentionInvalid, Message: "region data retention." + key + ": " + msg}
		}
		m, ok := raw.(map[string]any)
		if !ok {
			return bad("", "must be a map with default and per_category")
		}
		parse := func(key string, v any) (time.Duration, error) {
			s, ok := v.(string)
			if !ok {
				_, _, err := bad(key, "must be a duration such as 400d")
				return 0, err
			}
			d, err := config.ParseDuration(s)
			if err != nil || d < config.MinRetention {
				_, _, err := bad(key, "must be a duration of at least 365d")
				return 0, err
			}
			return d, nil
		}
		if v, ok := m["default"]; ok {
			d, err := parse("default", v)
			if err != nil {
				return store.PurgePolicy{}, src, err
			}
			pp.Default = d
		}
		if v, ok := m["per_category"]; ok {
			cats, ok := v.(map[string]any)
			if !ok {
				return bad("per_category", "must be a map of category to duration")
			}
			pp.PerCategory = map[string]time.Duration{}
			for cat, dv := range cats {
				if _, err := sms.ParseCategory(cat); err != nil {
					return bad("per_category."+cat, "unknown category")
				}
				d, err := parse("per_category."+cat, dv)
				if err != nil {
					return store.PurgePolicy{}, src, err
				}
				pp.PerCategory[cat] = d
			}
		}
	}
	if pp.Default < config.MinRetention {
		return store.PurgePolicy{}, src, &audit.Error{Code: CodeRetentionInvalid, Message: "the default retention is below 365 days"}
	}
	return pp, src, nil
}

// retentionLoop purges expired records once at start and then every audit.retention_interval.
func (p *Proxy) retentionLoop(ctx context.Context, tr store.AuditTrail) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.purgeOnce(ctx, tr)
		t.Reset(p.cfg.Audit.RetentionInterval.D())
	}
}

// purgeOnce runs one retention purge with the retention in force now.
func (p *Proxy) purgeOnce(ctx context.Context, tr store.AuditTrail) {
	pp, src, err := PurgePolicyFor(&p.cfg, p.runtime().region.Data, p.now())
	if err != nil {
		p.log.Error("retention purge skipped: the retention setting is invalid", "source", src, "code", audit.CodeOf(err), "err", err)
		return
	}
	res, err := tr.Purge(ctx, pp)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Error("retention purge failed; it is retried at the next interval", "err", err,
				"messages", res.Messages, "events", res.Events)
		}
		return
	}
	if res.Messages > 0 || res.Events > 0 {
		p.log.Info("retention purge", "messages", res.Messages, "events", res.Events, "batches", res.Batches, "source", src)
	}
}

// Admin reports whether app may use the operator endpoints (config apps[].admin).
func (p *Proxy) Admin(app string) bool { return p.admins[app] }

// EraseSubject erases a data subject for an admin app: their subject key is destroyed, so every
// personal field sealed for the number becomes unreadable, and a "subject.erased" event records who
// asked (requestedBy, with the app) while the chain still verifies. Opt-outs of the number keep
// blocking sends.
func (p *Proxy) EraseSubject(ctx context.Context, app, number, requestedBy string) (store.EraseResult, error) {
	if !p.Admin(app) {
		return store.EraseResult{}, &Error{Class: "forbidden", Code: "admin_required", Message: "Only an app marked admin in the configuration may erase a data subject."}
	}
	ph, err := sms.ParsePhone(strings.TrimSpace(number))
	if err != nil {
		return store.EraseResult{}, &Error{Class: "invalid", Code: sms.CodeInvalidPhone, Message: "The number is not a valid E.164 phone number.", err: err}
	}
	tr, ok := p.trail()
	if !ok {
		return store.EraseResult{}, &Error{Class: "unavailable", Code: "not_supported", Message: "This store keeps no audit trail."}
	}
	res, err := tr.EraseSubject(ctx, ph.E164, requestedBy+" (app "+app+")")
	if err != nil {
		return store.EraseResult{}, recipientErr(err, "subject_not_found")
	}
	p.facts.invalidate(ph.E164)
	p.log.Info("data subject erased", "app", app, "seq", res.Seq, "existed", res.Existed)
	return res, nil
}
