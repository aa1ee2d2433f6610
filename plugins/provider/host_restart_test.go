package provider_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// launchThenSwap launches the simulator, then makes every later start run next() instead, and
// kills the first process. It returns the plugin and the number of starts so far.
func launchThenSwap(t *testing.T, next func() *exec.Cmd) (*provider.Plugin, *atomic.Int32) {
	t.Helper()
	starts := new(atomic.Int32)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := provider.Launch(ctx, provider.LaunchConfig{
		Name: "simulator",
		Cmd: func() *exec.Cmd {
			if starts.Add(1) == 1 {
				return simulatorCmd()
			}
			return next()
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		p.Close()
		t.Fatal(err)
	}
	return p, starts
}

// TestPluginGivesUpOnOtherProtocol checks that a binary that speaks another protocol version after
// a first good start is not restarted for ever: the plugin fails for good, and calls answer at once
// with a non-retryable "plugin_failed" error that says NotSent, so the dispatcher moves on.
func TestPluginGivesUpOnOtherProtocol(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, starts := launchThenSwap(t, func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = []string{childEnv + "=" + childProtocolPrefix + strconv.Itoa(provider.ProtocolVersion+1)}
		return cmd
	})
	defer p.Close()

	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err = p.Send(context.Background(), batch("failed", 1))
		if provider.ErrorCode(err) == provider.CodeFailed || time.Now().After(deadline) {
			break
		}
	}
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Code != provider.CodeFailed || pe.Retryable || !pe.NotSent {
		t.Fatalf("Send: %#v, want a non-retryable %q error with NotSent", err, provider.CodeFailed)
	}
	n := starts.Load()
	time.Sleep(1500 * time.Millisecond) // several backoff periods of the first restarts
	if got := starts.Load(); got != n {
		t.Errorf("%d more starts after the plugin failed for good", got-n)
	}
	if p.Restarts() != 0 || p.Pid() != 0 {
		t.Errorf("Restarts() = %d, Pid() = %d, want 0 and 0", p.Restarts(), p.Pid())
	}
	if err := p.Ready(context.Background()); provider.ErrorCode(err) != provider.CodeFailed {
		t.Errorf("Ready: %v, want %q", err, provider.CodeFailed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Receive(ctx, func(provider.Event) error { return nil }); provider.ErrorCode(err) != provider.CodeFailed || provider.IsRetryable(err) {
		t.Errorf("Receive: %v, want a non-retryable %q", err, provider.CodeFailed)
	}
	if _, err := p.Capabilities(context.Background()); provider.ErrorCode(err) != provider.CodeFailed {
		t.Errorf("Capabilities: %v, want %q", err, provider.CodeFailed)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(context.Background(), batch("closed", 1)); provider.ErrorCode(err) != provider.CodeClosed {
		t.Errorf("Send after Close: %v, want %q", err, provider.CodeClosed)
	}
}

// TestPluginCloseDuringHungRestart checks that Close does not wait for StartTimeout when a
// restarted process hangs before its handshake: the pending start is killed at once.
func TestPluginCloseDuringHungRestart(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, starts := launchThenSwap(t, func() *exec.Cmd { return exec.Command("sleep", "30") })
	for deadline := time.Now().Add(20 * time.Second); starts.Load() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			p.Close()
			t.Fatal("the plugin was not restarted within 20s")
		}
	}
	time.Sleep(200 * time.Millisecond) // let the restart reach its wait for the handshake
	began := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Close took %v during a hung restart, want under 1s", took)
	}
}
