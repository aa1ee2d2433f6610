package policy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
)

// withoutSG is the dev data with Singapore no longer served.
func withoutSG() map[string]any {
	data := devData()
	countries := maps.Clone(data["region"].(map[string]any)["countries"].(map[string]any))
	delete(countries, "SG")
	region := maps.Clone(data["region"].(map[string]any))
	region["countries"] = countries
	return map[string]any{"region": region}
}

func allowsSG(t *testing.T, e *Engine) bool {
	t.Helper()
	d, err := e.Decide(context.Background(), otpSG())
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d.Allow
}

func TestEngineReload(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	first := compileStarter(t)
	e := NewEngine(first, logger)
	if e.Revision() != first.Revision() || !allowsSG(t, e) {
		t.Fatalf("new engine: revision %q", e.Revision())
	}
	good := starterBundle(t)
	ctx := context.Background()

	t.Run("compile error keeps the old policy", func(t *testing.T) {
		logs.Reset()
		err := e.Reload(ctx, func() (Bundle, error) {
			return starterWith(t, map[string]string{"sender.rego": "package smsproxy.sender\n\ndeny contains"}), nil
		})
		if ErrorCode(err) != CodeCompile {
			t.Fatalf("Reload: %v", err)
		}
		if e.Revision() != first.Revision() || !allowsSG(t, e) {
			t.Error("the old policy stopped answering")
		}
		if !strings.Contains(logs.String(), "policy reload refused") || !strings.Contains(logs.String(), "code=policy_compile") {
			t.Errorf("no clear error line: %s", logs.String())
		}
	})

	t.Run("failing test keeps the old policy", func(t *testing.T) {
		err := e.Reload(ctx, func() (Bundle, error) {
			return starterWith(t, map[string]string{"x_test.rego": "package smsproxy.x\n\ntest_never if false\n"}), nil
		})
		if ErrorCode(err) != CodeTestFailed || e.Revision() != first.Revision() {
			t.Fatalf("Reload: %v, revision %s", err, e.Revision())
		}
	})

	t.Run("loader error keeps the old policy", func(t *testing.T) {
		logs.Reset()
		err := e.Reload(ctx, func() (Bundle, error) { return Bundle{}, errors.New("disk gone") })
		if err == nil || e.Revision() != first.Revision() || !strings.Contains(logs.String(), "disk gone") {
			t.Fatalf("Reload: %v, revision %s, log %s", err, e.Revision(), logs.String())
		}
	})

	t.Run("unchanged bundle is not recompiled", func(t *testing.T) {
		logs.Reset()
		if err := e.Reload(ctx, func() (Bundle, error) { return good, nil }); err != nil {
			t.Fatal(err)
		}
		if e.Current() != first || !strings.Contains(logs.String(), "policy unchanged") {
			t.Errorf("recompiled an unchanged bundle: %s", logs.String())
		}
	})

	t.Run("good bundle is swapped in", func(t *testing.T) {
		logs.Reset()
		b, err := NewBundle(good.Modules, withoutSG())
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Reload(ctx, func() (Bundle, error) { return b, nil }); err != nil {
			t.Fatal(err)
		}
		if e.Revision() != b.Revision || allowsSG(t, e) {
			t.Errorf("revision %s, want %s; SG still allowed: %v", e.Revision(), b.Revision, allowsSG(t, e))
		}
		want := "old_revision=" + first.Revision() + " new_revision=" + b.Revision
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q: %s", want, logs.String())
		}
	})
}

func TestEngineWithoutPolicy(t *testing.T) {
	e := NewEngine(nil, nil)
	d, err := e.Decide(context.Background(), otpSG())
	if ErrorCode(err) != CodeNotLoaded || d.Allow || e.Revision() != "" {
		t.Fatalf("got %+v, %v", d, err)
	}
	e.Swap(nil)
	if e.Current() != nil {
		t.Fatal("Swap(nil) loaded something")
	}
}

