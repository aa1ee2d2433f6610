package front

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/smsproxy/smsproxy/proxy/store"
)

// eraserProxy is a Submitter with the Eraser ability; "payments" is its admin app.
type eraserProxy struct {
	fakeProxy
	calls []erasureCall
	err   error
}

type erasureCall struct{ app, number, by string }

func (p *eraserProxy) Admin(app string) bool { return app == "payments" }

func (p *eraserProxy) EraseSubject(_ context.Context, app, number, by string) (store.EraseResult, error) {
	p.calls = append(p.calls, erasureCall{app, number, by})
	if p.err != nil {
		return store.EraseResult{}, p.err
	}
	return store.EraseResult{Seq: 42, Existed: true}, nil
}

// serveEraser serves sub with two apps: "payments" (key) and "shop" (otherKey).
func serveEraser(t *testing.T, sub Submitter) *http.Client {
	t.Helper()
	apps := map[string]string{}
	for k, app := range map[string]string{key: "payments", otherKey: "shop"} {
		sum := sha256.Sum256([]byte(k))
		apps[hex.EncodeToString(sum[:])] = app
	}
	f := New(sub, Options{Apps: apps})
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = f.Serve(ln) }()
	t.Cleanup(func() { _ = f.Shutdown(context.Background()) })
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return ln.Dial()
	}}}
}

func TestErasureEndpoint(t *testing.T) {
	const number = "+6591234567"
	shop := "Bearer " + otherKey
	cases := []struct {
		name, method, path, auth, ctype, body string
		err                                   error
		status                                int
		code                                  string
		called                                bool
	}{
		{"admin erases", "POST", "/v1/erasures", auth, "application/json", `{"number":"` + number + `","requested_by":"dpo@example.com"}`, nil, 202, "", true},
		{"trailing slash", "POST", "/v1/erasures/", auth, "application/json", `{"number":"` + number + `","requested_by":"dpo@example.com"}`, nil, 202, "", true},
		{"other app is forbidden", "POST", "/v1/erasures", shop, "application/json", `{"number":"` + number + `","requested_by":"dpo@example.com"}`, nil, 403, CodeAdminRequired, false},
		{"no key", "POST", "/v1/erasures", "", "application/json", `{"number":"` + number + `","requested_by":"x"}`, nil, 401, "unauthorized", false},
		{"GET not allowed", "GET", "/v1/erasures", auth, "", "", nil, 405, "method_not_allowed", false},
		{"unknown path", "POST", "/v1/erasures/x", auth, "application/json", `{}`, nil, 404, "not_found", false},
		{"missing requested_by", "POST", "/v1/erasures", auth, "application/json", `{"number":"` + number + `"}`, nil, 400, CodeInvalidRequestedBy, false},
		{"control character in requested_by", "POST", "/v1/erasures", auth, "application/json", `{"number":"` + number + `","requested_by":"a\u0007b"}`, nil, 400, CodeInvalidRequestedBy, false},
		{"long requested_by", "POST", "/v1/erasures", auth, "application/json", `{"number":"` + number + `","requested_by":"` + strings.Repeat("a", 129) + `"}`, nil, 400, CodeInvalidRequestedBy, false},
		{"unknown field", "POST", "/v1/erasures", auth, "application/json", `{"number":"` + number + `","requested_by":"x","why":"y"}`, nil, 400, "invalid_json", false},
		{"not json", "POST", "/v1/erasures", auth, "text/plain", `number`, nil, 415, "unsupported_media_type", false},
		{"bad number from the proxy", "POST", "/v1/erasures", auth, "application/json", `{"number":"12","requested_by":"dpo"}`, &classErr{class: "invalid", code: "invalid_phone"}, 400, "invalid_phone", true},
		{"proxy refuses a non-admin", "POST", "/v1/erasures", auth, "application/json", `{"number":"` + number + `","requested_by":"dpo"}`, &classErr{class: "forbidden", code: "admin_required"}, 403, "admin_required", true},
		{"store unavailable", "POST", "/v1/erasures", auth, "application/json", `{"number":"` + number + `","requested_by":"dpo"}`, &classErr{class: "unavailable", code: "store_unavailable"}, 503, "store_unavailable", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := &eraserProxy{err: c.err}
			cl := serveEraser(t, sub)
			r := call(t, cl, c.method, c.path, c.auth, c.ctype, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %v", r.status, c.status, r.body)
			}
			if c.code != "" && r.body["code"] != c.code {
				t.Fatalf("code %v, want %s", r.body["code"], c.code)
			}
			if called := len(sub.calls) > 0; called != c.called {
				t.Fatalf("EraseSubject called = %v, want %v", called, c.called)
			}
			for k, v := range r.body {
				if s, ok := v.(string); ok && strings.Contains(s, "91234567") {
					t.Fatalf("the answer repeats the number in %s: %q", k, s)
				}
			}
			if c.status == 202 {
				if r.body["seq"] != float64(42) || r.body["existed"] != true {
					t.Fatalf("body %v, want seq 42 existed true", r.body)
				}
				if got := sub.calls[0]; got != (erasureCall{"payments", number, "dpo@example.com"}) {
					t.Fatalf("call %+v", got)
				}
			}
		})
	}
}

func TestErasureWithoutEraserIsNotFound(t *testing.T) {
	cl := serve(t, &fakeProxy{}, true)
	r := call(t, cl, "POST", "/v1/erasures", auth, "application/json", `{"number":"+6591234567","requested_by":"dpo"}`)
	if r.status != 404 || r.body["code"] != "not_found" {
		t.Fatalf("%d %v", r.status, r.body)
	}
}
