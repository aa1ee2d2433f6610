package simulator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) {
	if os.Getenv(pluginEnv) != "" {
		// A plugin process of BenchmarkHostLoad.
		if path := os.Getenv(pluginProfileEnv); path != "" {
			f, err := os.Create(path)
			if err == nil && pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
		provider.Serve(New())
		return
	}
	goleak.VerifyTestMain(m)
}

func configured(t *testing.T, config string) *Simulator {
	t.Helper()
	s := New()
	if err := s.Configure([]byte(config)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func req(key, to string) provider.SendRequest {
	return provider.SendRequest{MessageID: "m-" + key, IdempotencyKey: key, To: to, From: "ACME", Body: "hello"}
}

func send(t *testing.T, s *Simulator, reqs ...provider.SendRequest) []provider.SendResult {
	t.Helper()
	res, err := s.Send(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(res), len(reqs))
	}
	return res
}

// collector runs Receive and gathers events; handle decides each event's answer.
type collector struct {
	mu     sync.Mutex
	events []provider.Event
	more   chan struct{}
	cancel context.CancelFunc
	done   chan error
}

func receive(s *Simulator, handle func(provider.Event) error) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{more: make(chan struct{}, 1), cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- s.Receive(ctx, func(e provider.Event) error {
			var err error
			if handle != nil {
				err = handle(e)
			}
			c.mu.Lock()
			c.events = append(c.events, e)
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
			return err
		})
	}()
	return c
}

// wait blocks until n events were handled and returns them.
func (c *collector) wait(t *testing.T, n int) []provider.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		got := append([]provider.Event(nil), c.events...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("%d events after 20s, want %d", len(got), n)
		}
	}
}

