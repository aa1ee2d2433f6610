package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"15s", 15 * time.Second, true},
		{"400d", 400 * day, true},
		{"365d", 365 * day, true},
		{"1d12h", day + 12*time.Hour, true},
		{"0d", 0, true},
		{"1h30m", 90 * time.Minute, true},
		{"d", 0, false},
		{"5days", 0, false},
		{"1d-2h", 0, false},
		{"-5d", 0, false},
		{"99999999999d", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestDurationStringUsesDays(t *testing.T) {
	for d, want := range map[Duration]string{
		Duration(400 * 24 * time.Hour): "400d",
		Duration(90 * time.Second):     "1m30s",
		Duration(36 * time.Hour):       "36h0m0s",
	} {
		if got := d.String(); got != want {
			t.Errorf("%d: got %q, want %q", int64(d), got, want)
		}
	}
}

func TestAuditDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Audit
	if a.Keyring != "" || a.CheckpointEvery != 10_000 || a.CheckpointInterval.D() != time.Minute ||
		a.RetentionInterval.D() != time.Hour || a.Retention.Default.D() != 400*24*time.Hour {
		t.Fatalf("audit defaults: %+v", a)
	}
	ref, dev := c.KeyringRef()
	if !dev || ref != "file:./data/audit-keyring.json" {
		t.Fatalf("KeyringRef = %q, %v", ref, dev)
	}
}

func TestAuditConfigParses(t *testing.T) {
	c, err := Parse([]byte(`audit:
  keyring: env:SMSPROXY_AUDIT_KEYS
  checkpoint_every: 500
  checkpoint_interval: 30s
  retention_interval: 10m
  retention: {default: 730d, per_category: {otp: 365d, marketing: 1d}}
`))
	if err == nil || !strings.Contains(err.Error(), "audit.retention.per_category.marketing: must be at least 365d, got 1d") {
		t.Fatalf("short marketing retention: %v", err)
	}
	c, err = Parse([]byte(`audit:
  keyring: env:SMSPROXY_AUDIT_KEYS
  checkpoint_every: 500
  checkpoint_interval: 30s
  retention_interval: 10m
  retention: {default: 730d, per_category: {otp: 365d}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if ref, dev := c.KeyringRef(); dev || ref != "env:SMSPROXY_AUDIT_KEYS" {
		t.Fatalf("KeyringRef = %q, %v", ref, dev)
	}
	if c.Audit.Retention.Default.D() != 730*24*time.Hour || c.Audit.Retention.PerCategory["otp"].D() != 365*24*time.Hour ||
		c.Audit.CheckpointEvery != 500 || c.Audit.CheckpointInterval.D() != 30*time.Second {
		t.Fatalf("parsed: %+v", c.Audit)
	}
}

func TestAuditErrorsNameTheKey(t *testing.T) {
	const secret = `{"version":1,"signing_key":"c2VjcmV0"}`
	cases := []struct{ name, yaml, want string }{
		{"key text instead of a reference", "audit: {keyring: '" + secret + "'}\n", "audit.keyring: must be a reference"},
		{"unknown scheme", "audit: {keyring: 'vault:x'}\n", "audit.keyring: must be a reference"},
		{"empty file", "audit: {keyring: 'file:'}\n", "audit.keyring: must be a reference"},
		{"short default retention", "audit: {retention: {default: 364d}}\n", "audit.retention.default: must be at least 365d, got 364d"},
		{"unknown category", "audit: {retention: {per_category: {promo: 400d}}}\n", "audit.retention.per_category.promo: unknown category"},
		{"checkpoint_every zero", "audit: {checkpoint_every: 0}\n", "audit.checkpoint_every"},
		{"checkpoint_interval tiny", "audit: {checkpoint_interval: 10ms}\n", "audit.checkpoint_interval: must be at least 1s"},
		{"retention_interval tiny", "audit: {retention_interval: 1s}\n", "audit.retention_interval: must be at least 1m"},
		{"bad duration", "audit: {retention: {default: forever}}\n", `"forever" is not a duration`},
		{"unknown key", "audit: {keyrnig: env:X}\n", "unknown key keyrnig"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "c2VjcmV0") {
				t.Fatalf("the error quotes the keyring value: %v", err)
			}
		})
	}
}

func TestAdminApps(t *testing.T) {
	c, err := Parse([]byte("apps: [{name: ops, key_sha256: " + strings.Repeat("a", 64) + ", admin: true}, {name: pay, key_sha256: " + strings.Repeat("b", 64) + "}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Apps[0].Admin || c.Apps[1].Admin {
		t.Fatalf("admin flags: %+v", c.Apps)
	}
	if Default().Apps[0].Admin {
		t.Fatal("the dev app must not be an admin")
	}
}
