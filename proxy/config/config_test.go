package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/smsproxy/smsproxy/regions"
)

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if c.StorePath() != "./data/smsproxy.db" {
		t.Errorf("StorePath = %q", c.StorePath())
	}
	empty, err := Parse(nil)
	if err != nil || empty.Region != "dev" || len(empty.Apps) != 1 {
		t.Fatalf("empty file: %v %+v", err, empty)
	}
}

func TestParseNamesTheKeyAtFault(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "regoin: sg\n", "unknown key regoin"},
		{"unknown nested key", "store: {pth: x.db}\n", "unknown key pth"},
		{"bad duration", "shutdown_timeout: soon\n", `"soon" is not a duration`},
		{"bad listen", "listen: nowhere\n", "listen: must be host:port"},
		{"bad region", "region: Asia/SG\n", "region: must be a lower-case name"},
		{"bad log level", "log: {level: loud, format: json}\n", "log.level"},
		{"app without key", "apps: [{name: pay}]\n", "apps[0]: needs key_sha256 or key"},
		{"short hash", "apps: [{name: pay, key_sha256: abc}]\n", "apps[0].key_sha256: must be 64 hex"},
		{"two apps one name", "apps: [{name: pay, key_sha256: " + strings.Repeat("a", 64) + "}, {name: pay, key_sha256: " + strings.Repeat("b", 64) + "}]\n", "apps[1].name: app \"pay\" is declared twice"},
		{"shared key", "apps: [{name: a, key_sha256: " + strings.Repeat("a", 64) + "}, {name: b, key_sha256: " + strings.Repeat("A", 64) + "}]\n", "two apps share one API key"},
		{"missing env secret", "apps: [{name: pay, key: {env: SMSPROXY_TEST_UNSET_VAR}}]\n", "apps[0].key: environment variable SMSPROXY_TEST_UNSET_VAR is not set"},
		{"both key kinds", "apps: [{name: pay, key: {env: X}, key_sha256: " + strings.Repeat("a", 64) + "}]\n", "set key or key_sha256, not both"},
		{"limiter too small", "limits: {keys: 10}\n", "limits.keys"},
		{"batch out of range", "store: {max_batch: 0}\n", "store.max_batch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestSecretsAreResolvedAndHashed(t *testing.T) {
	t.Setenv("SMSPROXY_TEST_KEY", "a-long-enough-api-key")
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte("another-long-api-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte("apps:\n  - {name: a, key: {env: SMSPROXY_TEST_KEY}}\n  - {name: b, key: {file: " + file + "}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Apps[0].Key != nil || c.Apps[1].Key != nil {
		t.Error("the key reference is kept after hashing")
	}
	if c.Apps[0].KeySHA256 != sha("a-long-enough-api-key") || c.Apps[1].KeySHA256 != sha("another-long-api-key") {
		t.Errorf("hashes %q %q", c.Apps[0].KeySHA256, c.Apps[1].KeySHA256)
	}
	if _, err := Parse([]byte("apps: [{name: a, key: {env: SMSPROXY_TEST_SHORT}}]\n")); err == nil {
		t.Error("unset env accepted")
	}
	t.Setenv("SMSPROXY_TEST_SHORT", "short")
	if _, err := Parse([]byte("apps: [{name: a, key: {env: SMSPROXY_TEST_SHORT}}]\n")); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short key: %v", err)
	}
}

func TestEmbeddedDevRegion(t *testing.T) {
	r, err := LoadRegion(regions.FS, "dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"SG", "ID", "MY", "US", "GB", "DE"} {
		if len(r.Countries[c].Providers) == 0 {
			t.Errorf("country %s has no route", c)
		}
	}
	if r.Data["region"] != "dev" || r.Data["countries"].(map[string]any)["US"].(map[string]any)["alphanumeric"] != false {
		t.Errorf("policy data = %v", r.Data)
	}
	if len(r.Templates) < 3 {
		t.Errorf("templates = %d", len(r.Templates))
	}
}

func TestRegionErrorsNameFileAndKey(t *testing.T) {
	base := "region: x\nproviders:\n  sim: {plugin: simulator}\ncountries:\n  SG: {providers: [sim]}\n"
	cases := []struct {
		name, region, templates, want string
	}{
		{"wrong name", strings.Replace(base, "region: x", "region: y", 1), "", `x/region.yaml: region: must be "x"`},
		{"unknown key", base + "colour: red\n", "", "unknown key colour"},
		{"lower-case country", strings.Replace(base, "SG:", "sg:", 1), "", "countries.sg"},
		{"unknown country key", strings.Replace(base, "{providers: [sim]}", "{providers: [sim], alphanumerc: true}", 1), "", "countries.SG.alphanumerc: unknown key"},
		{"wrong type", strings.Replace(base, "{providers: [sim]}", "{providers: [sim], alphanumeric: yes please}", 1), "", "countries.SG.alphanumeric: must be a bool"},
		{"undeclared provider", strings.Replace(base, "[sim]", "[twilio]", 1), "", `countries.SG.providers[0]: provider "twilio" is not declared`},
		{"third-party without checksum", strings.Replace(base, "{plugin: simulator}", "{path: /opt/p}", 1), "", "providers.sim.sha256"},
		{"bad limit", base + "limits:\n  app: {rate: 0, period: 1s}\n", "", "limits.app.rate: must be positive"},
		{"bad period", base + "limits:\n  app: {rate: 1, period: often}\n", "", "limits.app.period"},
		{"bad template category", base, "templates:\n  - {id: t, category: promo, locales: {en: hi}}\n", `x/templates.yaml: templates[0].category: "promo"`},
		{"bad template", base, "templates:\n  - {id: t, category: otp, locales: {en: \"code {{code\"}}\n", "x/templates.yaml: templates"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{"x/region.yaml": {Data: []byte(complete(c.region))}}
			if c.templates != "" {
				fsys["x/templates.yaml"] = &fstest.MapFile{Data: []byte(c.templates)}
			}
			_, err := LoadRegion(fsys, "x")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := LoadRegion(fstest.MapFS{}, "nowhere"); err == nil || !strings.Contains(err.Error(), "region data not found") {
		t.Errorf("missing region: %v", err)
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
