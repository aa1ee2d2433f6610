package policy

import (
	"context"
	"maps"
	"strings"
	"testing"
)

// starterWith returns the starter bundle with modules added or replaced.
func starterWith(t testing.TB, extra map[string]string) Bundle {
	t.Helper()
	mods := maps.Clone(starterBundle(t).Modules)
	maps.Copy(mods, extra)
	b, err := NewBundle(mods, devData())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCompileRefusesBadBundles(t *testing.T) {
	cases := []struct {
		name     string
		bundle   func(t *testing.T) Bundle
		wantCode string
		wantText []string // phrases the error must contain
	}{
		{
			name: "syntax error",
			bundle: func(t *testing.T) Bundle {
				return starterWith(t, map[string]string{"destination.rego": "package smsproxy.destination\n\ndeny contains x if {"})
			},
			wantCode: CodeCompile,
			wantText: []string{"destination.rego"},
		},
		{
			name: "unknown function",
			bundle: func(t *testing.T) Bundle {
				return starterWith(t, map[string]string{"extra.rego": "package smsproxy.extra\n\nx := no_such_function(1)\n"})
			},
			wantCode: CodeCompile,
			wantText: []string{"extra.rego", "no_such_function"},
		},
		{
			name: "failing test",
			bundle: func(t *testing.T) Bundle {
				return starterWith(t, map[string]string{"extra_test.rego": "package smsproxy.extra\n\ntest_sg_is_refused if {\n\tdata.smsproxy.decision.allow with input as {\"message\": {\"country\": \"SG\"}}\n}\n"})
			},
			wantCode: CodeTestFailed,
			wantText: []string{"data.smsproxy.extra.test_sg_is_refused", "extra_test.rego:3", "1 of "},
		},
		{
			name: "erroring test",
			bundle: func(t *testing.T) Bundle {
				return starterWith(t, map[string]string{"extra_test.rego": "package smsproxy.extra\n\ntest_number if {\n\tto_number(\"twelve\") > 0\n}\n"})
			},
			wantCode: CodeTestFailed,
			wantText: []string{"data.smsproxy.extra.test_number", "to_number"},
		},
		{
			name: "test that breaks the region data",
			bundle: func(t *testing.T) Bundle {
				// A test written against the real region data fails when the data changes.
				b, err := NewBundle(map[string]string{
					"decision.rego":    "package smsproxy\n\ndecision := {\"allow\": true}\n",
					"region_test.rego": "package smsproxy.region\n\ntest_sg_is_served if data.region.countries.SG\n",
				}, map[string]any{"region": map[string]any{"countries": map[string]any{"MY": map[string]any{}}}})
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			wantCode: CodeTestFailed,
			wantText: []string{"test_sg_is_served"},
		},
		{
			name: "no decision rule",
			bundle: func(t *testing.T) Bundle {
				b, err := NewBundle(map[string]string{"other.rego": "package smsproxy.other\n\nx := 1\n"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			wantCode: CodeNoDecision,
			wantText: []string{"data.smsproxy.decision"},
		},
		{
			name: "decision only in a test file",
			bundle: func(t *testing.T) Bundle {
				b, err := NewBundle(map[string]string{"decision_test.rego": "package smsproxy\n\ndecision := {\"allow\": true}\n"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			wantCode: CodeNoDecision,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Compile(context.Background(), c.bundle(t))
			if err == nil {
				t.Fatalf("bundle accepted (revision %s)", p.Revision())
			}
			if got := ErrorCode(err); got != c.wantCode {
				t.Fatalf("code %q, want %q: %v", got, c.wantCode, err)
			}
			for _, s := range c.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q: %v", s, err)
				}
			}
		})
	}
}

func TestCompileAcceptsStarter(t *testing.T) {
	b := starterBundle(t)
	p := compileStarter(t)
	if p.Revision() != b.Revision || len(p.Revision()) != 12 {
		t.Errorf("revision %q, bundle %q", p.Revision(), b.Revision)
	}
	if p.Tests() < 25 {
		t.Errorf("only %d Rego tests ran", p.Tests())
	}
}

func TestRevision(t *testing.T) {
	a := starterBundle(t)
	if again := starterBundle(t); again.Revision != a.Revision {
		t.Errorf("same bundle, revisions %s and %s", a.Revision, again.Revision)
	}
	data := devData()
	data["region"].(map[string]any)["region"] = "staging"
	b, err := NewBundle(a.Modules, data)
	if err != nil {
		t.Fatal(err)
	}
	if b.Revision == a.Revision {
		t.Error("changing the data did not change the revision")
	}
	c := starterWith(t, map[string]string{"masks.rego": a.Modules["masks.rego"] + "\n# edited\n"})
	if c.Revision == a.Revision {
		t.Error("changing a module did not change the revision")
	}
}

func TestLoadBundleErrors(t *testing.T) {
	if _, err := LoadBundle(emptyFS{}, nil); ErrorCode(err) != CodeBundle {
		t.Errorf("empty fs: %v, want %s", err, CodeBundle)
	}
	if _, err := NewBundle(map[string]string{"a.rego": "package a"}, map[string]any{"bad": make(chan int)}); ErrorCode(err) != CodeBundle {
		t.Errorf("unencodable data: %v, want %s", err, CodeBundle)
	}
}
