package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 27, 10, 15, 30, 0, time.UTC)

func b64(n int, fill byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

// keyringJSON is a valid keyring with fixed keys; mutate applies a change to its decoded form.
func keyringJSON(t *testing.T, mutate func(m map[string]any)) string {
	t.Helper()
	m := map[string]any{
		"version":         1,
		"region":          "sg",
		"signing_key":     map[string]any{"id": "sig-1", "seed": b64(32, 1)},
		"data_keys":       map[string]any{"dk-1": b64(32, 2), "dk-0": b64(32, 3)},
		"active_data_key": "dk-1",
		"lookup_key":      b64(32, 4),
	}
	if mutate != nil {
		mutate(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(good, []byte(keyringJSON(t, nil)), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.json")
	if err := os.WriteFile(open, []byte(keyringJSON(t, nil)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o666); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GOOD": keyringJSON(t, nil)}
	bad := func(f func(m map[string]any)) string {
		p := filepath.Join(dir, fmt.Sprintf("bad%d.json", len(env)))
		env[p] = ""
		if err := os.WriteFile(p, []byte(keyringJSON(t, f)), 0o600); err != nil {
			t.Fatal(err)
		}
		return "file:" + p
	}
	tests := []struct {
		name, ref, code string
	}{
		{"file", "file:" + good, ""},
		{"env", "env:GOOD", ""},
		{"config text is refused", keyringJSON(t, nil), CodeKeyringRef},
		{"bare path is refused", good, CodeKeyringRef},
		{"unknown scheme", "vault:secret/x", CodeKeyringRef},
		{"empty", "", CodeKeyringRef},
		{"missing file", "file:" + filepath.Join(dir, "nope.json"), CodeKeyringUnreadable},
		{"unset env", "env:NOPE", CodeKeyringUnreadable},
		{"world-writable file", "file:" + open, CodeKeyringUnreadable},
		{"not json", bad(func(m map[string]any) { m["version"] = "x" }), CodeKeyringInvalid},
		{"wrong version", bad(func(m map[string]any) { m["version"] = 2 }), CodeKeyringInvalid},
		{"unknown field", bad(func(m map[string]any) { m["key"] = "x" }), CodeKeyringInvalid},
		{"no region", bad(func(m map[string]any) { delete(m, "region") }), CodeKeyringInvalid},
		{"short seed", bad(func(m map[string]any) { m["signing_key"] = map[string]any{"id": "s", "seed": b64(31, 1)} }), CodeKeyringInvalid},
		{"seed not base64", bad(func(m map[string]any) { m["signing_key"] = map[string]any{"id": "s", "seed": "!!"} }), CodeKeyringInvalid},
		{"short data key", bad(func(m map[string]any) { m["data_keys"] = map[string]any{"dk-1": b64(16, 2)} }), CodeKeyringInvalid},
		{"no data keys", bad(func(m map[string]any) { m["data_keys"] = map[string]any{} }), CodeKeyringInvalid},
		{"active not a data key", bad(func(m map[string]any) { m["active_data_key"] = "dk-9" }), CodeKeyringInvalid},
		{"long lookup key", bad(func(m map[string]any) { m["lookup_key"] = b64(64, 4) }), CodeKeyringInvalid},
		{"key id with space", bad(func(m map[string]any) {
			m["data_keys"] = map[string]any{"dk 1": b64(32, 2)}
			m["active_data_key"] = "dk 1"
		}), CodeKeyringInvalid},
		{"retired key reuses active id", bad(func(m map[string]any) { m["retired_signing_keys"] = map[string]any{"sig-1": b64(32, 5)} }), CodeKeyringInvalid},
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := loadKeyring(tt.ref, lookup)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("LoadKeyring: %v", err)
				}
				if kr.Region() != "sg" || kr.ActiveDataKeyID() != "dk-1" || kr.SigningKeyID() != "sig-1" {
					t.Fatalf("loaded %v", kr)
				}
				if got := strings.Join(kr.DataKeyIDs(), ","); got != "dk-0,dk-1" {
					t.Fatalf("data keys %q", got)
				}
				return
			}
			if CodeOf(err) != tt.code {
				t.Fatalf("error %v, want code %s", err, tt.code)
			}
			for _, secret := range []string{b64(32, 1), b64(32, 2), b64(32, 4), b64(31, 1), b64(16, 2)} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q quotes key material", err)
				}
			}
		})
	}
}