// stop ends Receive and returns every event handled.
func (c *collector) stop(t *testing.T) []provider.Event {
	t.Helper()
	c.cancel()
	if err := <-c.done; !errors.Is(err, context.Canceled) {
		t.Errorf("Receive returned %v, want context.Canceled", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events
}

func TestSendDeduplicates(t *testing.T) {
	s := configured(t, ``)
	res := send(t, s, req("k1", "+6591000001"), req("k2", "+6591000002"), req("k1", "+6591000001"))
	for i, want := range []string{"sim-1", "sim-2", "sim-1"} {
		if !res[i].Accepted || res[i].ProviderMessageID != want {
			t.Errorf("result %d: %+v, want accepted as %s", i, res[i], want)
		}
	}
	again := req("k2", "+6591000002")
	again.MessageID = "m-retry"
	res = send(t, s, again)
	if res[0].ProviderMessageID != "sim-2" || res[0].MessageID != "m-retry" {
		t.Errorf("repeated key: %+v, want sim-2 for m-retry", res[0])
	}
	c := receive(s, nil)
	c.wait(t, 2)
	if events := c.stop(t); len(events) != 2 {
		t.Errorf("%d receipts for 2 messages sent: %+v", len(events), events)
	}
}

func TestSendRefusals(t *testing.T) {
	s := configured(t, ``)
	res := send(t, s, provider.SendRequest{MessageID: "m1", IdempotencyKey: "k1"})
	if res[0].Accepted || res[0].ErrorCode != CodeInvalidRequest || res[0].Retryable {
		t.Errorf("no destination: %+v", res[0])
	}
	_, err := s.Send(context.Background(), make([]provider.SendRequest, MaxBatch+1))
	var perr *provider.Error
	if provider.ErrorCode(err) != provider.CodeBatchTooLarge || !errors.As(err, &perr) || !perr.NotSent {
		t.Errorf("oversized batch: %v; want %s saying nothing was sent", err, provider.CodeBatchTooLarge)
	}
}

func TestFailureRate(t *testing.T) {
	all := configured(t, `{"failure_rate":1}`)
	for _, r := range send(t, all, req("k1", "+6591000001"), req("k2", "+6591000002")) {
		if r.Accepted || r.ErrorCode != CodeFailure || !r.Retryable {
			t.Errorf("failure_rate 1: %+v, want a retryable %s", r, CodeFailure)
		}
	}

	outcomes := func(seed int) []bool {
		s := configured(t, fmt.Sprintf(`{"failure_rate":0.5,"seed":%d}`, seed))
		reqs := make([]provider.SendRequest, 200)
		for i := range reqs {
			reqs[i] = req(fmt.Sprint("k", i), "+6591000001")
		}
		var out []bool
		for _, r := range send(t, s, reqs...) {
			out = append(out, r.Accepted)
		}
		return out
	}
	a, b, c := outcomes(7), outcomes(7), outcomes(8)
	accepted := 0
	for i := range a {
		if a[i] {
			accepted++
		}
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("same seed gave different outcomes")
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Error("different seeds gave the same outcomes")
	}
	if accepted < 70 || accepted > 130 {
		t.Errorf("failure_rate 0.5 accepted %d of 200", accepted)
	}

	// A refused key draws again on retry, so retrying gets it through.
	s := configured(t, `{"failure_rate":0.5,"seed":7}`)
	for attempt := 1; ; attempt++ {
		if send(t, s, req("retry-me", "+6591000001"))[0].Accepted {
			break
		}
		if attempt == 50 {
			t.Fatal("a key refused 50 times in a row at failure_rate 0.5")
		}
	}
}

func TestReceiptsAndReplies(t *testing.T) {
	s := configured(t, `{"receipt_failure_rate":1,"replies":[{"to_suffix":"67","body":"STOP","after":"10ms"}]}`)
	res := send(t, s, req("k1", "+6591234567"), req("k2", "+6591234568"))
	c := receive(s, nil)
	c.wait(t, 3)
	events := c.stop(t)
	var receipts, inbound int
	for _, e := range events {
		switch e.Kind {
		case provider.EventReceipt:
			receipts++
			if e.Status != provider.StatusUndeliverable || e.ErrorCode != CodeUndeliverable || e.At.IsZero() {
				t.Errorf("receipt %+v, want undeliverable with %s", e, CodeUndeliverable)
			}
		case provider.EventInbound:
			inbound++
			want := provider.Event{Kind: provider.EventInbound, From: "+6591234567", To: "ACME", Body: "STOP"}
			e.At = time.Time{}
			if e != want {
				t.Errorf("reply %+v, want %+v", e, want)
			}
		}
	}
	if receipts != 2 || inbound != 1 {
		t.Errorf("%d receipts and %d replies, want 2 and 1 (results %+v)", receipts, inbound, res)
	}
}

func TestNotAcknowledgedIsRedelivered(t *testing.T) {
	s := configured(t, `{"redelivery_delay":"10ms"}`)
	pid := send(t, s, req("k1", "+6591000001"))[0].ProviderMessageID
	calls := 0
	c := receive(s, func(provider.Event) error {
		calls++ // One event, so handle is never called concurrently here.
		if calls < 3 {
			return errors.New("store down")
		}
		return nil
	})
	events := c.wait(t, 3)
	for _, e := range events {
		if e.ProviderMessageID != pid {
			t.Errorf("event for %s, want %s", e.ProviderMessageID, pid)
		}
	}
	if events := c.stop(t); len(events) != 3 {
		t.Errorf("receipt handled %d times, want 3 (refused twice, then acknowledged)", len(events))
	}
}

// TestRestartFromLedger plays a plugin process restart: a new simulator on the same state_dir
// recognises keys, keeps numbering, and delivers only the events that were not acknowledged.
func TestRestartFromLedger(t *testing.T) {
	dir := t.TempDir()
	config := fmt.Sprintf(`{"state_dir":%q,"redelivery_delay":"1h"}`, dir)
	first := configured(t, config)
	res := send(t, first, req("k1", "+6591000001"), req("k2", "+6591000002"), req("k3", "+6591000003"))
	c := receive(first, func(e provider.Event) error {
		if e.ProviderMessageID == res[0].ProviderMessageID {
			return nil
		}
		return errors.New("not now")
	})
	c.wait(t, 3)
	c.stop(t)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := configured(t, config)
	again := send(t, second, req("k1", "+6591000001"), req("k2", "+6591000002"), req("k3", "+6591000003"), req("k4", "+6591000004"))
	for i := range res {
		if again[i] != res[i] {
			t.Errorf("after restart key %d: %+v, originally %+v", i, again[i], res[i])
		}
	}
	if again[3].ProviderMessageID != "sim-4" {
		t.Errorf("new key after restart got %q, want sim-4", again[3].ProviderMessageID)
	}
	c = receive(second, nil)
	c.wait(t, 3)
	got := map[string]int{}
	for _, e := range c.stop(t) {
		got[e.ProviderMessageID]++
	}
	want := map[string]int{"sim-2": 1, "sim-3": 1, "sim-4": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("receipts after restart %v, want %v", got, want)
	}

	sent, err := ReadLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sent) != fmt.Sprint(map[string]int{"k1": 1, "k2": 1, "k3": 1, "k4": 1}) {
		t.Errorf("ledger %v, want each key sent once", sent)
	}
}

func TestLedgerTornTail(t *testing.T) {
	dir := t.TempDir()
	config := fmt.Sprintf(`{"state_dir":%q}`, dir)
	s := configured(t, config)
	send(t, s, req("k1", "+6591000001"))
	s.Close()
	path := filepath.Join(dir, LedgerFile)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"sent","key":"k2","provider_mess`) // A crash in the middle of a write.
	f.Close()

	s = configured(t, config)
	res := send(t, s, req("k2", "+6591000002"))
	if res[0].ProviderMessageID != "sim-2" {
		t.Errorf("k2 got %q, want sim-2", res[0].ProviderMessageID)
	}
	sent, err := ReadLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if sent["k1"] != 1 || sent["k2"] != 1 || len(sent) != 2 {
		t.Errorf("ledger %v, want k1 and k2 once", sent)
	}
}

func TestLedgerCorruptRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, LedgerFile), []byte("not json\n"), 0o600)
	err := New().Configure([]byte(fmt.Sprintf(`{"state_dir":%q}`, dir)))
	if provider.ErrorCode(err) != CodeLedger {
		t.Errorf("Configure on a corrupt ledger: %v, want %s", err, CodeLedger)
	}
}

