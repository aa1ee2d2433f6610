package policy

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/policies"
)

// regionDir lays out a policy directory and a region data file the way a deployment does.
func regionDir(t *testing.T) (policyDir, dataFile string) {
	t.Helper()
	root := t.TempDir()
	policyDir = filepath.Join(root, "policies")
	if err := os.CopyFS(policyDir, policies.FS); err != nil {
		t.Fatal(err)
	}
	dataFile = filepath.Join(root, "region.json")
	writeJSON(t, dataFile, devData()["region"])
	return policyDir, dataFile
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func dirLoader(policyDir, dataFile string) func() (Bundle, error) {
	return func() (Bundle, error) {
		raw, err := os.ReadFile(dataFile)
		if err != nil {
			return Bundle{}, err
		}
		var region map[string]any
		if err := json.Unmarshal(raw, &region); err != nil {
			return Bundle{}, err
		}
		return LoadBundle(os.DirFS(policyDir), map[string]any{"region": region})
	}
}

// waitFor polls cond until it holds; the long deadline only guards against a hang, it does not time anything.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatchReloads(t *testing.T) {
	policyDir, dataFile := regionDir(t)
	load := dirLoader(policyDir, dataFile)
	b, err := load()
	if err != nil {
		t.Fatal(err)
	}
	first, err := Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(first, slog.New(slog.DiscardHandler))

	w, err := NewWatcher([]string{policyDir, dataFile}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	reloads := make(chan error, 100)
	go func() {
		done <- w.Run(ctx, func() { reloads <- e.Reload(ctx, load) })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// An editor-style save of the data file: write aside, then rename over it.
	tmp := dataFile + ".tmp"
	writeJSON(t, tmp, withoutSG()["region"])
	if err := os.Rename(tmp, dataFile); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the data change to be picked up", func() bool { return e.Revision() != first.Revision() })
	if allowsSG(t, e) {
		t.Error("SG is still served after it was removed from the data")
	}
	second := e.Revision()

	// A new subdirectory arrives with a broken policy file: refused, and the current policy keeps answering.
	staged := filepath.Join(t.TempDir(), "extra")
	if err := os.Mkdir(staged, 0o755); err != nil {
		t.Fatal(err)
	}
	broken := "package smsproxy.extra\n\nx := \n"
	if err := os.WriteFile(filepath.Join(staged, "extra.rego"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(policyDir, "extra")
	if err := os.Rename(staged, sub); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broken file to be refused", func() bool {
		select {
		case err := <-reloads:
			return ErrorCode(err) == CodeCompile
		default:
			return false
		}
	})
	if e.Revision() != second || allowsSG(t, e) {
		t.Errorf("a refused bundle changed the policy in use: %s", e.Revision())
	}

	// Fixing the file inside the new subdirectory is seen too, so the subdirectory is watched.
	if err := os.WriteFile(filepath.Join(sub, "extra.rego"), []byte("package smsproxy.extra\n\nx := 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fixed file to be loaded", func() bool { return e.Revision() != second })
}

func TestWatchMissingPath(t *testing.T) {
	err := Watch(context.Background(), []string{filepath.Join(t.TempDir(), "nope")}, func() {})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Watch of a missing path: %v", err)
	}
}