func TestLoadKeyringFromRealEnv(t *testing.T) {
	t.Setenv("SMSPROXY_TEST_AUDIT_KEYS", keyringJSON(t, nil))
	if _, err := LoadKeyring("env:SMSPROXY_TEST_AUDIT_KEYS"); err != nil {
		t.Fatal(err)
	}
}

func TestKeyringNeverPrintsKeys(t *testing.T) {
	kr, err := parseKeyring([]byte(keyringJSON(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "kr", kr)
	js, _ := json.Marshal(kr)
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", kr), "%+v": fmt.Sprintf("%+v", kr), "%#v": fmt.Sprintf("%#v", kr),
		"%s": fmt.Sprintf("%s", kr), "json": string(js), "slog": logged.String(),
	}
	for name, out := range outputs {
		if !strings.Contains(out, "dk-1") {
			t.Errorf("%s: %q does not describe the keyring", name, out)
		}
		for _, secret := range []string{b64(32, 1), b64(32, 2), b64(32, 3), b64(32, 4), "\x01\x01\x01\x01"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s: %q contains key material", name, out)
			}
		}
	}
}

func TestGenerateExportLoad(t *testing.T) {
	kr, err := GenerateKeyring("sg", testNow)
	if err != nil {
		t.Fatal(err)
	}
	kr2, err := kr.WithNewDataKey(testNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if kr2.ActiveDataKeyID() != "dk-20261127T111530Z" || len(kr2.DataKeyIDs()) != 2 {
		t.Fatalf("rotated keyring %v", kr2)
	}
	if _, err := kr2.WithNewDataKey(testNow.Add(time.Hour)); CodeOf(err) != CodeKeyringInvalid {
		t.Fatalf("duplicate data key id: %v", err)
	}
	out, err := kr2.Export()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "k.json")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := LoadKeyring("file:" + p)
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != kr2.String() {
		t.Fatalf("round trip: %v != %v", back, kr2)
	}
	if back.LookupHash("+6591234567") != kr.LookupHash("+6591234567") {
		t.Fatal("lookup key changed in the round trip")
	}
	cp, err := back.Checkpoint(Head{Seq: 1, Hash: make([]byte, 32)}, Anchor{}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyCheckpoint(&cp, kr.PublicKeys()); err != nil {
		t.Fatalf("checkpoint of the reloaded keyring does not verify with the original's key: %v", err)
	}
	if _, err := GenerateKeyring("", testNow); CodeOf(err) != CodeKeyringInvalid {
		t.Fatalf("empty region: %v", err)
	}
}

func TestLookupHash(t *testing.T) {
	kr, err := parseKeyring([]byte(keyringJSON(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	other, err := parseKeyring([]byte(keyringJSON(t, func(m map[string]any) { m["lookup_key"] = b64(32, 9) })))
	if err != nil {
		t.Fatal(err)
	}
	a := kr.LookupHash("+6591234567")
	if len(a) != 2*LookupHashLen || strings.Contains(a, "6591234567") {
		t.Fatalf("lookup hash %q", a)
	}
	if kr.LookupHash("+6591234567") != a {
		t.Fatal("lookup hash is not deterministic")
	}
	if kr.LookupHash("+6591234568") == a {
		t.Fatal("different numbers share a hash")
	}
	if other.LookupHash("+6591234567") == a {
		t.Fatal("the hash does not depend on the key")
	}
	// A known answer: the stored form of every recipient depends on it never changing.
	checkGolden(t, "lookup_hash.golden", a+"\n")
}
