package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// TestContentScan checks the one-call content built-in: phrase hits per list, card numbers and IBANs.
func TestContentScan(t *testing.T) {
	lists := ast.MustParseTerm(`{"refuse_me": {"action": "refuse", "phrases": ["cvv", "card number"]}, "hide": {"action": "mask", "phrases": ["salary"]}}`)
	cases := []struct {
		name, body, want string
	}{
		{"nothing", "Your transfer has arrived.", `{"phrases": {}, "card_number": false, "iban": false}`},
		{"two lists", "Send the C.V.V and your SALARY slip", `{"phrases": {"hide": ["salary"], "refuse_me": ["cvv"]}, "card_number": false, "iban": false}`},
		{"run together", "your cardnumber please", `{"phrases": {"refuse_me": ["card number"]}, "card_number": false, "iban": false}`},
		{"card", "Card 4111 1111 1111 1111 charged", `{"phrases": {}, "card_number": true, "iban": false}`},
		{"iban", "Sent to GB82 WEST 1234 5698 7654 32", `{"phrases": {}, "card_number": false, "iban": true}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := contentScanBuiltin(rego.BuiltinContext{}, ast.StringTerm(c.body), lists)
			if err != nil {
				t.Fatal(err)
			}
			if want := ast.MustParseTerm(c.want); !got.Equal(want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	for _, bad := range []string{`{"l": 1}`, `{"l": {"phrases": "cvv"}}`, `{"l": {"phrases": [1]}}`, `[]`} {
		if _, err := contentScanBuiltin(rego.BuiltinContext{}, ast.StringTerm("x"), ast.MustParseTerm(bad)); err == nil {
			t.Errorf("lists %s: no error", bad)
		}
	}
}

// TestFieldMasks checks that the mask list is in key order without the body.
func TestFieldMasks(t *testing.T) {
	got, err := fieldMasks(ast.MustParseTerm(`{"to": "phone", "body": "full", "device_id": "last4"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := ast.MustParseTerm(`[{"field": "device_id", "style": "last4"}, {"field": "to", "style": "phone"}]`)
	if !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := fieldMasks(ast.StringTerm("to")); err == nil {
		t.Error("a string is not a fields object")
	}
}
