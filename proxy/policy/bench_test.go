package policy

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
)

// BenchmarkDecide is the proxy's hot path: AST input, AST result decoded straight into Decision.
func BenchmarkDecide(b *testing.B) {
	p := compileStarter(b)
	in := otpSG()
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := p.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideRefused decides a message the policy refuses.
func BenchmarkDecideRefused(b *testing.B) {
	p := compileStarter(b)
	in := with(func(m *MessageInput) { m.Country = "US"; m.From = "AB" })
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if d, err := p.Decide(ctx, in); err != nil || d.Allow {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideParallel decides from every core at once.
func BenchmarkDecideParallel(b *testing.B) {
	p := compileStarter(b)
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		in := otpSG()
		for pb.Next() {
			if _, err := p.Decide(ctx, in); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDecideMapInput passes the input as a Go map (OPA converts it) and decodes the AST result.
func BenchmarkDecideMapInput(b *testing.B) {
	p := compileStarter(b)
	in := otpSG()
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		rs, err := p.query.Eval(ctx, rego.EvalInput(in.Map()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := decodeResult(rs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideJSON is the naive path: map input, OPA's default Go-value result, JSON round trip into Decision.
func BenchmarkDecideJSON(b *testing.B) {
	bundle := starterBundle(b)
	ps, err := parse(bundle)
	if err != nil {
		b.Fatal(err)
	}
	opts := []func(*rego.Rego){rego.Query(DecisionRule), rego.Store(newStore(bundle.Data))}
	for _, m := range ps.policy {
		opts = append(opts, rego.ParsedModule(m))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	in := otpSG()
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		rs, err := pq.Eval(ctx, rego.EvalInput(in.Map()))
		if err != nil {
			b.Fatal(err)
		}
		raw, err := json.Marshal(rs[0].Expressions[0].Value)
		if err != nil {
			b.Fatal(err)
		}
		var d Decision
		if err := json.Unmarshal(raw, &d); err != nil || !d.Allow {
			b.Fatal(err)
		}
	}
}

// BenchmarkInputValue measures building the AST input alone.
func BenchmarkInputValue(b *testing.B) {
	in := otpSG()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		_ = in.value(nil)
	}
}

// BenchmarkCompile measures accepting a bundle: parse, compile, run the Rego tests, prepare.
func BenchmarkCompile(b *testing.B) {
	bundle := starterBundle(b)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := Compile(context.Background(), bundle); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecidePartialEval prepares the query with partial evaluation against the known data.
func BenchmarkDecidePartialEval(b *testing.B) {
	p, err := compile(context.Background(), starterBundle(b), rego.WithPartialEval())
	if err != nil {
		b.Fatal(err)
	}
	in := otpSG()
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if d, err := p.Decide(ctx, in); err != nil || !d.Allow {
			b.Fatal(d, err)
		}
	}
}
