package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// DecisionRule is the rule every bundle must define; its value is the Decision document.
const DecisionRule = "data.smsproxy.decision"

// testTimeout bounds one Rego test, so a runaway test refuses the bundle instead of hanging a reload.
const testTimeout = 10 * time.Second

var decisionRef = ast.Ref{ast.DefaultRootDocument, ast.InternedTerm("smsproxy"), ast.InternedTerm("decision")}

// Prepared is a compiled, tested bundle with its decision query prepared once.
// It is safe for concurrent use.
type Prepared struct {
	revision string
	query    rego.PreparedEvalQuery
	tests    int // tests run, passed or skipped
	passed   int // tests passed
	// txn is a read transaction on the bundle's store, opened once and shared by every evaluation.
	// The store is never written after Compile, and reads of an in-memory store's read transaction
	// are plain lookups in immutable data, so concurrent evaluations may share it; it is never closed
	// (a read transaction holds only a read lock on a store nobody writes to).
	txn storage.Transaction
	// class evaluates and keeps the class documents (ClassRule); nil when the bundle has no class.
	class *classEval
}

// Revision returns the revision of the bundle p was compiled from.
func (p *Prepared) Revision() string { return p.revision }

// Tests returns how many Rego tests of the bundle ran before it was accepted (all of them passed or
// were skipped).
func (p *Prepared) Tests() int { return p.tests }

// Tested returns nil when the bundle passed at least one Rego test, and an error with CodeNoTests
// otherwise. Compile accepts an untested bundle (a shadow candidate need not carry tests); the Engine
// refuses to decide live traffic from one, so a bundle whose tests were removed or all skipped
// (todo_test_) is not swapped in.
func (p *Prepared) Tested() error {
	if p.passed > 0 {
		return nil
	}
	return newError(CodeNoTests,
		fmt.Sprintf("the bundle has no passing policy test (%d ran, all skipped); a bundle that decides needs at least one test_ rule", p.tests), nil)
}

// TestResult is the outcome of one Rego test of a bundle.
type TestResult struct {
	// Name is the test rule with its package, e.g. "data.smsproxy.sender.test_malformed_senders_are_refused".
	Name string
	// Location is the file and line of the test.
	Location string
	// Pass is true when the test passed; Skip when it was skipped (todo_test_ prefix).
	Pass bool
	Skip bool
	// Failure is "" for a passing test, "fail" for a false or undefined test, or the error text.
	Failure string
	// Duration is how long the test took.
	Duration time.Duration
}

// parsed is a bundle's modules parsed, split into policy and test modules.
type parsed struct {
	policy map[string]*ast.Module
	all    map[string]*ast.Module
}

func parse(b Bundle) (parsed, error) {
	ps := parsed{policy: map[string]*ast.Module{}, all: map[string]*ast.Module{}}
	paths := make([]string, 0, len(b.Modules))
	for p := range b.Modules {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var errs ast.Errors
	for _, p := range paths {
		m, err := ast.ParseModuleWithOpts(p, b.Modules[p], ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			if es, ok := err.(ast.Errors); ok {
				errs = append(errs, es...)
				continue
			}
			return ps, newError(CodeCompile, "cannot parse "+p, err)
		}
		ps.all[p] = m
		if !isTest(p) {
			ps.policy[p] = m
		}
	}
	if len(errs) > 0 {
		return ps, newError(CodeCompile, "policy does not parse", errs)
	}
	return ps, nil
}

func newStore(data map[string]any) storage.Store {
	return inmem.NewFromObjectWithOpts(data,
		inmem.OptRoundTripOnWrite(true), // deep copy and normalise Go values (ints from YAML) to JSON types
		inmem.OptReturnASTValuesOnRead(true),
	)
}

// Test parses the bundle and runs its Rego tests (rules named test_* in any module) against the
// bundle's data. Results are sorted by name. The error is for a bundle that does not compile;
// failing tests are reported in the results, not as an error.
func Test(ctx context.Context, b Bundle) ([]TestResult, error) {
	ps, err := parse(b)
	if err != nil {
		return nil, err
	}
	return runTests(ctx, ps.all, newStore(b.Data))
}

func runTests(ctx context.Context, modules map[string]*ast.Module, store storage.Store) ([]TestResult, error) {
	runner := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)).
		SetStore(store).
		SetModules(modules).
		SetTimeout(testTimeout).
		RaiseBuiltinErrors(true)
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return nil, newError(CodeCompile, "policy tests do not compile", err)
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{
			Name:     r.Package + "." + r.Name,
			Pass:     r.Pass(),
			Skip:     r.Skip,
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.Location = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		}
		switch {
		case r.Error != nil:
			tr.Failure = r.Error.Error()
		case r.Fail:
			tr.Failure = "fail"
		}
		out = append(out, tr)
	}
	if err := ctx.Err(); err != nil {
		return nil, newError(CodeTestFailed, "policy tests were interrupted", err)
	}
	slices.SortFunc(out, func(a, b TestResult) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// CompileLive is Compile for a bundle that will decide: it also refuses one without a passing
// test (CodeNoTests). Shadow candidates, which never decide, need only Compile.
func CompileLive(ctx context.Context, b Bundle) (*Prepared, error) {
	p, err := Compile(ctx, b)
	if err != nil {
		return nil, err
	}
	if err := p.Tested(); err != nil {
		return nil, err
	}
	return p, nil
}

// Compile parses and compiles a bundle, runs its Rego tests and prepares the decision query.
// A bundle that does not compile (CodeCompile), has a failing or erroring test (CodeTestFailed)
// or has no data.smsproxy.decision rule (CodeNoDecision) is refused. A bundle without a passing test
// compiles, but an Engine does not serve from it (see Prepared.Tested).
func Compile(ctx context.Context, b Bundle) (*Prepared, error) {
	return compile(ctx, b)
}

func compile(ctx context.Context, b Bundle, prepOpts ...rego.PrepareOption) (*Prepared, error) {
	ps, err := parse(b)
	if err != nil {
		return nil, err
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if compiler.Compile(ps.policy); compiler.Failed() {
		return nil, newError(CodeCompile, "policy does not compile", compiler.Errors)
	}
	if len(compiler.GetRules(decisionRef)) == 0 {
		return nil, newError(CodeNoDecision, "the bundle defines no rule "+DecisionRule, nil)
	}

	store := newStore(b.Data)
	results, err := runTests(ctx, ps.all, store)
	if err != nil {
		return nil, err
	}
	var failed []string
	passed := 0
	for _, r := range results {
		switch {
		case r.Skip:
		case r.Pass:
			passed++
		default:
			failed = append(failed, fmt.Sprintf("%s (%s): %s", r.Name, r.Location, r.Failure))
		}
	}
	if len(failed) > 0 {
		return nil, newError(CodeTestFailed,
			fmt.Sprintf("%d of %d policy tests failed: %s", len(failed), len(results), strings.Join(failed, "; ")), nil)
	}

	query, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(decisionRef)))),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.StrictBuiltinErrors(true), // a built-in error fails the decision instead of silently skipping a rule
		rego.GenerateJSON(keepAST),
	).PrepareForEval(ctx, prepOpts...)
	if err != nil {
		return nil, newError(CodeCompile, "cannot prepare the decision query", err)
	}
	class, err := prepareClass(ctx, compiler, store)
	if err != nil {
		return nil, err
	}
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, newError(CodeCompile, "cannot open the policy data", err)
	}
	return &Prepared{revision: b.Revision, query: query, tests: len(results), passed: passed, txn: txn, class: class}, nil
}

