package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// evalJSON is the part of policy eval's output the tests read.
type evalJSON struct {
	Revision string `json:"revision"`
	Facts    struct {
		OptedOut     bool           `json:"opted_out"`
		Consents     map[string]any `json:"consents"`
		LocalHour    int            `json:"local_hour"`
		LocalWeekday int            `json:"local_weekday"`
		TimeZone     string         `json:"time_zone"`
	} `json:"facts"`
	Decision struct {
		Allow   bool `json:"allow"`
		Reasons []struct {
			Code string `json:"code"`
			Rule string `json:"rule"`
		} `json:"reasons"`
	} `json:"decision"`
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// decodeEval reads the JSON document at the start of policy eval's output.
func decodeEval(t *testing.T, out string) evalJSON {
	t.Helper()
	var ev evalJSON
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&ev); err != nil {
		t.Fatalf("output is not a JSON decision: %v\n%s", err, out)
	}
	return ev
}

func TestPolicyEval(t *testing.T) {
	const pol = "testdata/policies"
	const now = "2026-11-27T10:00:00Z" // a Friday: 18:00 in Singapore, 02:00 in San Francisco
	tests := []struct {
		name      string
		args      []string
		code      int
		allow     bool
		codes     []string
		hour      int
		weekday   int
		zone      string
		optedOut  bool
		consented bool
	}{
		{"allowed in Singapore", []string{"msg_sg.json"}, exitAllow, true, nil, 18, 5, "Asia/Singapore", false, false},
		{"opted out is refused", []string{"--facts", "testdata/facts_opted_out.json", "msg_sg.json"}, exitDeny, false,
			[]string{"recipient_opted_out"}, 18, 5, "Asia/Singapore", true, false},
		{"US local time from the number", []string{"msg_us_marketing.json"}, exitDeny, false,
			[]string{"consent_missing"}, 2, 5, "America/Los_Angeles", false, false},
		{"consent and hour from the facts file", []string{"msg_us_marketing.json", "--facts", "testdata/facts_consent.json"},
			exitAllow, true, nil, 9, 5, "America/Los_Angeles", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"policy", "eval", "--policies", pol, "--now", now}
			for _, a := range tc.args {
				if strings.HasSuffix(a, ".json") && !strings.HasPrefix(a, "testdata/") {
					a = "testdata/" + a
				}
				args = append(args, a)
			}
			code, out, errOut := runCLI(args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			ev := decodeEval(t, out)
			if ev.Decision.Allow != tc.allow || ev.Revision == "" {
				t.Fatalf("decision = %+v", ev)
			}
			var codes []string
			for _, r := range ev.Decision.Reasons {
				codes = append(codes, r.Code)
				if r.Rule == "" {
					t.Errorf("reason %s names no rule", r.Code)
				}
			}
			if strings.Join(codes, ",") != strings.Join(tc.codes, ",") {
				t.Errorf("reasons = %v, want %v", codes, tc.codes)
			}
			f := ev.Facts
			if f.LocalHour != tc.hour || f.LocalWeekday != tc.weekday || f.TimeZone != tc.zone || f.OptedOut != tc.optedOut ||
				(len(f.Consents) > 0) != tc.consented {
				t.Errorf("facts = %+v", f)
			}
		})
	}
}

func TestPolicyEvalExplain(t *testing.T) {
	code, out, errOut := runCLI("policy", "eval", "--policies", "testdata/policies", "--now", "2026-11-27T10:00:00Z",
		"--explain", "notes", "testdata/msg_sg.json")
	if code != exitAllow {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "# trace (notes)") || !strings.Contains(out, `Note "local hour 18 in Asia/Singapore"`) {
		t.Fatalf("the trace does not show the rule's note:\n%s", out)
	}
	code, out, _ = runCLI("policy", "eval", "--policies", "testdata/policies", "testdata/msg_sg.json")
	if code != exitAllow || strings.Contains(out, "# trace") {
		t.Fatalf("without --explain: exit %d, output:\n%s", code, out)
	}
}

func TestPolicyEvalErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no message", []string{"policy", "eval", "--policies", "testdata/policies"}, exitUsage, "usage"},
		{"bad explain", []string{"policy", "eval", "--explain", "loud", "testdata/msg_sg.json"}, exitUsage, "--explain"},
		{"bad now", []string{"policy", "eval", "--now", "tomorrow", "testdata/msg_sg.json"}, exitUsage, "--now"},
		{"invalid phone", []string{"policy", "eval", "--policies", "testdata/policies", "testdata/msg_bad_phone.json"}, exitError, "invalid_phone"},
		{"missing file", []string{"policy", "eval", "--policies", "testdata/policies", "testdata/none.json"}, exitError, "none.json"},
		{"unknown field in facts", []string{"policy", "eval", "--policies", "testdata/policies", "--facts", "testdata/msg_sg.json", "testdata/msg_sg.json"}, exitError, "unknown field"},
		{"failing bundle", []string{"policy", "eval", "--policies", "testdata/failing", "testdata/msg_sg.json"}, exitError, "refused"},
		{"no subcommand", []string{"policy"}, exitUsage, "usage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q); stdout %q", code, tc.code, errOut, tc.want, out)
			}
			if strings.Contains(errOut, "91234567") {
				t.Errorf("stderr shows the phone number: %s", errOut)
			}
		})
	}
}

func TestPolicyTest(t *testing.T) {
	code, out, errOut := runCLI("policy", "test", "--policies", "testdata/policies", "-v")
	if code != 0 || !strings.Contains(out, "PASS data.smsproxy_test.test_opted_out_refused") || !strings.Contains(out, "2 passed, 0 failed") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, out, _ = runCLI("policy", "test", "--policies", "testdata/failing")
	if code != exitError || !strings.Contains(out, "FAIL data.smsproxy_test.test_wrongly_expects_refusal") || !strings.Contains(out, "0 passed, 1 failed") {
		t.Fatalf("failing bundle: exit %d\n%s", code, out)
	}
	// A bundle without tests is what the proxy refuses (policy_no_tests): the command fails too.
	untested := t.TempDir()
	src, err := os.ReadFile("testdata/policies/decision.rego")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(untested, "decision.rego"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI("policy", "test", "--policies", untested)
	if code != exitError || !strings.Contains(out, "0 passed, 0 failed") || !strings.Contains(errOut, "policy_no_tests") {
		t.Fatalf("bundle without tests: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
