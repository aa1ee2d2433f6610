package front

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// storeProxy is a Submitter with the Recipients ability, backed by a real SQLite store.
type storeProxy struct {
	fakeProxy
	st *store.SQLite
}

func mapErr(err error, notFound string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &classErr{class: "not_found", code: notFound}
	}
	return err
}

func (p *storeProxy) AddOptOut(ctx context.Context, o store.OptOut) (bool, error) {
	return p.st.AddOptOut(ctx, o)
}
func (p *storeProxy) ImportOptOuts(ctx context.Context, rows []store.OptOut) (store.ImportResult, error) {
	return p.st.ImportOptOuts(ctx, rows)
}
func (p *storeProxy) RemoveOptOut(ctx context.Context, app, number string) (int, error) {
	n, err := p.st.RemoveOptOut(ctx, app, number, time.Time{})
	return n, mapErr(err, "opt_out_not_found")
}
func (p *storeProxy) ListOptOuts(ctx context.Context, app string, after int64, limit int) ([]store.OptOut, error) {
	return p.st.ListOptOuts(ctx, app, after, limit)
}
func (p *storeProxy) RecordConsent(ctx context.Context, c store.Consent) (store.Consent, error) {
	return p.st.RecordConsent(ctx, c)
}
func (p *storeProxy) WithdrawConsent(ctx context.Context, app, number, category string) (int, error) {
	n, err := p.st.WithdrawConsent(ctx, app, number, category, time.Time{})
	return n, mapErr(err, "consent_not_found")
}
func (p *storeProxy) Consents(ctx context.Context, app, number string) ([]store.Consent, error) {
	return p.st.Consents(ctx, app, number)
}

const otherKey = "other-key-0123456789"

// serveStore serves a front backed by a fresh store, with two apps: "payments" (key) and "shop" (otherKey).
func serveStore(t *testing.T) (*http.Client, *storeProxy) {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	sp := &storeProxy{st: st}
	apps := map[string]string{}
	for k, app := range map[string]string{key: "payments", otherKey: "shop"} {
		sum := sha256.Sum256([]byte(k))
		apps[hex.EncodeToString(sum[:])] = app
	}
	f := New(sp, Options{Apps: apps})
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = f.Serve(ln) }()
	t.Cleanup(func() { _ = f.Shutdown(context.Background()) })
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return ln.Dial()
	}}}, sp
}

const auth = "Bearer " + key

