package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/simulator"
)

func transfer(i int) map[string]any {
	return map[string]any{
		"to":       number(i),
		"from":     "PAYLINK88",
		"category": "transaction",
		"body":     fmt.Sprintf("Your transfer PL%08d of 250.00 SGD has arrived.", i),
	}
}

// TestMessageLifecycle follows one message from POST to delivered and checks what an app sees on the
// way, including the refusals it must get.
func TestMessageLifecycle(t *testing.T) {
	dir := t.TempDir()
	in := start(t, dir, freeAddr(t), "50ms")

	id, r, err := in.send(transfer(1), "")
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("POST: %v %d %v", err, r.Status, r.Body)
	}
	if r.Body["status"] != "accepted" || r.Body["encoding"] != "GSM-7" || r.Body["segments"] != float64(1) ||
		r.Body["provider"] != "simulator" || r.Body["country"] != "SG" {
		t.Errorf("201 body = %v", r.Body)
	}
	final, delivered := in.waitDelivered(t, []string{id}, 20*time.Second)
	if final[id] != "delivered" || delivered[id] != 1 {
		t.Fatalf("status %q with %d delivered entries", final[id], delivered[id])
	}
	got, _ := in.message(id)
	var steps []string
	for _, h := range got.Body["history"].([]any) {
		steps = append(steps, h.(map[string]any)["status"].(string))
	}
	if strings.Join(steps, ">") != "accepted>sent>delivered" {
		t.Errorf("history = %v", steps)
	}
	if to := got.Body["to"].(string); strings.Contains(to, "91000001") || !strings.HasPrefix(to, "+65") {
		t.Errorf("GET shows the number unmasked or without its country code: %q", to)
	}

	// A wrong key is refused, and another app cannot read it.
	wrong, _ := in.do("GET", "/v1/messages/"+id, "wrong-key", nil, nil)
	if wrong.Status != http.StatusUnauthorized || wrong.Body["code"] != "unauthorized" {
		t.Errorf("wrong key: %d %v", wrong.Status, wrong.Body)
	}
	other, _ := in.do("GET", "/v1/messages/"+id, otherKey, nil, nil)
	if other.Status != http.StatusNotFound || other.Body["code"] != "message_not_found" {
		t.Errorf("another app's message: %d %v", other.Status, other.Body)
	}

	// An OTP body is stored masked.
	otpID, r, _ := in.send(map[string]any{"to": number(2), "from": "PAYLINK88", "category": "otp", "device_id": "dev-1",
		"template": map[string]any{"id": "otp_transaction", "locale": "en-SG", "params": map[string]string{"code": "739215"}}}, "")
	if r.Status != http.StatusCreated {
		t.Fatalf("OTP template: %d %v", r.Status, r.Body)
	}
	got, _ = in.message(otpID)
	if body := got.Body["body"].(string); strings.Contains(body, "739215") {
		t.Errorf("OTP code readable in the stored body: %q", body)
	}

	// A US long code gets the opt-out footer the policy obliges.
	usID, r, _ := in.send(map[string]any{"to": "+14155550123", "from": "+14155550100", "category": "transaction",
		"body": "Your transfer of 100 USD has arrived."}, "")
	if r.Status != http.StatusCreated {
		t.Fatalf("US: %d %v", r.Status, r.Body)
	}
	got, _ = in.message(usID)
	if body := got.Body["body"].(string); !strings.HasSuffix(body, "Reply STOP to unsubscribe.") {
		t.Errorf("US body without the footer: %q", body)
	}

	refusals := []struct {
		name   string
		msg    map[string]any
		status int
		code   string
	}{
		{"country not served", map[string]any{"to": "+33612345678", "from": "PAYLINK88", "category": "transaction", "body": "x"}, 422, "country_not_served"},
		{"alphanumeric sender to the US", map[string]any{"to": "+14155550123", "from": "PAYLINK88", "category": "transaction", "body": "x"}, 422, "sender_type_not_allowed"},
		{"malformed sender", map[string]any{"to": number(3), "from": "PAY$LINK", "category": "transaction", "body": "x"}, 422, "sender_malformed"},
		{"not E.164", map[string]any{"to": "91234567", "from": "PAYLINK88", "category": "transaction", "body": "x"}, 400, "invalid_phone"},
		{"unknown category", map[string]any{"to": number(3), "from": "PAYLINK88", "category": "promo", "body": "x"}, 400, "invalid_category"},
		{"body and template", map[string]any{"to": number(3), "from": "PAYLINK88", "category": "otp", "body": "x", "template": map[string]any{"id": "otp_transaction"}}, 400, "body_or_template"},
		{"unknown field", map[string]any{"to": number(3), "from": "PAYLINK88", "category": "transaction", "body": "x", "colour": "red"}, 400, "invalid_json"},
	}
	for _, c := range refusals {
		_, r, err := in.send(c.msg, "")
		if err != nil || r.Status != c.status || r.Body["code"] != c.code {
			t.Errorf("%s: got %d %v, want %d %s", c.name, r.Status, r.Body, c.status, c.code)
		}
		if r.Status == 422 && r.Body["rule"] == "" {
			t.Errorf("%s: a policy refusal must name its rule: %v", c.name, r.Body)
		}
	}

	// The second OTP to the same number within 60 s is limited, with Retry-After.
	_, r, _ = in.send(map[string]any{"to": number(2), "from": "PAYLINK88", "category": "otp", "device_id": "dev-1",
		"template": map[string]any{"id": "otp_transaction", "params": map[string]string{"code": "111111"}}}, "")
	if r.Status != http.StatusTooManyRequests || r.Body["code"] != "otp_resend_too_soon" || r.Header.Get("Retry-After") == "" {
		t.Errorf("OTP resend: %d %v retry-after=%q", r.Status, r.Body, r.Header.Get("Retry-After"))
	}

	// Idempotency: the same key and request answers with the same message; other content conflicts.
	a, r1, _ := in.send(transfer(10), "order-10")
	b, r2, _ := in.send(transfer(10), "order-10")
	if r1.Status != 201 || r2.Status != 201 || a != b || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %s / %d %s %v", r1.Status, a, r2.Status, b, r2.Header)
	}
	_, r3, _ := in.send(transfer(11), "order-10")
	if r3.Status != http.StatusConflict || r3.Body["code"] != "idempotency_conflict" {
		t.Errorf("conflict: %d %v", r3.Status, r3.Body)
	}

	if err := in.stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// sendLoad posts messages from workers until stop is closed or n messages were accepted, and returns
