package front

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/smsproxy/smsproxy/proxy/sms"
)

// serveLogged is serve with the front's log written to the returned buffer as JSON lines.
func serveLogged(t *testing.T, sub Submitter) (*http.Client, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	sum := sha256.Sum256([]byte(key))
	f := New(sub, Options{Apps: map[string]string{hex.EncodeToString(sum[:]): "payments"},
		Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = f.Serve(ln) }()
	t.Cleanup(func() { _ = f.Shutdown(context.Background()) })
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return ln.Dial()
	}}}, &buf
}

const okMessage = `{"to":"+6591234567","from":"PAYLINK88","body":"hi"}`

// TestMessageKeysAreExact checks that a body a gateway in front of the proxy could read one way
// (first key wins, case-sensitive names) is refused rather than read the other way.
func TestMessageKeysAreExact(t *testing.T) {
	many := func(last string) string {
		var b strings.Builder
		b.WriteString(`{"to":"+6591234567","body":"hi","metadata":{`)
		for i := range 40 {
			fmt.Fprintf(&b, `"k%d":"v",`, i)
		}
		b.WriteString(last + `}}`)
		return b.String()
	}
	cases := []struct {
		name, body string
		status     int
		msg        string
	}{
		{"case variant of to", `{"to":"+6591234567","body":"hi","To":"+60123456789"}`, 400, `Field names are case-sensitive: use "to".`},
		{"only a case variant", `{"TO":"+60123456789","body":"hi"}`, 400, `Field names are case-sensitive: use "to".`},
		{"upper case among all fields", `{"to":"+6591234567","body":"hi","device_id":"d","template":null,"metadata":{},"category":"otp","from":"A","BODY":"x"}`, 400, `Field names are case-sensitive: use "body".`},
		{"duplicate to", `{"to":"+6591234567","body":"hi","to":"+60123456789"}`, 400, `Field "to" is given more than once.`},
		{"duplicate by escape", `{"to":"+6591234567","body":"hi","\u0074o":"+60123456789"}`, 400, `Field "to" is given more than once.`},
		{"template field case", `{"to":"+6591234567","template":{"id":"otp","ID":"marketing"}}`, 400, `Field names are case-sensitive: use "template.id".`},
		{"template key case", `{"to":"+6591234567","Template":{"id":"otp"}}`, 400, `Field names are case-sensitive: use "template".`},
		{"template twice", `{"to":"+6591234567","template":{"id":"otp"},"template":{"id":"promo"}}`, 400, `Field "template" is given more than once.`},
		{"params duplicate", `{"to":"+6591234567","template":{"id":"otp","params":{"code":"1","code":"2"}}}`, 400, `A key of "template.params" is given more than once.`},
		{"metadata duplicate", `{"to":"+6591234567","body":"hi","metadata":{"order":"1","order":"2"}}`, 400, `A key of "metadata" is given more than once.`},
		{"metadata duplicate among many", many(`"k7":"again"`), 400, `A key of "metadata" is given more than once.`},
		{"unknown twice", `{"to":"+6591234567","colour":"red","colour":"blue"}`, 400, `Unknown field "colour".`},
		{"metadata keys are free-form", `{"to":"+6591234567","body":"hi","metadata":{"order":"1","Order":"2"}}`, 201, ""},
		{"many metadata keys", many(`"last":"v"`), 201, ""},
		{"same key in two objects", `{"to":"+6591234567","template":{"id":"otp","params":{"id":"x"}},"metadata":{"id":"y"}}`, 201, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProxy{acc: sms.Accepted{ID: "msg_1"}}
			c := serve(t, fp, true)
			r := call(t, c, "POST", "/v1/messages", "Bearer "+key, "application/json", tc.body)
			if r.status != tc.status || (tc.status == 400 && (r.body["code"] != "invalid_json" || r.body["message"] != tc.msg)) {
				t.Fatalf("got %d %v, want %d invalid_json %q", r.status, r.body, tc.status, tc.msg)
			}
			if tc.status == 400 && fp.got.To != "" {
				t.Errorf("refused body was submitted: %+v", fp.got)
			}
			if tc.status == 201 && tc.name == "metadata keys are free-form" && (fp.got.Metadata["order"] != "1" || fp.got.Metadata["Order"] != "2") {
				t.Errorf("metadata = %v", fp.got.Metadata)
			}
		})
	}
}