// TestEngineConcurrentSwap decides from many goroutines while the policy flips between two revisions;
// run it with -race. Every answer must be one of the two policies' answers, never an error.
func TestEngineConcurrentSwap(t *testing.T) {
	serving := compileStarter(t)
	b, err := NewBundle(starterBundle(t).Modules, withoutSG())
	if err != nil {
		t.Fatal(err)
	}
	refusing, err := Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(serving, slog.New(slog.DiscardHandler))
	const workers, decisions, swaps = 4, 300, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range decisions {
				d, err := e.Decide(context.Background(), otpSG())
				switch {
				case err != nil:
					errs <- err
					return
				case !d.Allow && (len(d.Reasons) != 1 || d.Reasons[0].Code != "country_not_served"):
					errs <- errors.New("unexpected refusal: " + d.Reasons[0].Code)
					return
				case d.Allow && len(d.Limits) != 5: // app, otp per device and per number, velocity per country and per prefix
					errs <- errors.New("allowed without its limits")
					return
				}
			}
		})
	}
	for i := range swaps {
		if i%2 == 0 {
			e.Swap(refusing)
		} else {
			e.Swap(serving)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// untested returns the starter bundle with its Rego tests gone: removed, or all renamed todo_test_
// (skipped).
func untested(t *testing.T, skip bool) Bundle {
	t.Helper()
	mods := map[string]string{}
	for p, src := range starterBundle(t).Modules {
		switch {
		case !isTest(p):
			mods[p] = src
		case skip:
			mods[p] = strings.ReplaceAll(src, "\ntest_", "\ntodo_test_")
		}
	}
	b, err := NewBundle(mods, devData())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEngineRefusesUntestedBundles: a bundle with no passing test compiles (a shadow candidate need
// carry no tests) but is never served: Reload refuses it with CodeNoTests and one error line,
// Swap keeps the current policy and NewEngine starts with none.
func TestEngineRefusesUntestedBundles(t *testing.T) {
	ctx := context.Background()
	first := compileStarter(t)
	if err := first.Tested(); err != nil {
		t.Fatalf("the starter pack: %v", err)
	}
	for _, c := range []struct {
		name string
		skip bool
	}{{"tests removed", false}, {"tests all todo_test_", true}} {
		t.Run(c.name, func(t *testing.T) {
			b := untested(t, c.skip)
			p, err := Compile(ctx, b)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if c.skip && p.Tests() == 0 {
				t.Fatal("no skipped tests ran; the renaming missed them")
			}
			if err := p.Tested(); ErrorCode(err) != CodeNoTests {
				t.Fatalf("Tested() = %v, want %s", err, CodeNoTests)
			}

			var logs bytes.Buffer
			e := NewEngine(first, slog.New(slog.NewTextHandler(&logs, nil)))
			err = e.Reload(ctx, func() (Bundle, error) { return b, nil })
			if ErrorCode(err) != CodeNoTests || e.Revision() != first.Revision() {
				t.Fatalf("Reload: %v, revision %s, want %s and %s", err, e.Revision(), CodeNoTests, first.Revision())
			}
			if !strings.Contains(logs.String(), "policy reload refused") || !strings.Contains(logs.String(), "code=policy_no_tests") {
				t.Errorf("no clear error line: %s", logs.String())
			}
			e.Swap(p)
			if e.Current() != first {
				t.Error("Swap served an untested bundle")
			}

			logs.Reset()
			fresh := NewEngine(p, slog.New(slog.NewTextHandler(&logs, nil)))
			if fresh.Current() != nil || !strings.Contains(logs.String(), "code=policy_no_tests") {
				t.Fatalf("NewEngine served an untested bundle; log %s", logs.String())
			}
			if _, err := fresh.Decide(ctx, otpSG()); ErrorCode(err) != CodeNotLoaded {
				t.Errorf("Decide without a policy: %v, want %s", err, CodeNotLoaded)
			}
		})
	}
}
