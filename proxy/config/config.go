// Package config loads and validates smsproxy's configuration file and the region data it points at.
// Loading is two steps, as elsewhere in smsproxy: Load decodes strictly (an unknown key is an error that
// names it) and Validate checks every value, naming the key at fault.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/smsproxy/smsproxy/proxy/sms"
)

// DevAPIKey is the API key of the built-in "dev" app that the defaults configure, so that a newcomer can
// send a message without writing a config file. A config file that declares apps replaces it.
const DevAPIKey = "smsproxy-dev-key"

// Config is the whole configuration of one regional proxy.
type Config struct {
	// Region names the region data to load, e.g. "dev" or "sg".
	Region string `yaml:"region"`
	// Listen is the HTTP address of the app-facing API.
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite file and the simulator's state.
	DataDir string `yaml:"data_dir"`
	// RegionsDir, when set, is read instead of the embedded region data (it holds <region>/*.yaml).
	RegionsDir string `yaml:"regions_dir"`
	// PoliciesDir, when set, is read instead of the embedded policies and watched for changes.
	PoliciesDir string `yaml:"policies_dir"`
	// ShadowPoliciesDir, when set, holds a candidate policy bundle evaluated beside the live one on
	// real traffic without affecting it (shadow mode); disagreements are counted and logged.
	ShadowPoliciesDir string `yaml:"shadow_policies_dir"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight requests and dispatches.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Log sets the log level and format.
	Log Log `yaml:"log"`
	// Apps are the applications allowed to send, each with its API key.
	Apps []App `yaml:"apps"`
	// Providers overrides the region's provider settings, e.g. a simulator's receipt delay.
	Providers map[string]ProviderOverride `yaml:"providers"`
	// Limits configures the limiter.
	Limits Limits `yaml:"limits"`
	// Store configures the message store.
	Store Store `yaml:"store"`
	// Dispatch configures how accepted messages reach providers.
	Dispatch Dispatch `yaml:"dispatch"`
	// Audit configures the audit trail: its keys, checkpoints and retention.
	Audit Audit `yaml:"audit"`
}

// MinRetention is the shortest retention the proxy accepts for any record: one year (365 days).
const MinRetention = 365 * 24 * time.Hour

// Audit configures the region's audit trail (see docs/AUDIT.md).
type Audit struct {
	// Keyring is a reference to the region's audit keyring: "file:/path/keys.json" or "env:NAME".
	// Config text never holds keys. Empty means a development keyring generated under DataDir.
	Keyring string `yaml:"keyring"`
	// CheckpointEvery signs a checkpoint after this many new events.
	CheckpointEvery int `yaml:"checkpoint_every"`
	// CheckpointInterval signs a checkpoint this often when the trail moved.
	CheckpointInterval Duration `yaml:"checkpoint_interval"`
	// RetentionInterval is how often the retention job purges expired records.
	RetentionInterval Duration `yaml:"retention_interval"`
	// Retention says how long records are kept. A retention key in the region data overrides it.
	Retention Retention `yaml:"retention"`
}

// Retention is how long messages and their audit events are kept, by message category.
type Retention struct {
	// Default applies to every category not in PerCategory; at least 365 days.
	Default Duration `yaml:"default"`
	// PerCategory overrides Default per message category; each at least 365 days.
	PerCategory map[string]Duration `yaml:"per_category"`
}

// DevKeyringFile is the file under DataDir that holds the development keyring generated when
// audit.keyring is not set.
const DevKeyringFile = "audit-keyring.json"

// KeyringRef is the configured keyring reference, or "file:" the development keyring under DataDir
// when none is configured; dev tells which.
func (c *Config) KeyringRef() (ref string, dev bool) {
	if c.Audit.Keyring != "" {
		return c.Audit.Keyring, false
	}
	return "file:" + strings.TrimSuffix(c.DataDir, "/") + "/" + DevKeyringFile, true
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json or text.
	Format string `yaml:"format"`
}

// App is one application allowed to send through the proxy.
type App struct {
	// Name identifies the app in records; an app sees only its own messages.
	Name string `yaml:"name"`
	// KeySHA256 is the hex SHA-256 of the app's API key. Exactly one of KeySHA256 and Key is set.
	KeySHA256 string `yaml:"key_sha256"`
	// Key is a reference to the API key itself (env or file); it is hashed on load and never kept.
	Key *Secret `yaml:"key"`
	// Admin lets the app use the operator endpoints, such as POST /v1/erasures.
	Admin bool `yaml:"admin"`
}

// ProviderOverride changes a region provider's settings for this deployment.
type ProviderOverride struct {
	// Config is merged key by key over the region's config for the provider.
	Config map[string]any `yaml:"config"`
	// Disabled removes the provider from every route.
	Disabled bool `yaml:"disabled"`
}

// Limits configures the in-process limiter.
type Limits struct {
	// Keys bounds how many limit keys are kept in memory (about 23 bytes each; the least recently
	// used are dropped, nearly in LRU order: size it at about twice the keys active within the
	// longest limit period).
	Keys int `yaml:"keys"`
}

// Store configures the embedded SQLite store.
type Store struct {
	// Path is the SQLite file; relative paths are under DataDir.
	Path string `yaml:"path"`
	// MaxBatch bounds how many writes share one commit.
	MaxBatch int `yaml:"max_batch"`
}

// Dispatch configures the hand-off to providers.
type Dispatch struct {
	// Timeout bounds one Send call to a provider.
	Timeout Duration `yaml:"timeout"`
	// MaxAttempts bounds how often a message is tried before it fails for good.
	MaxAttempts int `yaml:"max_attempts"`
	// BreakerFailures is how many consecutive failures open a provider's circuit.
	BreakerFailures int `yaml:"breaker_failures"`
	// BreakerOpenFor is how long an open circuit stays open before one probe is let through.
	BreakerOpenFor Duration `yaml:"breaker_open_for"`
}

// Default returns the configuration used when no file is given: region dev on 127.0.0.1:8080 with
// data under ./data and one app "dev" whose key is DevAPIKey.
func Default() Config {
	return Config{
		Region:          "dev",
		Listen:          "127.0.0.1:8080",
		DataDir:         "./data",
		ShutdownTimeout: Duration(15 * time.Second),
		Log:             Log{Level: "info", Format: "json"},
		Apps:            []App{{Name: "dev", KeySHA256: devKeySHA256}},
		Limits:          Limits{Keys: 2_000_000},
		Store:           Store{Path: "smsproxy.db", MaxBatch: 512},
		Dispatch: Dispatch{
			Timeout:         Duration(5 * time.Second),
			MaxAttempts:     8,
			BreakerFailures: 5,
			BreakerOpenFor:  Duration(10 * time.Second),
		},
		Audit: Audit{
			CheckpointEvery:    10_000,
			CheckpointInterval: Duration(time.Minute),
			RetentionInterval:  Duration(time.Hour),
			Retention:          Retention{Default: Duration(400 * 24 * time.Hour)},
		},
	}
}

// devKeySHA256 is the hex SHA-256 of DevAPIKey, as apps' key_sha256 holds it.
var devKeySHA256 = func() string {
	sum := sha256.Sum256([]byte(DevAPIKey))
	return hex.EncodeToString(sum[:])
}()

// CheckServe reports what a config that passed Validate still lacks to serve apps: at least one
// app (outside region dev, no built-in app stands in).
func (c *Config) CheckServe() error {
	if len(c.Apps) == 0 {
		return &Error{Key: "apps", Msg: "at least one app is required to serve (the built-in dev app, whose key is public, serves region dev only)"}
	}
	return nil
}

// DevKeyApps names the apps whose API key is the public development key (DevAPIKey).
func (c *Config) DevKeyApps() []string {
	var names []string
	for _, a := range c.Apps {
		if a.KeySHA256 == devKeySHA256 {
			names = append(names, a.Name)
		}
	}
	return names
}

// Load reads a YAML config file over the defaults. Unknown keys are refused. The result is validated.
func Load(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, &Error{Key: path, Msg: err.Error()}
	}
	return Parse(raw)
}

// Parse decodes YAML config text over the defaults and validates it. Apps declared in the text replace
// the built-in dev app; without any, region dev keeps it and any other region is refused.
func Parse(raw []byte) (Config, error) {
	c := Default()
	c.Apps = nil
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, &Error{Key: "config", Msg: yamlMessage(err)}
	}
	if len(c.Apps) == 0 && c.Region == "dev" {
		c.Apps = Default().Apps
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every value and returns all problems found, each naming its key.
func (c *Config) Validate() error {
	var errs Errors
	add := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if !validName(c.Region) {
		add("region", "must be a lower-case name such as dev or sg, got %q", c.Region)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen", "must be host:port: %v", err)
	}
	if c.DataDir == "" {
		add("data_dir", "must not be empty")
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown_timeout", "must be positive")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		add("log.format", "must be json or text, got %q", c.Log.Format)
	}
	names := map[string]bool{}
	hashes := map[string]bool{}
	for i := range c.Apps {
		a := &c.Apps[i]
		key := fmt.Sprintf("apps[%d]", i)
		if !validName(a.Name) {
			add(key+".name", "must be a name of lower-case letters, digits, - and _, got %q", a.Name)
		}
		if names[a.Name] {
			add(key+".name", "app %q is declared twice", a.Name)
		}
		names[a.Name] = true
		switch {
		case a.Key != nil && a.KeySHA256 != "":
			add(key, "set key or key_sha256, not both")
		case a.Key != nil:
			v, err := a.Key.Resolve()
			if err != nil {
				add(key+".key", "%v", err)
				continue
			}
			if len(v) < 16 {
				add(key+".key", "an API key must be at least 16 characters")
				continue
			}
			sum := sha256.Sum256([]byte(v))
			a.KeySHA256, a.Key = hex.EncodeToString(sum[:]), nil
		case a.KeySHA256 == "":
			add(key, "needs key_sha256 or key")
			continue
		}
		a.KeySHA256 = strings.ToLower(a.KeySHA256)
		if b, err := hex.DecodeString(a.KeySHA256); err != nil || len(b) != sha256.Size {
			add(key+".key_sha256", "must be 64 hex characters (the SHA-256 of the key)")
		} else if hashes[a.KeySHA256] {
			add(key+".key_sha256", "two apps share one API key")
		} else if a.KeySHA256 == devKeySHA256 && c.Region != "dev" {
			add(key+".key_sha256", "is the public development key %q; it serves region dev only", DevAPIKey)
		}
		hashes[a.KeySHA256] = true
	}
	if c.Limits.Keys < 1000 {
		add("limits.keys", "must be at least 1000, got %d", c.Limits.Keys)
	}
	if c.ShadowPoliciesDir != "" && c.ShadowPoliciesDir == c.PoliciesDir {
		add("shadow_policies_dir", "must differ from policies_dir: a candidate compared with itself never disagrees")
	}
	if c.Store.Path == "" {
		add("store.path", "must not be empty")
	}
	if c.Store.MaxBatch < 1 || c.Store.MaxBatch > 10000 {
		add("store.max_batch", "must be between 1 and 10000, got %d", c.Store.MaxBatch)
	}
	if c.Dispatch.Timeout <= 0 {
		add("dispatch.timeout", "must be positive")
	}
	if c.Dispatch.MaxAttempts < 1 {
		add("dispatch.max_attempts", "must be at least 1")
	}
	if c.Dispatch.BreakerFailures < 1 {
		add("dispatch.breaker_failures", "must be at least 1")
	}
	if c.Dispatch.BreakerOpenFor <= 0 {
		add("dispatch.breaker_open_for", "must be positive")
	}
	c.validateAudit(add)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// validateAudit checks the audit section. Its messages never quote audit.keyring's value: a key
// pasted there by mistake must not reach a log.
func (c *Config) validateAudit(add func(key, format string, args ...any)) {
	a := &c.Audit
	if a.Keyring != "" {
		kind, arg, ok := strings.Cut(a.Keyring, ":")
		if !ok || arg == "" || (kind != "file" && kind != "env") {
			add("audit.keyring", `must be a reference "file:/path/to/keys.json" or "env:NAME"; keys never go in the config file`)
		}
	}
	if a.CheckpointEvery < 1 || a.CheckpointEvery > 10_000_000 {
		add("audit.checkpoint_every", "must be between 1 and 10000000, got %d", a.CheckpointEvery)
	}
	if a.CheckpointInterval < Duration(time.Second) {
		add("audit.checkpoint_interval", "must be at least 1s")
	}
	if a.RetentionInterval < Duration(time.Minute) {
		add("audit.retention_interval", "must be at least 1m")
	}
	if a.Retention.Default.D() < MinRetention {
		add("audit.retention.default", "must be at least 365d, got %s", a.Retention.Default)
	}
	cats := make([]string, 0, len(a.Retention.PerCategory))
	for cat := range a.Retention.PerCategory {
		cats = append(cats, cat)
	}
	slices.Sort(cats)
	for _, cat := range cats {
		key := "audit.retention.per_category." + cat
		if _, err := sms.ParseCategory(cat); err != nil {
			add(key, "unknown category: must be one of otp, transaction, alert, security, marketing")
		} else if d := a.Retention.PerCategory[cat]; d.D() < MinRetention {
			add(key, "must be at least 365d, got %s", d)
		}
	}
}

// StorePath is the SQLite file's path with a relative path placed under DataDir.
func (c *Config) StorePath() string {
	if strings.HasPrefix(c.Store.Path, "/") {
		return c.Store.Path
	}
	return strings.TrimSuffix(c.DataDir, "/") + "/" + c.Store.Path
}

func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// yamlMessage turns yaml.v3's type errors ("field x not found in type config.Config") into key names.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if i := strings.Index(m, "field "); i >= 0 && strings.Contains(m, " not found in type ") {
			rest := m[i+len("field "):]
			field := rest[:strings.Index(rest, " not found")]
			m = m[:i] + "unknown key " + field
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}

// Error is one configuration problem, naming the key at fault.
type Error struct {
	Key string
	Msg string
}

// Error returns "key: problem".
func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// Code is the stable error code of every configuration problem.
func (e *Error) Code() string { return "invalid_config" }

// Errors is every problem Validate found.
type Errors []*Error

// Error joins the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Duration is a time.Duration written as a Go duration string ("15s") in YAML, with "d" for days of
// 24 hours also accepted ("400d", "1d12h").
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a duration such as 15s or 400d is expected", n.Line)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 15s or 400d", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// maxDays bounds the day count of a duration (about 27,000 years), far below time.Duration's limit.
const maxDays = 10_000_000

// ParseDuration parses a Go duration string, optionally led by a whole number of days: "400d",
// "1d12h", "90s". A day is 24 hours.
func ParseDuration(s string) (time.Duration, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i == len(s) || s[i] != 'd' {
		return time.ParseDuration(s)
	}
	days, err := strconv.Atoi(s[:i])
	if err != nil || days > maxDays {
		return 0, fmt.Errorf("too many days")
	}
	v := time.Duration(days) * 24 * time.Hour
	if rest := s[i+1:]; rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, fmt.Errorf("bad duration after the days")
		}
		v += r
	}
	return v, nil
}

// String writes the duration in whole days when it is a multiple of a day ("400d"), else as Go does.
func (d Duration) String() string {
	const day = Duration(24 * time.Hour)
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return time.Duration(d).String()
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
