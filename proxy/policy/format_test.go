package policy

import (
	"io/fs"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"

	"github.com/smsproxy/smsproxy/policies"
)

// TestStarterIsFormatted keeps the starter policy in `opa fmt` form, so compliance reviews see only real changes.
// Reformat a file with `opa fmt -w policies/` (or copy the "want" text from this test's output).
func TestStarterIsFormatted(t *testing.T) {
	paths, err := fs.Glob(policies.FS, "*.rego")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 10 {
		t.Fatalf("found only %d Rego files: %v", len(paths), paths)
	}
	for _, p := range paths {
		src, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := format.SourceWithOpts(p, src, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if string(want) != string(src) {
			t.Errorf("%s is not in opa fmt form; want:\n%s", p, want)
		}
	}
}
