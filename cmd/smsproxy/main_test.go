package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smsproxy/smsproxy/proxy/config"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// devKeyHash is the SHA-256 of config.DevAPIKey.
var devKeyHash = func() string { sum := sha256.Sum256([]byte(config.DevAPIKey)); return hex.EncodeToString(sum[:]) }()

func TestConfigCheck(t *testing.T) {
	if code, out, errs := runCmd("config", "check"); code != 0 || !strings.Contains(out, `region "dev"`) {
		t.Fatalf("defaults: %d %q %q", code, out, errs)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("region: dev\nlisten: 127.0.0.1:9999\nproviders:\n  simulator:\n    config: {receipt_delay: 1s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd("config", "check", "-config", good); code != 0 {
		t.Fatalf("good file: %d %s", code, errs)
	}
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "regoin: dev\n", "unknown key regoin"},
		{"unknown region", "region: mars\n", "mars/region.yaml: region data not found"},
		{"unknown provider override", "providers:\n  twilio: {disabled: true}\n", `providers.twilio: region "dev" has no provider "twilio"`},
		{"no apps outside dev", "region: sg\n", "apps: at least one app is required"},
		{"dev key outside dev", "region: sg\napps:\n  - name: pay\n    key_sha256: " + devKeyHash + "\n", "apps[0].key_sha256: is the public development key"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runCmd("config", "check", "-config", path)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", c.name, code, errs, c.want)
		}
	}
	if code, out, errs := runCmd("config", "check", "-config", good); code != 0 || !strings.Contains(out, "warning: app dev uses the public development API key") {
		t.Errorf("dev key in region dev: exit %d, stdout %q, stderr %q, want a warning", code, out, errs)
	}
	devsg := filepath.Join(dir, "devsg.yaml")
	if err := os.WriteFile(devsg, []byte("region: sg\napps:\n  - name: pay\n    key_sha256: "+devKeyHash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd("serve", "-config", devsg); code != 1 || !strings.Contains(errs, "key_sha256: is the public development key") {
		t.Errorf("serve with the dev key outside dev: exit %d, stderr %q", code, errs)
	}
	sg := filepath.Join(dir, "sg.yaml")
	if err := os.WriteFile(sg, []byte("region: sg\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd("serve", "-config", sg); code != 1 || !strings.Contains(errs, "cannot serve: apps: at least one app is required") {
		t.Errorf("serve without apps outside dev: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := runCmd("config", "check", "-config", filepath.Join(dir, "missing.yaml")); code != 1 {
		t.Errorf("missing file: exit %d", code)
	}
}

func TestCommandLine(t *testing.T) {
	if code, out, _ := runCmd("version"); code != 0 || !strings.HasPrefix(out, "smsproxy ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errs := runCmd("frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errs)
	}
	if code, _, errs := runCmd("config"); code != 2 || !strings.Contains(errs, "usage") {
		t.Errorf("config without check: %d %q", code, errs)
	}
	if code, _, errs := runCmd("plugin", "nosuch"); code != 2 || !strings.Contains(errs, `no built-in plugin "nosuch"`) {
		t.Errorf("unknown plugin: %d %q", code, errs)
	}
	if code, _, _ := runCmd("serve", "-config"); code != 2 {
		t.Errorf("flag without value: %d", code)
	}
}

func TestLoggerRedacts(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log := newLogger(config.Log{Level: "info", Format: format}, &buf)
		log.Info("sending to +6591234567 failed", "to", "+6591234567", "body", "Your code is 739215", "provider", "simulator")
		out := buf.String()
		for _, leak := range []string{"6591234567", "739215"} {
			if strings.Contains(out, leak) {
				t.Errorf("%s log leaks %q: %s", format, leak, out)
			}
		}
		if !strings.Contains(out, "simulator") {
			t.Errorf("%s log lost a benign attribute: %s", format, out)
		}
	}
}
