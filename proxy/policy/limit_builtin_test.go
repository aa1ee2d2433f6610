package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// TestLimitBuiltin checks smsproxy.limit: the region's numbers joined to the rule's code, key and
// sentence; undefined without a rate or a period, as cfg.rate would be; an error for a bad rate or period.
func TestLimitBuiltin(t *testing.T) {
	spec := ast.MustParseTerm(`{"code": "c", "key": "k:1", "message": "At most {rate} per {period}, {rate}!"}`)
	cases := []struct {
		name, cfg, want string
		err             bool
	}{
		{"burst", `{"rate": 20000, "period": "1s", "burst": 40000}`,
			`{"key": "k:1", "rate": 20000, "period": "1s", "burst": 40000, "code": "c", "message": "At most 20000 per 1s, 20000!"}`, false},
		{"no burst", `{"rate": 3, "period": "24h"}`,
			`{"key": "k:1", "rate": 3, "period": "24h", "burst": 0, "code": "c", "message": "At most 3 per 24h, 3!"}`, false},
		{"no rate", `{"period": "24h"}`, "", false},
		{"no period", `{"rate": 3}`, "", false},
		{"fractional rate", `{"rate": 2.5, "period": "1s"}`, "", true},
		{"string rate", `{"rate": "3", "period": "1s"}`, "", true},
		{"numeric period", `{"rate": 3, "period": 60}`, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := limitBuiltin(rego.BuiltinContext{}, ast.MustParseTerm(c.cfg), spec)
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
	if _, err := limitBuiltin(rego.BuiltinContext{}, ast.MustParseTerm(`{"rate": 1, "period": "1s"}`), ast.MustParseTerm(`{"code": "c"}`)); err == nil {
		t.Error("a limit without key and message was accepted")
	}
}
