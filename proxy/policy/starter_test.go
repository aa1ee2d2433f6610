package policy

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/smsproxy/smsproxy/policies"
)

func starterBundle(t testing.TB) Bundle {
	t.Helper()
	b, err := LoadBundle(policies.FS, devData())
	if err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	return b
}

func TestStarterRegoTestsPass(t *testing.T) {
	results, err := Test(context.Background(), starterBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 25 {
		t.Errorf("only %d Rego tests ran", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s (%s): %s", r.Name, r.Location, r.Failure)
		}
	}
}

// emptyFS is a file system with nothing in it.
type emptyFS struct{}

func (emptyFS) Open(name string) (fs.File, error) {
	return fstest.MapFS{}.Open(name)
}

// TestStarterRegoCoverage fails when a line of the starter policy is not exercised by its Rego tests.
func TestStarterRegoCoverage(t *testing.T) {
	ps, err := parse(starterBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	cov := cover.New()
	ch, err := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)).
		SetStore(newStore(devData())).
		SetModules(ps.all).
		SetCoverageQueryTracer(cov).
		RunTests(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for r := range ch {
		if !r.Pass() {
			t.Errorf("%s.%s failed", r.Package, r.Name)
		}
	}
	report := cov.Report(ps.policy)
	for file, fr := range report.Files {
		if !isTest(file) {
			for _, rng := range fr.NotCovered {
				t.Errorf("%s:%d-%d is not covered by any Rego test", file, rng.Start.Row, rng.End.Row)
			}
		}
	}
	t.Logf("starter policy coverage %.1f%%", report.Coverage)
}
