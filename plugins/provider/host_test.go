package provider_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"

	"github.com/smsproxy/smsproxy/plugins/provider"
	"github.com/smsproxy/smsproxy/plugins/simulator"
)

// childEnv makes the test binary serve the simulator as a plugin, the way smsproxy re-executes
// itself for its built-in providers.
const childEnv = "SMSPROXY_TEST_SERVE_PLUGIN"

// childProtocolPrefix, followed by a number, makes the test binary serve the simulator under that
// plugin protocol version, as a plugin built against another version of this package would.
const childProtocolPrefix = "simulator-protocol-"

func TestMain(m *testing.M) {
	child := os.Getenv(childEnv)
	if child == "simulator" {
		provider.Serve(simulator.New())
		os.Exit(0)
	}
	if v, ok := strings.CutPrefix(child, childProtocolPrefix); ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			os.Exit(2)
		}
		hs := provider.Handshake
		hs.ProtocolVersion = uint(n)
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: hs,
			Plugins:         plugin.PluginSet{provider.PluginName: &provider.GRPCPlugin{Impl: simulator.New()}},
			GRPCServer:      plugin.DefaultGRPCServer,
		})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func simulatorCmd() *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{childEnv + "=simulator"}
	return cmd
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func launch(t testing.TB, config string, logs io.Writer) *provider.Plugin {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := provider.Launch(ctx, provider.LaunchConfig{
		Name:   "simulator",
		Cmd:    simulatorCmd,
		Config: []byte(config),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	return p
}

func batch(prefix string, n int) []provider.SendRequest {
	reqs := make([]provider.SendRequest, n)
	for i := range reqs {
		reqs[i] = provider.SendRequest{
			MessageID:      fmt.Sprintf("%s-m%d", prefix, i),
			IdempotencyKey: fmt.Sprintf("%s-k%d", prefix, i),
			To:             fmt.Sprintf("+659%07d", i),
			From:           "ACME",
			Body:           "Your code is 123456",
			Encoding:       "GSM-7",
			Segments:       1,
			Country:        "SG",
			Category:       "otp",
		}
	}
	return reqs
}

// sendUntilAccepted retries a batch while the error is retryable, as the dispatcher would.
func sendUntilAccepted(t *testing.T, p *provider.Plugin, reqs []provider.SendRequest) []provider.SendResult {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := p.Send(context.Background(), reqs)
		if err == nil {
			for i, r := range res {
				if !r.Accepted {
					t.Fatalf("message %d refused: %+v", i, r)
				}
			}
			return res
		}
		if !provider.IsRetryable(err) {
			t.Fatalf("Send: %v is not retryable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Send still failing after 30s: %v", err)
		}
		if err := p.Ready(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPluginSurvivesKill runs the simulator as a real child process, kills it with SIGKILL and
// checks what a user of the proxy would notice: the next send fails retryably and then succeeds,
// receipts for messages sent before the crash still arrive, a retried batch is not sent twice.
func TestPluginSurvivesKill(t *testing.T) {
	defer goleak.VerifyNone(t)
	state := t.TempDir()
	logs := &syncBuffer{}
	p := launch(t, fmt.Sprintf(`{"receipt_delay":"300ms","redelivery_delay":"50ms","state_dir":%q}`, state), logs)
	defer p.Close()

	caps, err := p.Capabilities(context.Background())
	if err != nil || caps.Name != simulator.Name {
		t.Fatalf("Capabilities: %+v, %v", caps, err)
	}

	// Receipts, counted per provider message id, across restarts.
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu       sync.Mutex
		receipts = map[string]int{}
		changed  = make(chan struct{}, 1)
	)
	received := make(chan error, 1)
	go func() {
		received <- p.Receive(ctx, func(e provider.Event) error {
			if e.Kind != provider.EventReceipt || e.Status != provider.StatusDelivered {
				t.Errorf("unexpected event %+v", e)
			}
			mu.Lock()
			receipts[e.ProviderMessageID]++
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
			return nil
		})
	}()

	before := sendUntilAccepted(t, p, batch("before", 20))
	pid := p.Pid()
	if pid == 0 {
		t.Fatal("Pid() = 0 for a running plugin")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	// The first send after the crash fails and says it may be retried, unless the supervisor
	// already brought the plugin back.
	after := batch("after", 20)
	if _, err := p.Send(context.Background(), after); err != nil {
		if !provider.IsRetryable(err) || provider.ErrorCode(err) != provider.CodeUnavailable {
			t.Fatalf("Send after kill: %v (code %q), want a retryable %q", err, provider.ErrorCode(err), provider.CodeUnavailable)
		}
	} else if p.Restarts() == 0 {
		t.Fatal("Send after kill succeeded on a plugin that was never restarted")
	}
	afterRes := sendUntilAccepted(t, p, after)
	if p.Restarts() != 1 {
		t.Errorf("Restarts() = %d, want 1", p.Restarts())
	}
	if got := p.Pid(); got == pid || got == 0 {
		t.Errorf("Pid() = %d after restart, old pid %d", got, pid)
	}

	// Retrying the batch from before the crash returns the original results and sends nothing.
	again := sendUntilAccepted(t, p, batch("before", 20))
	for i := range before {
		if again[i].ProviderMessageID != before[i].ProviderMessageID {
			t.Errorf("retried message %d got provider id %q, originally %q", i, again[i].ProviderMessageID, before[i].ProviderMessageID)
		}
	}

	// Every message gets its receipt, including those accepted by the killed process.
	want := map[string]bool{}
	for _, r := range append(before, afterRes...) {
		want[r.ProviderMessageID] = true
	}
	deadline := time.After(30 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for id := range want {
			if receipts[id] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%d of %d receipts missing after 30s", missing, len(want))
		}
	}
	cancel()
	if err := <-received; !errors.Is(err, context.Canceled) {
		t.Errorf("Receive returned %v, want context.Canceled", err)
	}
	mu.Lock()
	if len(receipts) != len(want) {
		t.Errorf("receipts for %d messages, want %d", len(receipts), len(want))
	}
	mu.Unlock()

	sent, err := simulator.ReadLedger(state)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 40 {
		t.Errorf("ledger holds %d keys, want 40", len(sent))
	}
	for k, n := range sent {
		if n != 1 {
			t.Errorf("key %s sent %d times", k, n)
		}
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "plugin process exited; restarting") || !strings.Contains(out, "plugin restarted") {
		t.Errorf("restart not logged:\n%s", out)
	}
	if strings.Contains(out, "+659") || strings.Contains(out, "123456") {
		t.Errorf("logs hold a phone number or a body:\n%s", out)
	}
}

// TestPluginKillDuringSend checks that a send in flight when the process dies fails retryably.
func TestPluginKillDuringSend(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := launch(t, `{"latency":"2s"}`, nil)
	defer p.Close()
	pid := p.Pid()
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := p.Send(context.Background(), batch("slow", 1))
		done <- err
	}()
	<-started
	time.Sleep(200 * time.Millisecond) // Let the call reach the plugin; the result holds either way.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if !provider.IsRetryable(err) {
		t.Fatalf("in-flight Send: %v, want a retryable error", err)
	}
	var pe *provider.Error
	if errors.As(err, &pe) && pe.NotSent {
		t.Fatalf("in-flight Send: %v says NotSent, yet the call reached the plugin", err)
	}
}

// TestPluginSendWhileDown checks that a Send while the plugin process is down, or after Close,
// makes no call and says so: the error has NotSent set.
func TestPluginSendWhileDown(t *testing.T) {
	defer goleak.VerifyNone(t)
	// Every start after the first fails, so the plugin stays down once killed.
	p, _ := launchThenSwap(t, func() *exec.Cmd { return exec.Command("true") })
	defer p.Close()
	for deadline := time.Now().Add(30 * time.Second); p.Pid() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the plugin was not noticed down within 30s")
		}
	}

	_, err := p.Send(context.Background(), batch("down", 2))
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Code != provider.CodeUnavailable || !pe.Retryable || !pe.NotSent {
		t.Fatalf("Send while restarting: %#v, want a retryable %q error with NotSent", err, provider.CodeUnavailable)
	}
	if !pe.NothingSent() {
		t.Errorf("NothingSent() = false for %v", err)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = p.Send(context.Background(), batch("closed", 1))
	if !errors.As(err, &pe) || pe.Code != provider.CodeClosed || !pe.NotSent {
		t.Fatalf("Send after Close: %#v, want a %q error with NotSent", err, provider.CodeClosed)
	}
}

func TestPluginClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := launch(t, ``, nil)
	pid := p.Pid()
	received := make(chan error, 1)
	go func() {
		received <- p.Receive(context.Background(), func(provider.Event) error { return nil })
	}()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-received; provider.ErrorCode(err) != provider.CodeClosed {
		t.Errorf("Receive after Close: %v, want %q", err, provider.CodeClosed)
	}
	if _, err := p.Send(context.Background(), batch("x", 1)); provider.ErrorCode(err) != provider.CodeClosed || provider.IsRetryable(err) {
		t.Errorf("Send after Close: %v, want a non-retryable %q", err, provider.CodeClosed)
	}
	if p.Pid() != 0 {
		t.Errorf("Pid() = %d after Close", p.Pid())
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("plugin process %d still exists after Close (kill 0: %v)", pid, err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLaunchRefusals(t *testing.T) {
	defer goleak.VerifyNone(t)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	good := sha256.Sum256(self)
	bad := sha256.Sum256([]byte("something else"))
	tests := []struct {
		name string
		cfg  provider.LaunchConfig
		code string
	}{
		{"no name", provider.LaunchConfig{Cmd: simulatorCmd}, provider.CodeInvalidConfig},
		{"no command", provider.LaunchConfig{Name: "simulator"}, provider.CodeInvalidConfig},
		{"short checksum", provider.LaunchConfig{Name: "simulator", Cmd: simulatorCmd, Checksum: []byte{1, 2}}, provider.CodeInvalidConfig},
		{"checksum mismatch", provider.LaunchConfig{Name: "simulator", Cmd: simulatorCmd, Checksum: bad[:]}, provider.CodeChecksum},
		{"config refused", provider.LaunchConfig{Name: "simulator", Cmd: simulatorCmd, Config: []byte(`{"latency":"fast"}`)}, provider.CodeInvalidConfig},
		{"unknown config key", provider.LaunchConfig{Name: "simulator", Cmd: simulatorCmd, Config: []byte(`{"latancy":"5ms"}`)}, provider.CodeInvalidConfig},
		{"not a plugin", provider.LaunchConfig{Name: "true", Cmd: func() *exec.Cmd { return exec.Command("true") }}, provider.CodeStart},
		{"matching checksum", provider.LaunchConfig{Name: "simulator", Cmd: simulatorCmd, Checksum: good[:]}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = slog.New(slog.DiscardHandler)
			p, err := provider.Launch(context.Background(), tt.cfg)
			if p != nil {
				defer p.Close()
			}
			if got := provider.ErrorCode(err); got != tt.code {
				t.Fatalf("Launch: %v (code %q), want code %q", err, got, tt.code)
			}
			if tt.code == provider.CodeInvalidConfig && provider.IsRetryable(err) {
				t.Errorf("a configuration error must not be retryable: %v", err)
			}
		})
	}
}

// TestLaunchRefusesOtherProtocol checks that a plugin speaking another protocol version is refused
// at the handshake with a clear error, before any call: protocol 1 (one event and one ack per
// Receive frame) and a future one.
func TestLaunchRefusesOtherProtocol(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, v := range []uint{1, provider.ProtocolVersion + 1} {
		t.Run(fmt.Sprintf("protocol %d", v), func(t *testing.T) {
			p, err := provider.Launch(context.Background(), provider.LaunchConfig{
				Name: "simulator",
				Cmd: func() *exec.Cmd {
					cmd := exec.Command(os.Args[0])
					cmd.Env = []string{childEnv + "=" + childProtocolPrefix + strconv.FormatUint(uint64(v), 10)}
					return cmd
				},
				Logger: slog.New(slog.DiscardHandler),
			})
			if p != nil {
				defer p.Close()
			}
			if got := provider.ErrorCode(err); got != provider.CodeStart {
				t.Fatalf("Launch: %v (code %q), want code %q", err, got, provider.CodeStart)
			}
			want := fmt.Sprintf("incompatible API version with plugin. Plugin version: %d, Client versions: [%d]", v, provider.ProtocolVersion)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Launch: %v, want it to say %q", err, want)
			}
		})
	}
}
