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

// otpSG is a well-formed OTP to Singapore from the dev region's registered sender ID.
func otpSG() *Input {
	return &Input{App: "dev", Now: now, Message: MessageInput{
		To: "+6580000001", Country: "SG", CallingCode: 65, NumberType: "mobile",
		From: "PAYLINK88", SenderKind: "alphanumeric", Category: "otp",
		Body:     "Your Payment Platform verification code for transaction authorization is 739215. Valid for 5 mins. For security, do not share with others.",
		Encoding: "GSM-7", Segments: 1, TemplateID: "otp_transaction", TemplateLocale: "en", DeviceID: "dev-7f3a",
	}, Facts: Facts{LocalHour: 12, LocalWeekday: 4, TimeZone: "Asia/Singapore"}}
}

func with(f func(m *MessageInput)) *Input {
	in := otpSG()
	f(&in.Message)
	return in
}

// txn is a transaction message to a market from the dev region's registered sender there.
func txn(country string, f func(in *Input)) *Input {
	senders := map[string][2]string{
		"SG": {"+6591234567", "PAYLINK88"}, "ID": {"+6281234567890", "PAYLINK"}, "MY": {"+60123456789", "PAYLINK"},
		"US": {"+14155550123", "+14155550100"}, "GB": {"+447700900123", "PAYLINK"}, "DE": {"+4915112345678", "PAYLINK"},
	}
	kind := "alphanumeric"
	if country == "US" {
		kind = "long_code"
	}
	in := &Input{App: "dev", Now: now, Message: MessageInput{
		To: senders[country][0], Country: country, From: senders[country][1], SenderKind: kind,
		Category: "transaction", Body: "Your transfer PL20241208009 of 250.00 SGD has arrived.", Encoding: "GSM-7", Segments: 1,
	}, Facts: Facts{LocalHour: 12, LocalWeekday: 4, TimeZone: "UTC"}}
	if f != nil {
		f(in)
	}
	return in
}

func consent(cat, basis string, withdrawn bool) map[string]Consent {
	return map[string]Consent{cat: {Basis: basis, GrantedAt: now.Add(-time.Hour), Withdrawn: withdrawn}}
}

type decisionCase struct {
	Name  string
	Input *Input
	// Codes are the expected reason codes in order; nil means allowed with no reasons.
	Codes []string
}