// the ids that were answered 201.
func sendLoad(in *instance, workers, n int, stop <-chan struct{}, onAccepted func(count int)) []string {
	var mu sync.Mutex
	var ids []string
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1))
				if i > n {
					return
				}
				id, r, err := in.send(transfer(i), fmt.Sprintf("load-%d", i))
				if err != nil || r.Status != http.StatusCreated {
					continue
				}
				mu.Lock()
				ids = append(ids, id)
				count := len(ids)
				mu.Unlock()
				if onAccepted != nil {
					onAccepted(count)
				}
			}
		}()
	}
	wg.Wait()
	return ids
}

// assertSentOnce checks the simulated provider's own ledger: every accepted message was sent exactly
// once, whatever was killed on the way.
func assertSentOnce(t *testing.T, dir string, ids []string) {
	t.Helper()
	ledger, err := simulator.ReadLedger(filepath.Join(dir, "provider"))
	if err != nil {
		t.Fatalf("reading the provider ledger: %v", err)
	}
	for _, id := range ids {
		if ledger[id] != 1 {
			t.Errorf("message %s reached the provider %d times, want 1", id, ledger[id])
		}
	}
}

// TestPluginKilledMidRun kills the provider plugin process while messages flow: the proxy restarts it,
// every accepted message is delivered, and none is sent twice.
func TestPluginKilledMidRun(t *testing.T) {
	dir := t.TempDir()
	in := start(t, dir, freeAddr(t), "100ms")
	before := in.pluginPIDs()
	if len(before) != 1 {
		t.Fatalf("want one plugin process, found %v", before)
	}
	var killed atomic.Bool
	ids := sendLoad(in, 8, 600, nil, func(count int) {
		if count == 200 && killed.CompareAndSwap(false, true) {
			_ = syscall.Kill(before[0], syscall.SIGKILL)
		}
	})
	if !killed.Load() {
		t.Fatal("the plugin was never killed")
	}
	if len(ids) != 600 {
		t.Fatalf("%d of 600 messages accepted while the plugin restarted", len(ids))
	}
	final, delivered := in.waitDelivered(t, ids, 60*time.Second)
	for _, id := range ids {
		if final[id] != "delivered" || delivered[id] != 1 {
			t.Fatalf("message %s: status %q, %d delivered entries", id, final[id], delivered[id])
		}
	}
	after := in.pluginPIDs()
	if len(after) != 1 || after[0] == before[0] {
		t.Errorf("plugin processes before %v, after %v: want one new process", before, after)
	}
	assertSentOnce(t, dir, ids)
	if err := in.stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestProxyKilledUnderLoad SIGKILLs the proxy itself while apps are sending, restarts it on the same
// data and checks that every message an app heard 201 for is delivered exactly once.
func TestProxyKilledUnderLoad(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	in := start(t, dir, addr, "300ms")
	plugins := in.pluginPIDs()
	stop := make(chan struct{})
	var once sync.Once
	ids := sendLoad(in, 8, 100000, stop, func(count int) {
		if count == 400 {
			once.Do(func() {
				in.kill()
				close(stop)
			})
		}
	})
	if len(ids) < 400 {
		t.Fatalf("only %d messages accepted before the kill", len(ids))
	}
	// The orphaned plugin must not outlive the proxy: it would keep sending from a dead proxy's queue.
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range plugins {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Fatalf("plugin process %d outlived the killed proxy", pid)
		}
	}

	again := start(t, dir, addr, "300ms")
	final, delivered := again.waitDelivered(t, ids, 60*time.Second)
	for _, id := range ids {
		if final[id] != "delivered" || delivered[id] != 1 {
			t.Fatalf("message %s: status %q, %d delivered entries", id, final[id], delivered[id])
		}
	}
	assertSentOnce(t, dir, ids)
	if err := again.stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestGracefulShutdown sends SIGTERM while requests are in flight: the proxy exits 0, and every
// message it answered 201 for is delivered after a restart.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	in := start(t, dir, addr, "2s")
	stop := make(chan struct{})
	var once sync.Once
	var stopErr error
	done := make(chan struct{})
	ids := sendLoad(in, 8, 100000, stop, func(count int) {
		if count == 300 {
			once.Do(func() {
				go func() { stopErr = in.stop(); close(done) }()
				close(stop)
			})
		}
	})
	<-done
	if stopErr != nil {
		t.Fatalf("SIGTERM under load: %v", stopErr)
	}
	again := start(t, dir, addr, "50ms")
	final, _ := again.waitDelivered(t, ids, 60*time.Second)
	for _, id := range ids {
		if final[id] != "delivered" {
			t.Fatalf("message %s: status %q after restart", id, final[id])
		}
	}
	assertSentOnce(t, dir, ids)
}
