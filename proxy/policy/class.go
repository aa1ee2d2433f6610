package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// ClassRule is the optional rule holding what a bundle decides from a message's class alone: the
// app, the destination country, the sender, the sender kind and the category. When a bundle defines
// it, Decide evaluates it once per class and policy revision with an input holding only those
// fields, keeps the result and gives it to the decision as input.class, so rules that depend on
// the class alone cost nothing per message. Compile refuses a bundle whose class rules read any
// other input or call a non-deterministic built-in, since a kept class must equal a fresh one.
const ClassRule = "data.smsproxy.class"

// ClassCacheSize is how many classes a policy revision keeps. Classes are few (apps × countries ×
// senders × categories in use); a class pushed out is evaluated again when it comes back. A kept
// class takes about 3 KB (the pack, a refused class with its sentences), so a full cache ≈ 12 MB.
const ClassCacheSize = 4096

var classRef = ast.Ref{ast.DefaultRootDocument, ast.InternedTerm("smsproxy"), ast.InternedTerm("class")}

// classInputs are the input paths class rules may read, each below input.
var classInputs = [][]string{
	{"app"},
	{"message", "country"},
	{"message", "from"},
	{"message", "sender_kind"},
	{"message", "category"},
}

// classKey identifies a message class.
type classKey struct {
	app, country, from, kind, category string
}

// classEval evaluates and keeps the class documents of one policy revision.
type classEval struct {
	query rego.PreparedEvalQuery
	cache *lru.Cache[classKey, *ast.Term]
}

// prepareClass returns the class evaluator of a compiled bundle, or nil when it defines no class.
func prepareClass(ctx context.Context, compiler *ast.Compiler, store storage.Store) (*classEval, error) {
	if len(compiler.GetRules(classRef)) == 0 {
		return nil, nil
	}
	if err := checkClass(compiler); err != nil {
		return nil, err
	}
	query, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(classRef)))),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(keepAST),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, newError(CodeCompile, "cannot prepare the class query", err)
	}
	cache, err := lru.New[classKey, *ast.Term](ClassCacheSize)
	if err != nil {
		return nil, newError(CodeCompile, "cannot size the class cache", err)
	}
	return &classEval{query: query, cache: cache}, nil
}

// checkClass refuses a class that depends on anything but the class fields of the input and the
// data: every rule the class rule reaches, directly or through other rules and functions, may read
// only the input paths in classInputs and call only deterministic built-ins.
func checkClass(c *ast.Compiler) error {
	var problems []string
	seen := map[*ast.Rule]bool{}
	queue := slices.Clone(c.GetRules(classRef))
	for len(queue) > 0 {
		r := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if seen[r] {
			continue
		}
		seen[r] = true
		where := fmt.Sprintf("%s (%s)", r.Ref(), r.Location)
		ast.WalkTerms(r, func(t *ast.Term) bool {
			switch v := t.Value.(type) {
			case ast.Var:
				if v.Equal(ast.InputRootDocument.Value) {
					problems = append(problems, where+" reads the whole input")
				}
			case ast.Ref:
				switch {
				case v.HasPrefix(ast.InputRootRef):
					if !classInput(v) {
						problems = append(problems, where+" reads "+v.String())
					}
					return true
				case v.HasPrefix(ast.DefaultRootRef):
					queue = append(queue, c.GetRules(v.GroundPrefix())...)
				default:
					if b, ok := ast.BuiltinMap[v.String()]; ok && b.Nondeterministic {
						problems = append(problems, where+" calls "+b.Name+", whose answer can change")
					}
				}
			}
			return false
		})
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	problems = slices.Compact(problems)
	return newError(CodeCompile, fmt.Sprintf("%s may depend only on input.app and input.message.country, .from, .sender_kind and .category, because the proxy keeps one class per app, country, sender and category: %s",
		ClassRule, strings.Join(problems, "; ")), nil)
}

// classInput reports whether ref (below input) is one of classInputs.
func classInput(ref ast.Ref) bool {
	for _, path := range classInputs {
		if len(ref) != len(path)+1 {
			continue
		}
		ok := true
		for i, key := range path {
			if s, isStr := ref[i+1].Value.(ast.String); !isStr || string(s) != key {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// key returns the class of a message.
func (in *Input) classKey() classKey {
	m := &in.Message
	return classKey{app: in.App, country: m.Country, from: m.From, kind: m.SenderKind, category: m.Category}
}

// classValue is the input the class is evaluated with: the class fields and nothing else.
func (k classKey) value() ast.Value {
	return ast.NewObject(
		[2]*ast.Term{keyApp, str(k.app)},
		[2]*ast.Term{keyMessage, ast.NewTerm(ast.NewObject(
			[2]*ast.Term{keyCountry, str(k.country)},
			[2]*ast.Term{keyFrom, str(k.from)},
			[2]*ast.Term{keySenderKind, str(k.kind)},
			[2]*ast.Term{keyCategory, str(k.category)},
		))},
	)
}

// get returns the class document of a message, evaluating it when the class is not kept yet.
// Concurrent first uses of one class may both evaluate it; they get equal documents.
func (ce *classEval) get(ctx context.Context, k classKey, txn storage.Transaction, cancel topdown.Cancel) (*ast.Term, error) {
	if t, ok := ce.cache.Get(k); ok {
		return t, nil
	}
	t, err := ce.eval(ctx, k, txn, cancel)
	if err != nil {
		return nil, err
	}
	ce.cache.Add(k, t)
	return t, nil
}

// eval evaluates the class document of a message, without keeping it.
func (ce *classEval) eval(ctx context.Context, k classKey, txn storage.Transaction, cancel topdown.Cancel, opts ...rego.EvalOption) (*ast.Term, error) {
	opts = append(opts,
		rego.EvalParsedInput(k.value()),
		rego.EvalMetrics(metrics.NoOp()),
		rego.EvalExternalCancel(cancel),
	)
	if txn != nil {
		opts = append(opts, rego.EvalTransaction(txn))
	}
	rs, err := ce.query.Eval(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) == 0 {
		return nil, newError(CodeBadDecision, ClassRule+" is undefined or has more than one value", nil)
	}
	v, ok := rs[0].Expressions[0].Value.(ast.Value)
	if !ok {
		return nil, newError(CodeBadDecision, fmt.Sprintf("%s: unexpected result type %T", ClassRule, rs[0].Expressions[0].Value), nil)
	}
	if _, ok := v.(ast.Object); !ok {
		return nil, newError(CodeBadDecision, ClassRule+" is not an object", nil)
	}
	return ast.NewTerm(v), nil
}
