package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var now = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// otpSG is a well-formed OTP to Singapore from an alphanumeric sender; cases change it one field at a time.
func otpSG() *Input {
	return &Input{App: "payments", Now: now, Message: MessageInput{
		To: "+6580000001", Country: "SG", CallingCode: 65, NumberType: "mobile",
		From: "ACMEPAY", SenderKind: "alphanumeric", Category: "otp",
		Body: "Your ACME code is 000000", Encoding: "GSM-7", Segments: 1,
		TemplateID: "otp_login", TemplateLocale: "en", DeviceID: "dev-7f3a",
	}}
}

func with(f func(m *MessageInput)) *Input {
	in := otpSG()
	f(&in.Message)
	return in
}

// decisionCases are the inputs of the golden decision table.
func decisionCases() []struct {
	Name  string
	Input *Input
} {
	return []struct {
		Name  string
		Input *Input
	}{
		{"otp_sg_allowed", otpSG()},
		{"otp_sg_without_device", with(func(m *MessageInput) { m.DeviceID = "" })},
		{"transaction_sg_no_otp_limits", with(func(m *MessageInput) { m.Category = "transaction"; m.Body = "You paid SGD 5.00" })},
		{"security_body_masked", with(func(m *MessageInput) { m.Category = "security" })},
		{"marketing_sg_allowed_no_category_list", with(func(m *MessageInput) { m.Category = "marketing" })},
		{"country_not_served_fr", with(func(m *MessageInput) { m.Country = "FR"; m.CallingCode = 33 })},
		{"country_missing", with(func(m *MessageInput) { m.Country = "" })},
		{"us_alphanumeric_refused", with(func(m *MessageInput) { m.Country = "US"; m.CallingCode = 1 })},
		{"us_long_code_footer", with(func(m *MessageInput) {
			m.Country, m.CallingCode, m.SenderKind, m.From, m.Category = "US", 1, "long_code", "+15550000001", "transaction"
			m.Body = "Your payment of $5.00 was received."
		})},
		{"us_toll_free_body_has_stop_no_footer", with(func(m *MessageInput) {
			m.Country, m.CallingCode, m.SenderKind, m.From, m.Category = "US", 1, "toll_free", "+18005550000", "alert"
			m.Body = "Card locked. Reply stop to opt out."
		})},
		{"us_short_code_no_footer", with(func(m *MessageInput) {
			m.Country, m.CallingCode, m.SenderKind, m.From = "US", 1, "short_code", "72345"
		})},
		{"sender_too_long", with(func(m *MessageInput) { m.From = "ACMEPAYMENTS" })},
		{"sender_bad_character", with(func(m *MessageInput) { m.From = "ACME!" })},
		{"sender_leading_space", with(func(m *MessageInput) { m.From = " ACME" })},
		{"us_sender_malformed_and_forbidden", with(func(m *MessageInput) { m.Country, m.From = "US", "AB" })},
		{"id_marketing_category_refused", with(func(m *MessageInput) { m.Country, m.CallingCode, m.Category = "ID", 62, "marketing" })},
		{"id_otp_two_providers", with(func(m *MessageInput) { m.Country, m.CallingCode = "ID", 62 })},
	}
}

func compileStarter(t testing.TB) *Prepared {
	t.Helper()
	p, err := Compile(context.Background(), starterBundle(t))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// TestDecisionGolden checks the starter policy's decision for each case against testdata/decisions.golden.json.
// Run with -update to rewrite it after an intended change, and review the diff.
func TestDecisionGolden(t *testing.T) {
	p := compileStarter(t)
	type row struct {
		Name     string         `json:"name"`
		Input    map[string]any `json:"input"`
		Decision Decision       `json:"decision"`
	}
	var rows []row
	for _, c := range decisionCases() {
		d, err := p.Decide(context.Background(), c.Input)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if d.Allow != (len(d.Reasons) == 0) {
			t.Errorf("%s: allow=%v with %d reasons", c.Name, d.Allow, len(d.Reasons))
		}
		rows = append(rows, row{c.Name, c.Input.Map(), d})
	}
	got, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "decisions.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestDecisionGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("decisions differ from %s; run with -update and review the diff\ngot:\n%s", golden, got)
	}
}

// TestDecisionCodes states the refusals of the starter policy in a form a reader can check without the golden file.
func TestDecisionCodes(t *testing.T) {
	p := compileStarter(t)
	want := map[string][]string{
		"otp_sg_allowed":                        nil,
		"country_not_served_fr":                 {"country_not_served"},
		"country_missing":                       {"country_not_served"},
		"us_alphanumeric_refused":               {"sender_type_not_allowed"},
		"us_long_code_footer":                   nil,
		"sender_too_long":                       {"sender_malformed"},
		"sender_bad_character":                  {"sender_malformed"},
		"sender_leading_space":                  {"sender_malformed"},
		"us_sender_malformed_and_forbidden":     {"sender_malformed", "sender_type_not_allowed"},
		"id_marketing_category_refused":         {"category_not_allowed"},
		"marketing_sg_allowed_no_category_list": nil,
	}
	for _, c := range decisionCases() {
		codes, ok := want[c.Name]
		if !ok {
			continue
		}
		d, err := p.Decide(context.Background(), c.Input)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		var got []string
		for _, r := range d.Reasons {
			got = append(got, r.Code)
		}
		if d.Allow != (codes == nil) || !equalStrings(got, codes) {
			t.Errorf("%s: allow=%v reasons=%v, want reasons %v", c.Name, d.Allow, got, codes)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestValueMatchesMap makes sure the hand-built AST input is exactly the document the map form gives.
func TestValueMatchesMap(t *testing.T) {
	cases := decisionCases()
	cases = append(cases, struct {
		Name  string
		Input *Input
	}{"zero_time_no_template", &Input{App: "a", Message: MessageInput{To: "+6580000001"}}})
	for _, c := range cases {
		want, err := ast.InterfaceToValue(c.Input.Map())
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Input.Value(); got.Compare(want) != 0 {
			t.Errorf("%s:\nValue() %v\nMap()   %v", c.Name, got, want)
		}
	}
}
