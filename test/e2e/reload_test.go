package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A minimal but complete policy bundle: it allows what its data lists and refuses the rest, with a
// Rego test that a broken change must still pass.
const reloadPolicy = `package smsproxy

import rego.v1

default decision := {"allow": false, "reasons": [{"code": "country_not_served", "message": "Not served.", "rule": "smsproxy.decision"}], "limits": [], "route": {"providers": []}, "masks": [], "obligations": []}

decision := {"allow": true, "reasons": [], "limits": [], "route": {"providers": ["simulator"]}, "masks": [{"field": "to", "style": "phone"}], "obligations": []} if {
	data.region.countries[input.message.country]
	not input.message.country in BLOCKED
}

decision := {"allow": false, "reasons": [{"code": "country_paused", "message": "Sending to this country is paused.", "rule": "smsproxy.paused"}], "limits": [], "route": {"providers": []}, "masks": [], "obligations": []} if {
	input.message.country in BLOCKED
}

BLOCKED := set()
`

const reloadPolicyTest = `package smsproxy_test

import rego.v1

test_served_country_allowed if {
	data.smsproxy.decision.allow with input as {"message": {"country": "DE"}}
}
`

// TestReloadKeepsGoodBundle changes the policy under policies_dir while the proxy runs: a bundle that
// does not compile is refused and the running one keeps answering; a good change takes effect on
// SIGHUP without a restart.
func TestReloadKeepsGoodBundle(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pol, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(pol, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("decision.rego", reloadPolicy)
	write("decision_test.rego", reloadPolicyTest)
	in := startWith(t, dir, freeAddr(t), "50ms", "policies_dir: "+pol+"\n")

	sendSG := func() apiResult {
		t.Helper()
		_, r, err := in.send(transfer(1), "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := sendSG(); r.Status != http.StatusCreated {
		t.Fatalf("before any change: %d %v", r.Status, r.Body)
	}

	// A syntax error: refused, logged, the old bundle still answers.
	write("decision.rego", strings.Replace(reloadPolicy, "if {", "if {{", 1))
	_ = in.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, in, "policy_compile")
	if r := sendSG(); r.Status != http.StatusCreated {
		t.Fatalf("after a broken change: %d %v", r.Status, r.Body)
	}

	// A change whose own test fails (it blocks DE, which the test says is served): refused too.
	write("decision.rego", strings.Replace(reloadPolicy, "BLOCKED := set()", `BLOCKED := {"DE"}`, 1))
	_ = in.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, in, "policy_test_failed")
	if r := sendSG(); r.Status != http.StatusCreated {
		t.Fatalf("after a change that fails its tests: %d %v", r.Status, r.Body)
	}

	// A good change: SG paused, and the proxy says so with the new rule.
	write("decision.rego", strings.Replace(reloadPolicy, "BLOCKED := set()", `BLOCKED := {"SG"}`, 1))
	_ = in.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		r := sendSG()
		if r.Status == http.StatusUnprocessableEntity {
			if r.Body["code"] != "country_paused" || r.Body["rule"] != "smsproxy.paused" {
				t.Fatalf("refusal after reload: %v", r.Body)
			}
			if err := in.stop(); err != nil {
				t.Fatalf("SIGTERM: %v", err)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the good change never took effect:\n%s", in.logs.String())
}

// waitLog waits until the proxy's log mentions s.
func waitLog(t *testing.T, in *instance, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(in.logs.String(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("log never mentioned %q:\n%s", s, in.logs.String())
}