// keepAST hands the result back as the AST value it already is, so Decide decodes it without
// converting it to Go maps first.
func keepAST(t *ast.Term, _ *rego.EvalContext) (any, error) {
	return t.Value, nil
}

// Decide evaluates the policy for one message; the decision's Revision is p's. An undefined or ill-shaped decision is an error with
// CodeBadDecision and an evaluation failure one with CodeEval; neither is ever an allow.
func (p *Prepared) Decide(ctx context.Context, in *Input) (Decision, error) {
	if in == nil {
		return Decision{}, newError(CodeEval, "no input", nil)
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, newError(CodeEval, "the decision was cancelled", err)
	}
	// OPA starts a goroutine per evaluation to watch ctx unless it is given a Cancel. A context that
	// can never be cancelled gets one that never fires; any other context cancels the evaluation
	// through context.AfterFunc, which costs no goroutine unless ctx is actually done.
	cancel := neverCancelled
	if ctx.Done() != nil {
		c := topdown.NewCancel()
		stop := context.AfterFunc(ctx, c.Cancel)
		defer stop()
		cancel = c
	}
	var class *ast.Term
	if p.class != nil {
		var err error
		if class, err = p.class.get(ctx, in.classKey(), p.txn, cancel); err != nil {
			return Decision{}, evalError(ctx, err)
		}
	}
	rs, err := p.query.Eval(ctx,
		rego.EvalParsedInput(in.value(class)),
		rego.EvalTransaction(p.txn),
		rego.EvalMetrics(metrics.NoOp()),
		rego.EvalExternalCancel(cancel),
	)
	if err != nil {
		return Decision{}, evalError(ctx, err)
	}
	d, err := decodeResult(rs)
	if err != nil {
		return Decision{}, err
	}
	d.Revision = p.revision
	return d, nil
}

// evalError is the error of an evaluation that failed: cancelled with its context, an ill-shaped
// class as it is, anything else an evaluation failure.
func evalError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return newError(CodeEval, "the decision was cancelled", cerr)
	}
	if ErrorCode(err) == CodeBadDecision {
		return err
	}
	return newError(CodeEval, "policy evaluation failed", err)
}

// neverCancelled is the Cancel of evaluations whose context cannot be cancelled; nothing cancels it.
var neverCancelled = topdown.NewCancel()

func decodeResult(rs rego.ResultSet) (Decision, error) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, newError(CodeBadDecision, DecisionRule+" is undefined", nil)
	}
	if len(rs) > 1 {
		return Decision{}, newError(CodeBadDecision, DecisionRule+" has more than one value", nil)
	}
	v, ok := rs[0].Expressions[0].Value.(ast.Value)
	if !ok {
		return Decision{}, newError(CodeBadDecision, fmt.Sprintf("unexpected result type %T", rs[0].Expressions[0].Value), nil)
	}
	return decodeDecision(v)
}