// decisionCases are the golden decision table: messages across the six markets with their expected codes.
func decisionCases() []decisionCase {
	cat := func(c string) func(in *Input) { return func(in *Input) { in.Message.Category = c } }
	body := func(b string) func(in *Input) { return func(in *Input) { in.Message.Body = b } }
	from := func(kind, id string) func(in *Input) {
		return func(in *Input) { in.Message.SenderKind, in.Message.From = kind, id }
	}
	all := func(fs ...func(in *Input)) func(in *Input) {
		return func(in *Input) {
			for _, f := range fs {
				f(in)
			}
		}
	}
	optedOut := func(in *Input) { in.Facts.OptedOut = true }
	return []decisionCase{
		{"otp_sg_allowed", otpSG(), nil},
		{"otp_sg_without_device", with(func(m *MessageInput) { m.DeviceID = "" }), nil},
		{"otp_sg_body_without_template_refused", with(func(m *MessageInput) { m.TemplateID, m.Body = "", "Your code is 123456" }), []string{"template_not_registered"}},
		{"otp_sg_body_rendering_template_allowed", with(func(m *MessageInput) { m.TemplateID = "" }), nil},
		{"otp_id_needs_template", txn("ID", all(cat("otp"), body("Kode Anda 123456"))), []string{"template_not_registered"}},
		{"otp_id_template_id", txn("ID", all(cat("otp"), func(in *Input) { in.Message.TemplateID, in.Message.TemplateLocale = "otp_transaction", "id" })), nil},
		{"otp_my_no_template_needed", txn("MY", all(cat("otp"), body("Kod anda 123456"))), nil},
		{"security_body_masked", with(func(m *MessageInput) { m.Category, m.TemplateID = "security", "" }), nil},
		{"transaction_sg", txn("SG", nil), nil},
		{"transaction_id", txn("ID", nil), nil},
		{"transaction_my", txn("MY", nil), nil},
		{"transaction_my_short_code", txn("MY", from("short_code", "66300")), nil},
		{"marketing_my_short_code_not_in_program", txn("MY", all(from("short_code", "66300"), cat("marketing"))), []string{"sender_category_not_approved"}},
		{"transaction_gb", txn("GB", nil), nil},
		{"transaction_de", txn("DE", nil), nil},
		{"transaction_us_long_code_footer", txn("US", nil), nil},
		{"transaction_us_body_has_stop", txn("US", body("Paid. Reply STOP to opt out.")), nil},
		{"us_load_tool_long_code", txn("US", from("long_code", "+12015550123")), nil},
		{"us_toll_free_verified", txn("US", from("toll_free", "+18885550100")), nil},
		{"us_toll_free_unregistered", txn("US", from("toll_free", "+18885550199")), []string{"sender_not_registered"}},
		{"us_long_code_unregistered", txn("US", from("long_code", "+14155550999")), []string{"sender_not_registered"}},
		{"us_long_code_marketing_use_case", txn("US", cat("marketing")), []string{"us_10dlc_use_case_mismatch"}},
		{"us_alphanumeric_refused", txn("US", from("alphanumeric", "PAYLINK88")), []string{"sender_type_not_allowed"}},
		{"us_sender_malformed_and_forbidden", txn("US", from("alphanumeric", "AB")), []string{"sender_malformed", "sender_type_not_allowed"}},
		{"us_short_code_unregistered", txn("US", from("short_code", "72345")), []string{"sender_not_registered"}},
		{"us_long_code_other_app", txn("US", func(in *Input) { in.App = "payments" }), []string{"sender_not_assigned"}},
		{"country_not_served_fr", txn("SG", func(in *Input) { in.Message.Country, in.Message.To = "FR", "+33612345678" }), []string{"country_not_served"}},
		{"country_missing", txn("SG", func(in *Input) { in.Message.Country = "" }), []string{"country_not_served"}},
		{"sg_unregistered_sender", txn("SG", from("alphanumeric", "PAYLINK99")), []string{"sender_not_registered"}},
		{"sg_generic_sender", txn("SG", from("alphanumeric", "Verify")), []string{"sender_generic", "sender_not_registered"}},
		{"sg_sender_too_long", txn("SG", from("alphanumeric", "PAYLINKPAYMENTS")), []string{"sender_malformed"}},
		{"sg_sender_bad_character", txn("SG", from("alphanumeric", "PAY$LINK")), []string{"sender_malformed"}},
		{"sg_sender_leading_space", txn("SG", from("alphanumeric", " PAYLINK")), []string{"sender_malformed"}},
		{"sg_sender_other_app", txn("SG", func(in *Input) { in.App = "payments" }), []string{"sender_not_assigned"}},
		{"sg_long_code_optional", txn("SG", from("long_code", "+6560001234")), nil},
		{"sg_short_code_required", txn("SG", from("short_code", "71234")), []string{"sender_not_registered"}},
		{"id_unregistered_sender_strict_default", txn("ID", from("alphanumeric", "ACMEPAY")), []string{"sender_not_registered"}},
		{"my_unregistered_sender_strict_default", txn("MY", from("alphanumeric", "ACMEPAY")), []string{"sender_not_registered"}},
		{"gb_unregistered_sender_optional", txn("GB", from("alphanumeric", "ACMEPAY")), nil},
		{"de_registered_sender_other_app", txn("DE", func(in *Input) { in.App = "payments" }), []string{"sender_not_assigned"}},
		{"gb_marketing_no_basis", txn("GB", cat("marketing")), []string{"gdpr_no_lawful_basis"}},
		{"gb_marketing_consent", txn("GB", all(cat("marketing"), func(in *Input) { in.Facts.Consents = consent("marketing", "consent", false) })), nil},
		{"de_marketing_withdrawn", txn("DE", all(cat("marketing"), func(in *Input) { in.Facts.Consents = consent("marketing", "consent", true) })), []string{"gdpr_consent_withdrawn"}},
		{"de_otp_exempt", txn("DE", all(cat("otp"), body("Ihr Code 123456"))), nil},
		{"sg_opted_out_transaction", txn("SG", optedOut), []string{"recipient_opted_out"}},
		{"sg_opted_out_fraud_alert_exception", txn("SG", all(optedOut, cat("alert"))), []string{"opt_out_exception_used"}},
		{"us_opted_out_stop_confirmation", txn("US", all(optedOut, body("Payment Platform: you are unsubscribed and will receive no further messages. Reply START to resubscribe."), func(in *Input) { in.Message.TemplateID, in.Message.TemplateLocale = "stop_confirmation", "en" })), nil},
		{"gb_opted_out_marketing", txn("GB", all(optedOut, cat("marketing"), func(in *Input) { in.Facts.Consents = consent("marketing", "consent", false) })), []string{"recipient_opted_out"}},
		{"sg_cvv_refused", txn("SG", body("Please reply with your C.V.V to confirm")), []string{"content_phrase_refused"}},
		{"id_kata_sandi_refused", txn("ID", body("Kirim KATA  SANDI anda")), []string{"content_phrase_refused"}},
		{"de_geheimzahl_refused", txn("DE", body("Bitte nennen Sie Ihre Geheimzahl")), []string{"content_phrase_refused"}},
		{"my_url_shortener_refused", txn("MY", body("Check https://bit.ly/3xYz now")), []string{"content_phrase_refused"}},
		{"sg_card_number_refused", txn("SG", body("Card 4111 1111 1111 1111 was charged")), []string{"content_card_number"}},
		{"sg_card_like_non_luhn_allowed", txn("SG", body("Ref 4111 1111 1111 1112 was charged")), nil},
		{"gb_iban_masked", txn("GB", body("Sent to GB82 WEST 1234 5698 7654 32")), nil},
		{"sg_marketing_night_dev_has_no_quiet_hours", txn("SG", all(cat("marketing"), func(in *Input) { in.Facts.LocalHour = 23 })), nil},
		{"id_marketing_daytime", txn("ID", cat("marketing")), nil},
		{"us_transaction_other_app", txn("US", all(from("toll_free", "+18885550100"), func(in *Input) { in.App = "payments" })), []string{"sender_not_assigned"}},
		{"my_opted_out_otp_refused", txn("MY", all(optedOut, cat("otp"))), []string{"recipient_opted_out"}},
		{"gb_transaction_masks_device", txn("GB", func(in *Input) { in.Message.DeviceID = "device-123456" }), nil},
		{"de_security_exempt_masked", txn("DE", cat("security")), nil},
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
		if d.Allow != (len(d.Reasons) == 0) && c.Name != "sg_opted_out_fraud_alert_exception" {
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

// TestDecisionCodes states the expected refusals of every golden case in a form a reader can check
// without the golden file.
func TestDecisionCodes(t *testing.T) {
	p := compileStarter(t)
	cases := decisionCases()
	if len(cases) < 60 {
		t.Errorf("only %d golden cases", len(cases))
	}
	markets := map[string]bool{}
	for _, c := range cases {
		markets[c.Input.Message.Country] = true
		d, err := p.Decide(context.Background(), c.Input)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		var got []string
		for _, r := range d.Reasons {
			got = append(got, r.Code)
		}
		allow := c.Codes == nil || (len(c.Codes) == 1 && c.Codes[0] == "opt_out_exception_used")
		if d.Allow != allow || !equalStrings(got, c.Codes) {
			t.Errorf("%s: allow=%v reasons=%v, want reasons %v", c.Name, d.Allow, got, c.Codes)
		}
	}
	for _, m := range []string{"SG", "ID", "MY", "US", "GB", "DE"} {
		if !markets[m] {
			t.Errorf("no golden case for %s", m)
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
	cases = append(cases, decisionCase{Name: "zero_time_no_template", Input: &Input{App: "a", Message: MessageInput{To: "+6580000001"}}})
	for _, c := range cases {
		want, err := ast.InterfaceToValue(c.Input.Map())
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Input.value(nil); got.Compare(want) != 0 {
			t.Errorf("%s:\nValue() %v\nMap()   %v", c.Name, got, want)
		}
	}
}
