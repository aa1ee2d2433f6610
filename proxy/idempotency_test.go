package proxy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/limit"
	"github.com/smsproxy/smsproxy/proxy/route"
	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// submitProxy is a proxy with the embedded dev region and policy pack, a real SQLite store and
// limiter, and a fake "simulator" provider that counts what it is sent.
func submitProxy(t *testing.T) (*Proxy, *countingSender) {
	t.Helper()
	p := reloadProxy(t, "", nil)
	kr, err := audit.GenerateKeyring("dev", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "db"), store.Options{Audit: kr, Logger: p.log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	p.store = st
	p.facts = newRecipientFacts(st, 0)
	if p.limiter, err = limit.New(1000); err != nil {
		t.Fatal(err)
	}
	snd := &countingSender{sends: map[string]int{}}
	o := &outbound{p: p, plugins: map[string]*provider.Plugin{"simulator": nil}, inFlight: map[string]struct{}{}}
	p.out = o
	if o.router, err = route.New(route.Config{Providers: map[string]route.Sender{"simulator": snd},
		Countries: map[string][]string{"SG": {"simulator"}}, Logger: p.log}); err != nil {
		t.Fatal(err)
	}
	if o.dispatcher, err = route.NewDispatcher(o.router, route.DispatcherConfig{Recorder: o, Logger: p.log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = o.dispatcher.Close(ctx)
	})
	return p, snd
}

// TestConcurrentIdempotentRetries sends one OTP eight times at once with the same Idempotency-Key,
// as a client whose timeout is shorter than the proxy's answer would. The OTP's per-number limit
// allows one code a minute, so a retry that reserved limits again would be answered 429: every
// request must instead get the one message's answer, and the provider must see it once.
func TestConcurrentIdempotentRetries(t *testing.T) {
	p, snd := submitProxy(t)
	d := sms.Draft{App: "dev", To: "+6591234567", From: "PAYLINK88", Category: "otp", DeviceID: "dev-1",
		Template:       &sms.TemplateRef{ID: "otp_transaction", Locale: "en-SG", Params: map[string]string{"code": "739215"}},
		IdempotencyKey: "retry-1"}
	const n = 8
	var wg sync.WaitGroup
	got := make([]sms.Accepted, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = p.Submit(context.Background(), "dev", d) })
	}
	wg.Wait()
	first := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if got[i].ID != got[0].ID {
			t.Errorf("request %d answered message %s, request 0 %s", i, got[i].ID, got[0].ID)
		}
		if !got[i].Duplicate {
			first++
		}
	}
	if first != 1 {
		t.Errorf("%d requests were answered as the first; want 1", first)
	}
	for deadline := time.Now().Add(5 * time.Second); snd.count(got[0].ID) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if c := snd.count(got[0].ID); c != 1 {
		t.Errorf("the provider was sent the message %d times; want 1", c)
	}

	// The same key with other content is still a conflict, and a new key is limited as before.
	d2 := d
	d2.Template = &sms.TemplateRef{ID: "otp_transaction", Locale: "en-SG", Params: map[string]string{"code": "111111"}}
	if _, err := p.Submit(context.Background(), "dev", d2); codeOf(err) != "idempotency_conflict" {
		t.Errorf("reused key with other content: %v; want idempotency_conflict", err)
	}
	d2.IdempotencyKey = "retry-2"
	if _, err := p.Submit(context.Background(), "dev", d2); codeOf(err) != "otp_resend_too_soon" {
		t.Errorf("second OTP within a minute: %v; want otp_resend_too_soon", err)
	}
}

// TestKeyLockGivesUp checks that a request waiting for the same key gives up with its context and
// that another app's identical key is not held up.
func TestKeyLockGivesUp(t *testing.T) {
	var k keyLocks
	unlock, err := k.lock(context.Background(), "a", "k")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "a", "k"); err == nil {
		t.Fatal("a second holder of the same key got the lock")
	}
	other, err := k.lock(context.Background(), "b", "k")
	if err != nil {
		t.Fatal(err)
	}
	other()
	unlock()
	again, err := k.lock(context.Background(), "a", "k")
	if err != nil {
		t.Fatal(err)
	}
	again()
}

func codeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestIdempotentReplayIsTheFirstAnswer: a retry after the message went out gets the answer the
// first request got (accepted, on the route's first provider), not the message's state now; the
// app's metadata counts as content and comes back with the message.
func TestIdempotentReplayIsTheFirstAnswer(t *testing.T) {
	p, snd := submitProxy(t)
	d := sms.Draft{App: "dev", To: "+6591234567", From: "PAYLINK88", Category: "transaction",
		Body: "Your transfer of 100 SGD was sent.", IdempotencyKey: "order-a1",
		Metadata: map[string]string{"order": "A1", "channel": "app"}}
	first, err := p.Submit(context.Background(), "dev", d)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		rec, err := p.Message(context.Background(), "dev", first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status == store.StatusSent {
			if rec.Metadata["order"] != "A1" || rec.Metadata["channel"] != "app" || len(rec.Metadata) != 2 {
				t.Errorf("metadata read back = %v, want the two entries sent", rec.Metadata)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s after 5s; want sent (provider saw %d sends)", rec.Status, snd.count(first.ID))
		}
	}
	again, err := p.Submit(context.Background(), "dev", d)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.ID != first.ID || again.Status != first.Status || again.Provider != first.Provider ||
		again.Segments != first.Segments || again.Encoding != first.Encoding {
		t.Errorf("replay = %+v, want the first answer %+v", again, first)
	}
	other := d
	other.Metadata = map[string]string{"order": "B2", "channel": "app"}
	if _, err := p.Submit(context.Background(), "dev", other); codeOf(err) != "idempotency_conflict" {
		t.Errorf("reused key with other metadata: %v; want idempotency_conflict", err)
	}
}

// TestRequestHashWithoutMetadataIsUnchanged pins the hash of a request without metadata: hashes
// stored before metadata counted must still match their retries.
func TestRequestHashWithoutMetadataIsUnchanged(t *testing.T) {
	d := sms.Draft{To: "+6591234567", From: "PAYLINK88", Category: "otp",
		Template: &sms.TemplateRef{ID: "otp_transaction", Locale: "en-SG", Params: map[string]string{"code": "739215"}}}
	if got, want := requestHash(d), "478fd3259f2e8dddaf83100294f48646"; got != want {
		t.Errorf("requestHash = %s, want %s", got, want)
	}
}

// TestLimitDenialNamesTheLimit: a denial's rule names the region limit, never a part of the
// device id or number the counter is kept for.
func TestLimitDenialNamesTheLimit(t *testing.T) {
	p, _ := submitProxy(t)
	var err error
	for i := range 4 {
		d := sms.Draft{App: "dev", To: fmt.Sprintf("+659123456%d", i), From: "PAYLINK88", Category: "otp", DeviceID: "cust-27940:x",
			Template: &sms.TemplateRef{ID: "otp_transaction", Locale: "en-SG", Params: map[string]string{"code": "739215"}}}
		if _, err = p.Submit(context.Background(), "dev", d); i < 3 && err != nil {
			t.Fatalf("OTP %d: %v", i, err)
		}
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != "otp_device_daily_limit" {
		t.Fatalf("fourth OTP to one device: %v; want otp_device_daily_limit", err)
	}
	if e.Rule != "limit otp_per_device" {
		t.Errorf("rule = %q, want %q", e.Rule, "limit otp_per_device")
	}
}

// TestRecordMasksTemplateParams: the message record keeps a template's parameters masked as the
// region says (dev: template.params.txn last4), whatever the body's own style.
func TestRecordMasksTemplateParams(t *testing.T) {
	p, _ := submitProxy(t)
	d := sms.Draft{App: "dev", To: "+6591234567", From: "PAYLINK88", Category: "transaction",
		Template: &sms.TemplateRef{ID: "transfer_completed", Locale: "en", Params: map[string]string{
			"amount": "100", "currency": "SGD", "recipient": "John Tan", "txn": "PL20241208009", "rate": "1.00"}}}
	acc, err := p.Submit(context.Background(), "dev", d)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := p.Message(context.Background(), "dev", acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rec.Body, "PL20241208009") || !strings.Contains(rec.Body, "Transaction ID: *********8009.") {
		t.Errorf("recorded body %q: want the transaction id masked to its last 4 characters", rec.Body)
	}
	if !strings.Contains(rec.Body, "Your transfer of 100 SGD") {
		t.Errorf("recorded body %q: parameters without a mask must stay", rec.Body)
	}
}

// TestOTPPerDeviceIsAWindow: dev's otp_per_device (3 per 24h) is a window cap, so a device gets at
// most 3 OTPs in any 24h. At one instant the 4th is denied; 9h later too, where a GCRA rate of 3 per
// 24h would have let one more through (it admits up to 5 in 24h); a day after the first three, one
// is admitted again. Each OTP goes to another number so that otp_per_number does not deny it.
func TestOTPPerDeviceIsAWindow(t *testing.T) {
	p, _ := submitProxy(t)
	start := time.Now()
	now := start
	p.now = func() time.Time { return now }
	n := 0
	submit := func() error {
		n++
		d := sms.Draft{App: "dev", To: fmt.Sprintf("+65912345%02d", n), From: "PAYLINK88", Category: "otp", DeviceID: "dev-window",
			Template: &sms.TemplateRef{ID: "otp_transaction", Locale: "en-SG", Params: map[string]string{"code": "739215"}}}
		_, err := p.Submit(context.Background(), "dev", d)
		return err
	}
	denied := func(err error) bool {
		var e *Error
		return errors.As(err, &e) && e.Code == "otp_device_daily_limit"
	}
	for i := range 3 {
		if err := submit(); err != nil {
			t.Fatalf("OTP %d: %v", i+1, err)
		}
	}
	if err := submit(); !denied(err) {
		t.Fatalf("4th OTP at the same instant: %v; want otp_device_daily_limit", err)
	}
	now = start.Add(9 * time.Hour)
	if err := submit(); !denied(err) {
		t.Fatalf("OTP 9h later, the 4th in 24h: %v; want otp_device_daily_limit (a window, not a GCRA rate)", err)
	}
	now = start.Add(24*time.Hour + time.Second)
	if err := submit(); err != nil {
		t.Fatalf("OTP a day after the first three: %v", err)
	}
}

// TestFooterThatOverflowsIsRefused: a body that fits in the most segments allowed, but not with the
// opt-out footer the destination requires, is refused with body_too_long rather than sent longer.
func TestFooterThatOverflowsIsRefused(t *testing.T) {
	p, _ := submitProxy(t)
	d := sms.Draft{App: "dev", To: "+14155550123", From: "+14155550100", Category: "transaction",
		Body: strings.Repeat("a", 153*sms.MaxSegments)}
	_, err := p.Submit(context.Background(), "dev", d)
	var e *Error
	if !errors.As(err, &e) || e.Code != sms.CodeBodyTooLong || e.Rule != "obligations" {
		t.Fatalf("ten full segments plus the US footer: %v; want body_too_long from the obligations", err)
	}
	d.Body = strings.Repeat("a", 153*sms.MaxSegments-40)
	if _, err := p.Submit(context.Background(), "dev", d); err != nil {
		t.Fatalf("a body with room for the footer: %v", err)
	}
}

// TestIdempotencyKeyIsCheckedFirst: Submit refuses a key longer than 128 characters before it locks
// or looks it up (whichever front the request came through), and counts characters, not bytes.
func TestIdempotencyKeyIsCheckedFirst(t *testing.T) {
	p, _ := submitProxy(t)
	d := sms.Draft{App: "dev", To: "+6591234567", From: "PAYLINK88", Category: "transaction", Body: "Transfer sent."}
	for _, tc := range []struct {
		name, key string
		ok        bool
	}{
		{"128 characters", strings.Repeat("k", sms.MaxIdempotencyKeyChars), true},
		{"128 two-byte characters", strings.Repeat("é", sms.MaxIdempotencyKeyChars), true},
		{"129 characters", strings.Repeat("k", sms.MaxIdempotencyKeyChars+1), false},
		{"255 characters", strings.Repeat("k", 255), false},
		{"a control character", "order\n42", false},
	} {
		d.IdempotencyKey = tc.key
		_, err := p.Submit(context.Background(), "dev", d)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		var se *sms.Error
		if !tc.ok && (!errors.As(err, &se) || se.Code != sms.CodeInvalidIdempotencyKey) {
			t.Errorf("%s: %v, want %s", tc.name, err, sms.CodeInvalidIdempotencyKey)
		}
	}
}