// TestDecodeStrictFoldsAsEncodingJSON checks the other request objects, and the non-ASCII runes
// encoding/json folds into ASCII names.
func TestDecodeStrictFoldsAsEncodingJSON(t *testing.T) {
	cases := []struct {
		name string
		v    any
		body string
		msg  string
	}{
		{"long s is s", &optOutRequest{}, `{"number":"+6591234567","ſcope":"all"}`, `Field names are case-sensitive: use "scope".`},
		{"opt-out twice", &optOutRequest{}, `{"number":"+6591234567","number":"+6598765432"}`, `Field "number" is given more than once.`},
		{"consent basis case", &consentRequest{}, `{"number":"+6591234567","category":"otp","Basis":"consent"}`, `Field names are case-sensitive: use "basis".`},
		{"erasure number twice", &erasureRequest{}, `{"number":"+6591234567","requested_by":"x","number":"+6598765432"}`, `Field "number" is given more than once.`},
		{"kelvin sign is k", &struct {
			Kind string `json:"kind"`
		}{}, `{"kind":"a","` + "\u212a" + `ind":"b"}`, `Field names are case-sensitive: use "kind".`},
		{"dotless i is not i", &erasureRequest{}, `{"number":"+6591234567","requested_by":"x","requested_bı":"y"}`, "The body has a field that is not part of the message object."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeStrict([]byte(tc.body), tc.v)
			if err == nil {
				t.Fatalf("accepted; decoded %+v", tc.v)
			}
			if got := jsonProblem(err); got != tc.msg {
				t.Errorf("message %q, want %q", got, tc.msg)
			}
		})
	}
}

func TestOptOutAndImportKeysAreExact(t *testing.T) {
	c, sp := serveStore(t)
	r := call(t, c, "POST", "/v1/opt-outs", auth, "application/json", `{"number":"+6591234567","ſcope":"all"}`)
	if r.status != 400 || r.body["code"] != "invalid_json" {
		t.Fatalf("opt-out with a folded scope: %d %v", r.status, r.body)
	}
	if f, _ := sp.st.RecipientFacts(context.Background(), "+6591234567"); f.OptedOut("shop") {
		t.Fatalf("an opt-out for all apps was recorded")
	}
	body := `{"number":"+6591234567","number":"+6598765432"}` + "\n" + `{"number":"+6591234568"}}` + "\n" + `{"number":"+6591234569"}` + "\n"
	r = call(t, c, "POST", "/v1/opt-outs/import", auth, "application/x-ndjson", body)
	rej, _ := r.body["rejected"].([]any)
	if r.status != 200 || r.body["imported"] != float64(1) || len(rej) != 2 {
		t.Fatalf("import: %d %v, want lines 1 and 2 rejected", r.status, r.body)
	}
	r = call(t, c, "POST", "/v1/consents", auth, "application/jsonp", `{"number":"+6591234567","category":"otp","basis":"consent"}`)
	if r.status != 415 || r.body["code"] != "unsupported_media_type" {
		t.Fatalf("consent as application/jsonp: %d %v", r.status, r.body)
	}
}

func TestTrailingDataIsRefused(t *testing.T) {
	cases := []struct {
		tail   string
		status int
	}{
		{"}", 400}, {"]", 400}, {"}]]", 400}, {" {}", 400}, {"x", 400}, {`"s"`, 400}, {"1", 400}, {"\n", 201}, {" \t\r\n ", 201},
	}
	for _, tc := range cases {
		fp := &fakeProxy{acc: sms.Accepted{ID: "msg_1"}}
		c := serve(t, fp, true)
		r := call(t, c, "POST", "/v1/messages", "Bearer "+key, "application/json", okMessage+tc.tail)
		if r.status != tc.status || (tc.status == 400 && r.body["code"] != "invalid_json") {
			t.Errorf("tail %q: %d %v, want %d", tc.tail, r.status, r.body, tc.status)
		}
	}
}

func TestTypeErrorsNameTheFieldNotTheGoType(t *testing.T) {
	cases := []struct{ body, msg string }{
		{`[]`, "The body must be a JSON object."},
		{`"+6591234567"`, "The body must be a JSON object."},
		{`7`, "The body must be a JSON object."},
		{`{"to":6591234567}`, `Field "to" must be a string.`},
		{`{"to":"+6591234567","template":[]}`, `Field "template" must be an object.`},
		{`{"to":"+6591234567","template":{"id":"otp","params":[]}}`, `Field "template.params" must be an object.`},
		{`{"to":"+6591234567","template":{"id":"otp","params":{"code":739215}}}`, `Each value of field "template.params" must be a string.`},
		{`{"to":"+6591234567","metadata":{"order":7}}`, `Each value of field "metadata" must be a string.`},
		{`{"to":"+6591234567","body":true}`, `Field "body" must be a string.`},
	}
	c := serve(t, &fakeProxy{}, true)
	for _, tc := range cases {
		r := call(t, c, "POST", "/v1/messages", "Bearer "+key, "application/json", tc.body)
		msg, _ := r.body["message"].(string)
		if r.status != 400 || r.body["code"] != "invalid_json" || msg != tc.msg {
			t.Errorf("%s: %d %v, want 400 %q", tc.body, r.status, r.body, tc.msg)
		}
		for _, leak := range []string{"front.", "messageRequest", "sms.", "map[", "6591234567", "739215"} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s: message %q holds %q", tc.body, msg, leak)
			}
		}
	}
}

