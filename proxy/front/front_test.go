package front

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/smsproxy/smsproxy/proxy/sms"
)

// fakeProxy answers Submit and Message from fields, and remembers what it was given.
type fakeProxy struct {
	got    sms.Draft
	app    string
	err    error
	acc    sms.Accepted
	record sms.Record
}

func (f *fakeProxy) Submit(_ context.Context, app string, d sms.Draft) (sms.Accepted, error) {
	f.app, f.got = app, d
	return f.acc, f.err
}

func (f *fakeProxy) Message(_ context.Context, app, id string) (sms.Record, error) {
	f.app = app
	if f.err != nil {
		return sms.Record{}, f.err
	}
	r := f.record
	r.ID = id
	return r, nil
}

// classErr is an error as the proxy makes them.
type classErr struct {
	class, code, rule string
	retry             time.Duration
}

func (e *classErr) Error() string             { return e.code + ": sentence" }
func (e *classErr) ErrorClass() string        { return e.class }
func (e *classErr) ErrorCode() string         { return e.code }
func (e *classErr) ErrorMessage() string      { return "A sentence." }
func (e *classErr) ErrorRule() string         { return e.rule }
func (e *classErr) RetryAfter() time.Duration { return e.retry }

const key = "test-key-0123456789"

func serve(t *testing.T, sub Submitter, ready bool) *http.Client {
	t.Helper()
	sum := sha256.Sum256([]byte(key))
	f := New(sub, Options{Apps: map[string]string{hex.EncodeToString(sum[:]): "payments"}, Ready: func() bool { return ready }})
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = f.Serve(ln) }()
	t.Cleanup(func() { _ = f.Shutdown(context.Background()) })
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return ln.Dial()
	}}}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, c *http.Client, method, path, auth, ctype, body string, hdr ...string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, "http://proxy"+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return reply{resp.StatusCode, resp.Header, m}
}

func TestPostMessage(t *testing.T) {
	fp := &fakeProxy{acc: sms.Accepted{ID: "msg_1", Status: "accepted", Encoding: sms.EncodingGSM7, Segments: 1, Provider: "simulator", Country: "SG"}}
	c := serve(t, fp, true)
	body := `{"to":"+6591234567","from":"PAYLINK88","category":"otp","template":{"id":"otp","locale":"en","params":{"code":"1234"}},"device_id":"d1","metadata":{"order":"7"}}`
	r := call(t, c, "POST", "/v1/messages", "Bearer "+key, "application/json; charset=utf-8", body, "Idempotency-Key", "k-1")
	if r.status != 201 {
		t.Fatalf("status %d %v", r.status, r.body)
	}
	want := map[string]any{"id": "msg_1", "status": "accepted", "encoding": "GSM-7", "segments": float64(1), "provider": "simulator", "country": "SG"}
	for k, v := range want {
		if r.body[k] != v {
			t.Errorf("%s = %v, want %v", k, r.body[k], v)
		}
	}
	d := fp.got
	if fp.app != "payments" || d.App != "payments" || d.To != "+6591234567" || d.From != "PAYLINK88" || d.Category != "otp" ||
		d.Template == nil || d.Template.Params["code"] != "1234" || d.DeviceID != "d1" || d.Metadata["order"] != "7" || d.IdempotencyKey != "k-1" {
		t.Errorf("draft = %+v", d)
	}

	fp.acc.Duplicate = true
	r = call(t, c, "POST", "/v1/messages", "Bearer "+key, "application/json", body)
	if r.status != 201 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %v", r.status, r.header)
	}
}