// rawPost sends only the header of a POST declaring a body of n bytes and returns the answer.
func rawPost(t *testing.T, c *http.Client, path, auth string, n int) (int, string) {
	t.Helper()
	conn, err := c.Transport.(*http.Transport).DialContext(context.Background(), "tcp", "proxy")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: proxy\r\nAuthorization: %s\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n\r\n", path, auth, n)
	if n < maxImportBody {
		_, _ = conn.Write([]byte("number\n" + strings.Repeat(" ", n-len("number\n"))))
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOptOutsAPI(t *testing.T) {
	c, sp := serveStore(t)
	steps := []struct {
		name, method, path, auth, ctype, body string
		status                                int
		code                                  string
	}{
		{"add", "POST", "/v1/opt-outs", auth, "application/json", `{"number":"+65 9123 4567"}`, 201, ""},
		{"add all apps", "POST", "/v1/opt-outs", auth, "application/json", `{"number":"+6598765432","scope":"all","source":"provider-migration"}`, 201, ""},
		{"shop adds its own", "POST", "/v1/opt-outs", "Bearer " + otherKey, "application/json", `{"number":"+6591234567"}`, 201, ""},
		{"no key", "POST", "/v1/opt-outs", "", "application/json", `{"number":"+6591234567"}`, 401, "unauthorized"},
		{"bad number", "POST", "/v1/opt-outs", auth, "application/json", `{"number":"91234567"}`, 400, "invalid_phone"},
		{"no number", "POST", "/v1/opt-outs", auth, "application/json", `{}`, 400, "missing_number"},
		{"bad scope", "POST", "/v1/opt-outs", auth, "application/json", `{"number":"+6591234567","scope":"everyone"}`, 400, "invalid_scope"},
		{"bad source", "POST", "/v1/opt-outs", auth, "application/json", `{"number":"+6591234567","source":"rumour"}`, 400, "invalid_source"},
		{"unknown field", "POST", "/v1/opt-outs", auth, "application/json", `{"number":"+6591234567","why":"x"}`, 400, "invalid_json"},
		{"not json", "POST", "/v1/opt-outs", auth, "text/plain", `+6591234567`, 415, "unsupported_media_type"},
		{"bad limit", "GET", "/v1/opt-outs?limit=5000", auth, "", "", 400, "invalid_limit"},
		{"bad cursor", "GET", "/v1/opt-outs?after=x", auth, "", "", 400, "invalid_cursor"},
		{"put", "PUT", "/v1/opt-outs", auth, "", "", 405, "method_not_allowed"},
		{"delete bad number", "DELETE", "/v1/opt-outs/abc", auth, "", "", 400, "invalid_phone"},
	}
	for _, s := range steps {
		r := call(t, c, s.method, s.path, s.auth, s.ctype, s.body)
		if r.status != s.status || (s.code != "" && r.body["code"] != s.code) {
			t.Errorf("%s: %d %v, want %d %s", s.name, r.status, r.body, s.status, s.code)
		}
	}
	dup := call(t, c, "POST", "/v1/opt-outs", auth, "application/json", `{"number":"+6591234567"}`)
	if dup.status != 201 || dup.body["duplicate"] != true || dup.body["number"] != "+6591234567" || dup.body["scope"] != "app" || dup.body["created_at"] != nil {
		t.Errorf("repeated add: %d %v", dup.status, dup.body)
	}

	// Listing pages through the app's own opt-outs, numbers masked: the store keeps only their
	// lookup hash and masked form.
	first := call(t, c, "GET", "/v1/opt-outs?limit=1", auth, "", "")
	list, _ := first.body["opt_outs"].([]any)
	if first.status != 200 || len(list) != 1 || list[0].(map[string]any)["number"] != sms.MaskPhone("+6591234567") || first.body["next"] == "" {
		t.Fatalf("first page: %d %v", first.status, first.body)
	}
	second := call(t, c, "GET", "/v1/opt-outs?limit=1&after="+first.body["next"].(string), auth, "", "")
	list, _ = second.body["opt_outs"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["scope"] != "all" || list[0].(map[string]any)["source"] != "provider-migration" {
		t.Fatalf("second page: %v", second.body)
	}
	shop := call(t, c, "GET", "/v1/opt-outs", "Bearer "+otherKey, "", "")
	if list, _ := shop.body["opt_outs"].([]any); len(list) != 1 || shop.body["next"] != "" {
		t.Fatalf("shop sees %v, want only its own opt-out", shop.body)
	}

	// Removal; the number may be URL-encoded.
	if r := call(t, c, "DELETE", "/v1/opt-outs/%2B6591234567", auth, "", ""); r.status != 204 {
		t.Fatalf("DELETE: %d %v", r.status, r.body)
	}
	if r := call(t, c, "DELETE", "/v1/opt-outs/+6591234567", auth, "", ""); r.status != 404 || r.body["code"] != "opt_out_not_found" {
		t.Fatalf("second DELETE: %d %v", r.status, r.body)
	}
	f, _ := sp.st.RecipientFacts(context.Background(), "+6591234567")
	if f.OptedOut("payments") || !f.OptedOut("shop") {
		t.Fatalf("after payments removed its opt-out: %+v", f)
	}
}

func TestOptOutImportCSV(t *testing.T) {
	c, sp := serveStore(t)
	var b strings.Builder
	b.WriteString("number,scope,source\n")
	wantRejected := map[int]string{}
	line := 1
	for i := range 10_000 {
		line++
		switch {
		case i == 17:
			b.WriteString("+65123,app,\n")
			wantRejected[line] = "invalid_phone"
		case i == 4242:
			b.WriteString("+6591234567,galaxy,\n")
			wantRejected[line] = "invalid_scope"
		case i == 5000:
			b.WriteString("+6591234567,a\"pp\n") // a bare quote
			wantRejected[line] = "invalid_csv"
		case i == 9999:
			b.WriteString(",app,import\n")
			wantRejected[line] = "missing_number"
		case i%2 == 0:
			fmt.Fprintf(&b, "+659%07d\n", i)
		default:
			fmt.Fprintf(&b, "+659%07d,all,provider-migration\n", i)
		}
	}
	body := b.String()
	r := call(t, c, "POST", "/v1/opt-outs/import", auth, "text/csv; charset=utf-8", body)
	if r.status != 200 {
		t.Fatalf("import: %d %v", r.status, r.body)
	}
	rejected, _ := r.body["rejected"].([]any)
	got := map[int]string{}
	for _, x := range rejected {
		m := x.(map[string]any)
		got[int(m["line"].(float64))] = m["code"].(string)
	}
	if fmt.Sprint(got) != fmt.Sprint(wantRejected) {
		t.Fatalf("rejected = %v, want %v", got, wantRejected)
	}
	imported := int(r.body["imported"].(float64))
	if imported != 10_000-len(wantRejected) || r.body["duplicates"] != float64(0) {
		t.Fatalf("imported %v, duplicates %v; want %d, 0", r.body["imported"], r.body["duplicates"], 10_000-len(wantRejected))
	}
	// The same file again imports nothing new.
	again := call(t, c, "POST", "/v1/opt-outs/import", auth, "text/csv", body)
	if again.body["imported"] != float64(0) || again.body["duplicates"] != float64(imported) {
		t.Fatalf("repeated import: %v", again.body)
	}
	f, _ := sp.st.RecipientFacts(context.Background(), "+6590000001")
	if !f.OptedOut("any-other-app") {
		t.Fatalf("a scope all row does not cover other apps: %+v", f)
	}
	f, _ = sp.st.RecipientFacts(context.Background(), "+6590000002")
	if !f.OptedOut("payments") || f.OptedOut("shop") {
		t.Fatalf("a row without scope is not the app's own: %+v", f)
	}
	evs, _ := sp.st.Audit(context.Background(), 0, 100_000)
	added := 0
	for _, e := range evs {
		if e.Kind == store.AuditOptOutAdded {
			added++
		}
		if strings.Contains(string(e.Data), "90000002") {
			t.Fatalf("an audit event holds a number in full: %s", e.Data)
		}
	}
	if added != imported {
		t.Fatalf("%d optout.added events for %d imported", added, imported)
	}
}

func TestOptOutImportNDJSON(t *testing.T) {
	c, sp := serveStore(t)
	body := `{"number":"+6591234567"}

{"number":"+6591234568","scope":"all","source":"reply"}
{"number":"+6591234567"}
not json
{"number":"+6591234569","extra":1}
{"number":"+1415555"}
`
	r := call(t, c, "POST", "/v1/opt-outs/import", auth, "application/x-ndjson", body)
	want := `[map[code:invalid_json line:5] map[code:invalid_json line:6] map[code:invalid_phone line:7]]`
	if r.status != 200 || r.body["imported"] != float64(2) || r.body["duplicates"] != float64(1) || fmt.Sprint(r.body["rejected"]) != want {
		t.Fatalf("import: %d %v", r.status, r.body)
	}
	list, _ := sp.st.ListOptOuts(context.Background(), "payments", 0, 10)
	if len(list) != 2 || list[1].Source != store.SourceReply || list[0].Source != store.SourceImport {
		t.Fatalf("stored %+v", list)
	}
}

func TestOptOutImportLimits(t *testing.T) {
	c, sp := serveStore(t)
	defer func(n int) { importRowLimit = n }(importRowLimit)
	importRowLimit = 1000
	var b strings.Builder
	b.WriteString("number\n")
	for i := range importRowLimit + 1 {
		fmt.Fprintf(&b, "+659%07d\n", i)
	}
	r := call(t, c, "POST", "/v1/opt-outs/import", auth, "text/csv", b.String())
	if r.status != 413 || r.body["code"] != "too_many_rows" {
		t.Fatalf("too many rows: %d %v", r.status, r.body)
	}
	if list, _ := sp.st.ListOptOuts(context.Background(), "payments", 0, 10); len(list) != 0 {
		t.Fatalf("a refused import wrote %d opt-outs", len(list))
	}
	// A declared length over the limit is refused before the body is read.
	if status, body := rawPost(t, c, "/v1/opt-outs/import", auth, maxImportBody+1); status != 413 || !strings.Contains(body, `"code":"body_too_large"`) {
		t.Fatalf("huge import: %d %s", status, body)
	}
	if status, _ := rawPost(t, c, "/v1/opt-outs/import", auth, maxImportBody-1); status == 413 {
		t.Fatal("an import under 16 MiB was refused as too large")
	}
	// Without a known key the body keeps the small limit: nobody unknown gets 16 MiB buffered.
	if status, body := rawPost(t, c, "/v1/opt-outs/import", "Bearer not-a-key-of-any-app", maxBody+1); status != 413 || !strings.Contains(body, `"code":"body_too_large"`) {
		t.Fatalf("unauthenticated import over 64 KiB: %d %s, want 413 body_too_large", status, body)
	}
	if status, _ := rawPost(t, c, "/v1/opt-outs/import", "Bearer not-a-key-of-any-app", maxBody-1); status != 401 {
		t.Fatalf("unauthenticated small import: %d, want 401", status)
	}
	// Other endpoints keep the small limit.
	if r := call(t, c, "POST", "/v1/messages", auth, "application/json", strings.Repeat(" ", maxBody+1)); r.status != 413 || r.body["code"] != "body_too_large" {
		t.Fatalf("large message: %d %v", r.status, r.body)
	}
	for _, tc := range []struct{ ctype, body, code string }{
		{"text/csv", "", "invalid_import"},
		{"text/csv", "phone,scope\n+6591234567,app\n", "invalid_import"},
		{"application/json", `{"number":"+6591234567"}`, "unsupported_media_type"},
	} {
		if r := call(t, c, "POST", "/v1/opt-outs/import", auth, tc.ctype, tc.body); r.body["code"] != tc.code {
			t.Errorf("%s %q: %d %v, want %s", tc.ctype, tc.body, r.status, r.body, tc.code)
		}
	}
}

func TestConsentsAPI(t *testing.T) {
	c, _ := serveStore(t)
	r := call(t, c, "POST", "/v1/consents", auth, "application/json", `{"number":"+6591234567","category":"marketing","basis":"consent","source":"signup"}`)
	if r.status != 201 || r.body["basis"] != "consent" || r.body["withdrawn_at"] != nil || r.body["granted_at"] == "" {
		t.Fatalf("record: %d %v", r.status, r.body)
	}
	for _, s := range []struct{ path, body, code string }{
		{"/v1/consents", `{"number":"+6591234567","category":"marketing","basis":"vibes"}`, "invalid_basis"},
		{"/v1/consents", `{"number":"+6591234567","category":"spam","basis":"consent"}`, "invalid_category"},
		{"/v1/consents", `{"number":"12","category":"marketing","basis":"consent"}`, "invalid_phone"},
		{"/v1/consents/withdraw", `{"number":"+6591234567","category":"marketing","basis":"consent"}`, "invalid_json"},
	} {
		if r := call(t, c, "POST", s.path, auth, "application/json", s.body); r.status != 400 || r.body["code"] != s.code {
			t.Errorf("%s %s: %d %v, want 400 %s", s.path, s.body, r.status, r.body, s.code)
		}
	}
	w := call(t, c, "POST", "/v1/consents/withdraw", auth, "application/json", `{"number":"+6591234567","category":"marketing"}`)
	if w.status != 200 || w.body["withdrawn"] != float64(1) {
		t.Fatalf("withdraw: %d %v", w.status, w.body)
	}
	w = call(t, c, "POST", "/v1/consents/withdraw", auth, "application/json", `{"number":"+6591234567","category":"marketing"}`)
	if w.status != 404 || w.body["code"] != "consent_not_found" {
		t.Fatalf("second withdraw: %d %v", w.status, w.body)
	}
	// Another app cannot withdraw or read payments' records.
	if o := call(t, c, "POST", "/v1/consents/withdraw", "Bearer "+otherKey, "application/json", `{"number":"+6591234567","category":"marketing"}`); o.status != 404 {
		t.Fatalf("other app's withdraw: %d", o.status)
	}
	g := call(t, c, "GET", "/v1/consents/+6591234567", auth, "", "")
	recs, _ := g.body["consents"].([]any)
	if g.status != 200 || len(recs) != 1 || recs[0].(map[string]any)["withdrawn_at"] == nil || recs[0].(map[string]any)["source"] != "signup" {
		t.Fatalf("get: %d %v", g.status, g.body)
	}
	if o := call(t, c, "GET", "/v1/consents/+6591234567", "Bearer "+otherKey, "", ""); len(o.body["consents"].([]any)) != 0 {
		t.Fatalf("other app reads %v", o.body)
	}
}

func TestRecipientsNeedTheAbility(t *testing.T) {
	c := serve(t, &fakeProxy{}, true)
	for _, p := range []string{"/v1/opt-outs", "/v1/consents/+6591234567"} {
		if r := call(t, c, "GET", p, auth, "", ""); r.status != 404 {
			t.Errorf("GET %s on a proxy without opt-outs: %d", p, r.status)
		}
	}
}