// TestLedgerGolden pins the ledger's format: a restarted simulator of a later release must still
// read what an earlier one wrote.
func TestLedgerGolden(t *testing.T) {
	dir := t.TempDir()
	s := New()
	clock := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	config := fmt.Sprintf(`{"state_dir":%q,"receive_window":1,"receipt_failure_rate":0.5,"seed":3,
		"replies":[{"to_suffix":"67","body":"STOP"}]}`, dir)
	if err := s.Configure([]byte(config)); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	send(t, s, req("k1", "+6591234567"), req("k2", "+6591000002"), req("k3", "+6591000003"), req("k1", "+6591234567"))
	c := receive(s, nil)
	c.wait(t, 4)
	c.stop(t)

	got, err := os.ReadFile(filepath.Join(dir, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "ledger.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("ledger differs from %s (run with -update if intended):\n%s", golden, got)
	}

	// A simulator started on the golden ledger knows its keys and has nothing left to deliver.
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, LedgerFile), want, 0o600); err != nil {
		t.Fatal(err)
	}
	r := configured(t, fmt.Sprintf(`{"state_dir":%q}`, dir))
	if res := send(t, r, req("k3", "+6591000003")); res[0].ProviderMessageID != "sim-3" {
		t.Errorf("k3 from the golden ledger: %+v, want sim-3", res[0])
	}
	if n := len(r.queue); n != 0 {
		t.Errorf("%d events pending after replaying a fully acknowledged ledger", n)
	}
}

func TestLatencyHonoursCancel(t *testing.T) {
	dir := t.TempDir()
	s := configured(t, fmt.Sprintf(`{"latency":"1h","state_dir":%q}`, dir))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Send(ctx, []provider.SendRequest{req("k1", "+6591000001")})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Send returned %v, want context.Canceled", err)
	}
	if sent, err := ReadLedger(dir); err != nil || len(sent) != 0 {
		t.Errorf("ledger after a cancelled send: %v, %v; want empty", sent, err)
	}
}