func TestPostMessageErrors(t *testing.T) {
	cases := []struct {
		name, auth, ctype, body string
		err                     error
		status                  int
		code                    string
	}{
		{"no key", "", "application/json", `{}`, nil, 401, "unauthorized"},
		{"wrong key", "Bearer nope", "application/json", `{}`, nil, 401, "unauthorized"},
		{"form body", "Bearer " + key, "application/x-www-form-urlencoded", `to=1`, nil, 415, "unsupported_media_type"},
		{"not JSON", "Bearer " + key, "application/json", `{"to":`, nil, 400, "invalid_json"},
		{"empty", "Bearer " + key, "application/json", ``, nil, 400, "invalid_json"},
		{"unknown field", "Bearer " + key, "application/json", `{"to":"+1","colour":"red"}`, nil, 400, "invalid_json"},
		{"wrong type", "Bearer " + key, "application/json", `{"to":65}`, nil, 400, "invalid_json"},
		{"two objects", "Bearer " + key, "application/json", `{} {}`, nil, 400, "invalid_json"},
		{"validation", "Bearer " + key, "application/json", `{}`, &sms.Error{Code: "invalid_phone", Field: "to", Message: "bad"}, 400, "invalid_phone"},
		{"policy", "Bearer " + key, "application/json", `{}`, &classErr{class: "refused", code: "country_not_served", rule: "smsproxy.destination"}, 422, "country_not_served"},
		{"limit", "Bearer " + key, "application/json", `{}`, &classErr{class: "limited", code: "otp_resend_too_soon", retry: 1500 * time.Millisecond}, 429, "otp_resend_too_soon"},
		{"conflict", "Bearer " + key, "application/json", `{}`, &classErr{class: "conflict", code: "idempotency_conflict"}, 409, "idempotency_conflict"},
		{"store down", "Bearer " + key, "application/json", `{}`, &classErr{class: "unavailable", code: "store_unavailable"}, 503, "store_unavailable"},
		{"timeout", "Bearer " + key, "application/json", `{}`, context.DeadlineExceeded, 503, "timeout"},
		{"unexpected", "Bearer " + key, "application/json", `{}`, errors.New("boom +6591234567"), 500, "internal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, &fakeProxy{err: tc.err}, true)
			r := call(t, c, "POST", "/v1/messages", tc.auth, tc.ctype, tc.body)
			if r.status != tc.status || r.body["code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if msg, _ := r.body["message"].(string); msg == "" || strings.Contains(msg, "6591234567") {
				t.Errorf("message %q is empty or leaks input", msg)
			}
			if tc.code == "country_not_served" && r.body["rule"] != "smsproxy.destination" {
				t.Errorf("rule = %v", r.body["rule"])
			}
			if tc.code == "otp_resend_too_soon" && r.header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After = %q, want 2 (rounded up)", r.header.Get("Retry-After"))
			}
		})
	}
}

func TestGetMessageAndProbes(t *testing.T) {
	fp := &fakeProxy{record: sms.Record{Status: "delivered", To: "+65******67"}}
	c := serve(t, fp, false)
	r := call(t, c, "GET", "/v1/messages/msg_9", "Bearer "+key, "", "")
	if r.status != 200 || r.body["id"] != "msg_9" || r.body["status"] != "delivered" || fp.app != "payments" {
		t.Errorf("GET: %d %v app=%s", r.status, r.body, fp.app)
	}
	if r := call(t, c, "GET", "/v1/messages/msg_9", "", "", ""); r.status != 401 {
		t.Errorf("GET without key: %d", r.status)
	}
	fp.err = &classErr{class: "not_found", code: "message_not_found"}
	if r := call(t, c, "GET", "/v1/messages/msg_x", "Bearer "+key, "", ""); r.status != 404 || r.body["code"] != "message_not_found" {
		t.Errorf("missing: %d %v", r.status, r.body)
	}
	if r := call(t, c, "DELETE", "/v1/messages/msg_9", "Bearer "+key, "", ""); r.status != 405 || r.header.Get("Allow") != "GET" {
		t.Errorf("DELETE: %d %v", r.status, r.header)
	}
	if r := call(t, c, "GET", "/v1/messages", "Bearer "+key, "", ""); r.status != 405 || r.header.Get("Allow") != "POST" {
		t.Errorf("GET list: %d", r.status)
	}
	if r := call(t, c, "GET", "/v2/anything", "", "", ""); r.status != 404 || r.body["code"] != "not_found" {
		t.Errorf("unknown path: %d %v", r.status, r.body)
	}
	if r := call(t, c, "GET", "/healthz", "", "", ""); r.status != 200 {
		t.Errorf("healthz: %d", r.status)
	}
	if r := call(t, c, "GET", "/readyz", "", "", ""); r.status != 503 || r.body["code"] != "not_ready" {
		t.Errorf("readyz while not ready: %d %v", r.status, r.body)
	}
}

func TestUnknownFieldNamesAreNotEchoedUnlessSafe(t *testing.T) {
	c := serve(t, &fakeProxy{}, true)
	r := call(t, c, "POST", "/v1/messages", "Bearer "+key, "application/json", `{"colour":"red"}`)
	if r.status != 400 || r.body["message"] != `Unknown field "colour".` {
		t.Errorf("plain name: %d %v", r.status, r.body)
	}
	r = call(t, c, "POST", "/v1/messages", "Bearer "+key, "application/json", `{"+6591234567":"x","739215":"y"}`)
	if msg, _ := r.body["message"].(string); r.status != 400 || strings.Contains(msg, "6591234567") || strings.Contains(msg, "739215") {
		t.Errorf("a number as a field name is echoed: %d %v", r.status, r.body)
	}
}
