package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// TestLimitForBuiltin checks smsproxy.limit_for: the named region limit joined to the rule's code, key
// and sentence, with the message's value where they say {value}; undefined without the named limit,
// a rate or a period; an error for a bad rate, period or limit.
func TestLimitForBuiltin(t *testing.T) {
	limits := ast.MustParseTerm(`{
		"app": {"rate": 20000, "period": "1s", "burst": 40000},
		"otp": {"rate": 3, "period": "24h"},
		"window": {"rate": 3, "period": "24h", "window": true},
		"no_window": {"rate": 3, "period": "24h", "window": false},
		"string_window": {"rate": 3, "period": "24h", "window": "yes"},
		"no_rate": {"period": "24h"},
		"no_period": {"rate": 3},
		"fractional": {"rate": 2.5, "period": "1s"},
		"string_rate": {"rate": "3", "period": "1s"},
		"numeric_period": {"rate": 3, "period": 60},
		"not_an_object": 7
	}`)
	spec := func(name string) *ast.Term {
		return ast.MustParseTerm(`{"limit": "` + name + `", "code": "c", "key": "k:{value}", "message": "At most {rate} per {period} for {value}, {rate}! {other}"}`)
	}
	cases := []struct {
		name, limit, value, want string
		err                      bool
	}{
		{"burst", "app", "payments", `{"limit": "app", "key": "k:payments", "rate": 20000, "period": "1s", "burst": 40000, "code": "c", "message": "At most 20000 per 1s for payments, 20000! {other}"}`, false},
		{"no burst", "otp", "+6580000001", `{"limit": "otp", "key": "k:+6580000001", "rate": 3, "period": "24h", "burst": 0, "code": "c", "message": "At most 3 per 24h for +6580000001, 3! {other}"}`, false},
		{"value is not re-read", "otp", "{rate}", `{"limit": "otp", "key": "k:{rate}", "rate": 3, "period": "24h", "burst": 0, "code": "c", "message": "At most 3 per 24h for {rate}, 3! {other}"}`, false},
		{"window", "window", "d", `{"limit": "window", "key": "k:d", "rate": 3, "period": "24h", "burst": 0, "window": true, "code": "c", "message": "At most 3 per 24h for d, 3! {other}"}`, false},
		{"window false is left out", "no_window", "d", `{"limit": "no_window", "key": "k:d", "rate": 3, "period": "24h", "burst": 0, "code": "c", "message": "At most 3 per 24h for d, 3! {other}"}`, false},
		{"string window", "string_window", "d", "", true},
		{"no such limit", "missing", "x", "", false},
		{"no rate", "no_rate", "x", "", false},
		{"no period", "no_period", "x", "", false},
		{"fractional rate", "fractional", "x", "", true},
		{"string rate", "string_rate", "x", "", true},
		{"numeric period", "numeric_period", "x", "", true},
		{"limit not an object", "not_an_object", "x", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := limitForBuiltin(rego.BuiltinContext{}, ast.StringTerm(c.value), limits, spec(c.limit))
			if (err != nil) != c.err {
				t.Fatalf("error %v, want error %v", err, c.err)
			}
			switch {
			case c.want == "" && got != nil:
				t.Errorf("got %v, want undefined", got)
			case c.want != "" && (got == nil || !got.Equal(ast.MustParseTerm(c.want))):
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	constKey := ast.MustParseTerm(`{"limit": "otp", "code": "c", "key": "fixed", "message": "m"}`)
	if got, err := limitForBuiltin(rego.BuiltinContext{}, ast.StringTerm("x"), limits, constKey); err != nil || !got.Equal(ast.MustParseTerm(`{"limit": "otp", "key": "fixed", "rate": 3, "period": "24h", "burst": 0, "code": "c", "message": "m"}`)) {
		t.Errorf("constant key: %v, %v", got, err)
	}
	for _, bad := range []string{`{"limit": "otp", "code": "c"}`, `{"limit": "otp", "code": "c", "key": 1, "message": "m"}`, `{"limit": "otp", "code": "c", "key": "k", "message": ["m"]}`} {
		if _, err := limitForBuiltin(rego.BuiltinContext{}, ast.StringTerm("x"), limits, ast.MustParseTerm(bad)); err == nil {
			t.Errorf("limit %s was accepted", bad)
		}
	}
	if _, err := limitForBuiltin(rego.BuiltinContext{}, ast.IntNumberTerm(1), limits, spec("otp")); err == nil {
		t.Error("a number value was accepted")
	}
	if _, err := limitForBuiltin(rego.BuiltinContext{}, ast.StringTerm("x"), ast.StringTerm("limits"), spec("otp")); err == nil {
		t.Error("limits that are not an object were accepted")
	}
}

// TestMasksBuiltin checks that smsproxy.masks is the field masks (fieldMasks) followed by the body's style, and
// that a list is built once per fields object and style.
func TestMasksBuiltin(t *testing.T) {
	fields := ast.MustParseTerm(`{"to": "phone", "body": "full", "device_id": "last4"}`)
	for _, style := range []string{"none", "full", "none"} {
		got, err := masksBuiltin(rego.BuiltinContext{}, fields, ast.StringTerm(style))
		if err != nil {
			t.Fatal(err)
		}
		want := ast.MustParseTerm(`[{"field": "device_id", "style": "last4"}, {"field": "to", "style": "phone"}, {"field": "body", "style": "` + style + `"}]`)
		if !got.Equal(want) {
			t.Errorf("style %s: got %v, want %v", style, got, want)
		}
		again, _ := masksBuiltin(rego.BuiltinContext{}, fields, ast.StringTerm(style))
		if again != got {
			t.Errorf("style %s: the list was built again", style)
		}
	}
	if got, _ := masksBuiltin(rego.BuiltinContext{}, ast.MustParseTerm(`{}`), ast.StringTerm("none")); !got.Equal(ast.MustParseTerm(`[{"field": "body", "style": "none"}]`)) {
		t.Errorf("no fields: got %v", got)
	}
	if _, err := masksBuiltin(rego.BuiltinContext{}, ast.StringTerm("to"), ast.StringTerm("none")); err == nil {
		t.Error("a string is not a fields object")
	}
	if _, err := masksBuiltin(rego.BuiltinContext{}, fields, ast.IntNumberTerm(1)); err == nil {
		t.Error("a number is not a style")
	}
}

// TestNormalizeText pins the phrase-matching fold: lower case, accents gone, punctuation and spacing
// one space, runs of single characters joined.
func TestNormalizeText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"  ", ""},
		{"Please reply with your C.V.V to confirm", "please reply with your cvv to confirm"},
		{"c v v now", "cvv now"},
		{"Kirim KATA  SANDI anda", "kirim kata sandi anda"},
		{"Bitte nennen Sie Ihre Geheimzahl", "bitte nennen sie ihre geheimzahl"},
		{"Straße ı Ünïcödé", "strasse i unicode"},
		{"a b cd e f", "ab cd ef"},
		{"bit.ly/3xYz", "bit ly 3xyz"},
		{"1 2 3 4", "1234"},
		{"  -Lead, trail!  ", "lead trail"},
		{"ß a b", "ss ab"},
	} {
		if got := NormalizeText(c.in); got != c.want {
			t.Errorf("NormalizeText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