func TestContentTypeIsExact(t *testing.T) {
	cases := []struct {
		ctype  string
		status int
	}{
		{"application/json", 201},
		{"application/json; charset=utf-8", 201},
		{"application/json;charset=UTF-8", 201},
		{`application/json; charset="utf-8"`, 201},
		{"Application/JSON", 201},
		{"application/json; version=1", 201},
		{"application/jsonp", 415},
		{"application/json-patch+json", 415},
		{"application/jsonx; charset=utf-8", 415},
		{"application/json; charset=iso-8859-1", 415},
		{"application/json; charset=utf-16", 415},
		{"application/json;;", 415},
		{"text/json", 415},
		{"", 415},
	}
	c := serve(t, &fakeProxy{acc: sms.Accepted{ID: "msg_1"}}, true)
	for _, tc := range cases {
		r := call(t, c, "POST", "/v1/messages", "Bearer "+key, tc.ctype, okMessage)
		if r.status != tc.status || (tc.status == 415 && r.body["code"] != "unsupported_media_type") {
			t.Errorf("Content-Type %q: %d %v, want %d", tc.ctype, r.status, r.body, tc.status)
		}
	}
}

func TestUnavailableIsLoggedAndSaysRetryAfter(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		code  string
		retry string
	}{
		{"store down", fmt.Errorf("submit: %w", &classErr{class: "unavailable", code: "store_unavailable"}), "store_unavailable", "1"},
		{"store down, later", &classErr{class: "unavailable", code: "store_unavailable", retry: 5 * time.Second}, "store_unavailable", "5"},
		{"timeout", fmt.Errorf("submit: %w", context.DeadlineExceeded), "timeout", "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, logs := serveLogged(t, &fakeProxy{err: tc.err})
			r := call(t, c, "POST", "/v1/messages", "Bearer "+key, "application/json", okMessage)
			if r.status != 503 || r.body["code"] != tc.code || r.header.Get("Retry-After") != tc.retry {
				t.Fatalf("got %d %v Retry-After %q, want 503 %s %s", r.status, r.body, r.header.Get("Retry-After"), tc.code, tc.retry)
			}
			var rec map[string]any
			if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
				t.Fatalf("want one log line, got %q", logs.String())
			}
			if rec["level"] != "ERROR" || rec["code"] != tc.code || rec["err"] != tc.err.Error() {
				t.Errorf("log line %v, want level ERROR code %s err %q", rec, tc.code, tc.err.Error())
			}
			if strings.Contains(logs.String(), "6591234567") || strings.Contains(logs.String(), `"hi"`) {
				t.Errorf("log holds request content: %s", logs.String())
			}
		})
	}

	// A refusal is the app's problem, not the proxy's: not logged, and no Retry-After.
	c, logs := serveLogged(t, &fakeProxy{err: &classErr{class: "refused", code: "country_not_served"}})
	if r := call(t, c, "POST", "/v1/messages", "Bearer "+key, "application/json", okMessage); r.status != 422 || r.header.Get("Retry-After") != "" || logs.Len() != 0 {
		t.Errorf("refusal: %d Retry-After %q log %q", r.status, r.header.Get("Retry-After"), logs.String())
	}
	c = serve(t, &fakeProxy{}, false)
	if r := call(t, c, "GET", "/readyz", "", "", ""); r.status != 503 || r.header.Get("Retry-After") != "1" {
		t.Errorf("readyz: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
}

func BenchmarkDecodeStrict(b *testing.B) {
	body := []byte(`{"to":"+6591234567","from":"PAYLINK88","category":"otp","template":{"id":"otp","locale":"en","params":{"code":"1234"}},"device_id":"d1","metadata":{"order":"7"}}`)
	b.ReportAllocs()
	for b.Loop() {
		var req messageRequest
		if err := decodeStrict(body, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeStrictReadsKeysAsDecoded covers keys that are easy to read wrong: text that looks like
// keys inside values, escapes, invalid UTF-8, many keys, nesting and embedded structs.
func TestDecodeStrictReadsKeysAsDecoded(t *testing.T) {
	type base struct {
		Kind string `json:"kind"`
	}
	type embedding struct {
		base
		Name string `json:"name"`
	}
	params := func(n int, extra string) string {
		var b strings.Builder
		b.WriteString(`{"to":"+6591234567","template":{"id":"otp","params":{`)
		for i := range n {
			fmt.Fprintf(&b, `"k%d":"v",`, i)
		}
		b.WriteString(`"last":"v"}},"metadata":{"k0":"v","k1":"v"` + extra + `}}`)
		return b.String()
	}
	cases := []struct {
		name string
		v    any
		body string
		msg  string // "" when the body is accepted
	}{
		{"keys inside a value", &messageRequest{}, `{"to":"+6591234567","body":"{\"to\":1,\"To\":2,\"to\":3} [\"to\"]"}`, ""},
		{"escaped quote in a key", &messageRequest{}, `{"to":"+6591234567","metadata":{"a\"b":"1","a\u0022b":"2"}}`, `A key of "metadata" is given more than once.`},
		{"backslashes differ", &messageRequest{}, `{"to":"+6591234567","metadata":{"a\\":"1","a\\\\":"2"}}`, ""},
		{"invalid UTF-8 in keys is refused", &messageRequest{}, "{\"to\":\"+6591234567\",\"metadata\":{\"a\xff\":\"1\",\"a\xfe\":\"2\"}}", "The body is not valid UTF-8 (at byte 34)."},
		{"invalid UTF-8 in a value is refused", &messageRequest{}, "{\"to\":\"+6591234567\",\"body\":\"a\xe2\x82\"}", "The body is not valid UTF-8 (at byte 29)."},
		{"lone surrogate is refused", &messageRequest{}, `{"to":"+6591234567","body":"\ud800"}`, "The body is not valid JSON (at byte 28)."},
		{"surrogate pair is the rune", &messageRequest{}, `{"to":"+6591234567","metadata":{"\ud83d\ude00":"1","😀":"2"}}`, `A key of "metadata" is given more than once.`},
		{"escaped case variant", &messageRequest{}, `{"to":"+6591234567","\u0054o":"+60123456789"}`, `Field names are case-sensitive: use "to".`},
		{"many params then metadata", &messageRequest{}, params(40, ""), ""},
		{"many params then a metadata duplicate", &messageRequest{}, params(40, `,"k1":"w"`), `A key of "metadata" is given more than once.`},
		{"deep nesting", &messageRequest{}, `{"to":"+6591234567","metadata":{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`, `Each value of field "metadata" must be a string.`},
		{"nesting past the decoder's limit", &messageRequest{}, `{"to":"+6591234567","metadata":{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`, "The body is not valid JSON (at byte 10034)."},
		{"embedded field case", &embedding{}, `{"name":"n","kind":"a","KIND":"b"}`, `Field names are case-sensitive: use "kind".`},
		{"embedded field twice", &embedding{}, `{"kind":"a","name":"n","kind":"b"}`, `Field "kind" is given more than once.`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeStrict([]byte(tc.body), tc.v)
			switch {
			case tc.msg == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.msg != "" && err == nil:
				t.Fatalf("accepted; decoded %+v", tc.v)
			case tc.msg != "" && jsonProblem(err) != tc.msg:
				t.Errorf("message %q, want %q", jsonProblem(err), tc.msg)
			}
		})
	}
}

// lockedBuffer is a log sink the server and the test may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestUnreadableRequestsLeaveNothingInTheLog sends requests the HTTP server cannot parse, carrying
// a body with a code, a phone number and an API key: the server's own error log must hold none of it.
func TestUnreadableRequestsLeaveNothingInTheLog(t *testing.T) {
	var logs lockedBuffer
	f := New(&fakeProxy{}, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = f.Serve(ln) }()
	t.Cleanup(func() { _ = f.Shutdown(context.Background()) })
	body := `{"from":"PAYLINK88","to":"+6591234567","body":"Jane Tan, your code is 771234"}`
	for _, raw := range []string{
		"POST /v1/messages HTTP/1.1\r\nHost: p\r\nContent-Length: 78\r\nContent-Length: 78\r\n\r\n" + body,
		"GET / HTTP/1.1\r\nHost: p\r\nX-Api-Key smsproxy-dev-key\r\n\r\n",
		"GARBAGE6591230104 line without spaces\r\n\r\n",
	} {
		conn, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.ReadAll(conn)
		_ = conn.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for strings.Count(logs.String(), "\n") < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := logs.String()
	if got == "" {
		t.Fatal("the server logged none of the unreadable requests")
	}
	for _, secret := range []string{"771234", "Jane Tan", "6591234567", "smsproxy-dev-key", "6591230104"} {
		if strings.Contains(got, secret) {
			t.Errorf("the log holds %q:\n%s", secret, got)
		}
	}
}
