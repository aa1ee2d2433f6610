package provider_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// swapHandler replaces the plugin binary when go-plugin logs its mTLS set-up, which comes after
// go-plugin's own checksum check and before it starts the process.
type swapHandler struct{ path, evil string }

func (h *swapHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *swapHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "configuring client automatic mTLS" {
		_ = os.Rename(h.evil, h.path)
	}
	return nil
}
func (h *swapHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *swapHandler) WithGroup(string) slog.Handler      { return h }

// TestChecksumHoldsAgainstASwap replaces the plugin binary right after the checksum was checked
// and before the process starts (when go-plugin logs its mTLS set-up): the process must still run
// the binary that was checked.
func TestChecksumHoldsAgainstASwap(t *testing.T) {
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "plugin")
	evil := filepath.Join(dir, "evil")
	if err := os.WriteFile(path, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(evil, append(bytes.Clone(self), []byte("EVIL PAYLOAD")...), 0o755); err != nil {
		t.Fatal(err)
	}
	good := sha256.Sum256(self)
	p, err := provider.Launch(context.Background(), provider.LaunchConfig{
		Name: "thirdparty",
		Cmd: func() *exec.Cmd {
			cmd := exec.Command(path)
			cmd.Env = []string{childEnv + "=simulator"}
			return cmd
		},
		Checksum:     good[:],
		PinDir:       filepath.Join(dir, "pinned"),
		Logger:       slog.New(&swapHandler{path: path, evil: evil}),
		StartTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	defer p.Close()
	f, err := os.Open("/proc/" + strconv.Itoa(p.Pid()) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), good[:]) {
		t.Errorf("plugin pid %d runs a binary whose sha256 %x differs from the configured %x: checksum bypassed", p.Pid(), h.Sum(nil), good[:])
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pinned")); err == nil {
		if left, _ := os.ReadDir(filepath.Join(dir, "pinned")); len(left) != 0 {
			t.Errorf("the checked copy outlived Close: %v", left)
		}
	}
}
