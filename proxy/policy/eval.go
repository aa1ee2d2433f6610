package policy

import (
	"context"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
)

// Explain selects how much of the evaluation trace Eval returns, like opa eval --explain.
type Explain string

// The explanation modes.
const (
	// ExplainOff returns no trace.
	ExplainOff Explain = ""
	// ExplainNotes returns only trace() notes written by the policy.
	ExplainNotes Explain = "notes"
	// ExplainFails returns the expressions that failed, which is why a rule did not fire.
	ExplainFails Explain = "fails"
	// ExplainFull returns every step with its file and line.
	ExplainFull Explain = "full"
)

// Evaluation is a decision with the revision that made it and, on request, how it was reached.
type Evaluation struct {
	Decision Decision
	Revision string
	// Trace holds OPA's trace lines, with locations, when an explanation was asked for.
	Trace []string
}

// Eval decides like Decide and, unless explain is ExplainOff, traces the evaluation. It is meant for
// offline tools such as `smsproxy policy eval`; tracing is far slower than Decide.
// The trace shows input values, so it must not be logged.
func Eval(ctx context.Context, p *Prepared, in *Input, explain Explain) (Evaluation, error) {
	ev := Evaluation{Revision: p.revision}
	if explain == ExplainOff {
		d, err := p.Decide(ctx, in)
		ev.Decision = d
		return ev, err
	}
	if in == nil {
		return ev, newError(CodeEval, "no input", nil)
	}
	buf := topdown.NewBufferTracer()
	// The class is evaluated afresh, traced too, rather than taken from what Decide keeps.
	var class *ast.Term
	var err error
	if p.class != nil {
		class, err = p.class.eval(ctx, in.classKey(), nil, neverCancelled, rego.EvalQueryTracer(buf))
	}
	var rs rego.ResultSet
	if err == nil {
		rs, err = p.query.Eval(ctx, rego.EvalParsedInput(in.value(class)), rego.EvalQueryTracer(buf))
	}
	events := []*topdown.Event(*buf)
	switch explain {
	case ExplainNotes:
		events = lineage.Notes(events)
	case ExplainFails:
		events = lineage.Fails(events)
	default:
		events = lineage.Full(events)
	}
	var sb strings.Builder
	topdown.PrettyTraceWithLocation(&sb, events)
	ev.Trace = []string{}
	if out := strings.TrimRight(sb.String(), "\n"); out != "" {
		ev.Trace = strings.Split(out, "\n")
	}
	if err != nil {
		return ev, evalError(ctx, err)
	}
	if ev.Decision, err = decodeResult(rs); err != nil {
		return ev, err
	}
	ev.Decision.Revision = p.revision
	return ev, nil
}
