package front

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// Recipients is the optional ability of a Submitter to keep opt-outs and consent records. A
// Submitter without it answers 404 on /v1/opt-outs and /v1/consents.
type Recipients interface {
	AddOptOut(ctx context.Context, o store.OptOut) (added bool, err error)
	ImportOptOuts(ctx context.Context, rows []store.OptOut) (store.ImportResult, error)
	RemoveOptOut(ctx context.Context, app, number string) (int, error)
	ListOptOuts(ctx context.Context, app string, after int64, limit int) ([]store.OptOut, error)
	RecordConsent(ctx context.Context, c store.Consent) (store.Consent, error)
	WithdrawConsent(ctx context.Context, app, number, category string) (int, error)
	Consents(ctx context.Context, app, number string) ([]store.Consent, error)
}

// Import limits: the body and the number of rows of one POST /v1/opt-outs/import.
const (
	maxImportBody = 16 << 20
	maxImportRows = 100_000
	// importTimeout bounds one import inside the proxy; 100k rows take a few seconds.
	importTimeout = 2 * time.Minute
)

// List page sizes of GET /v1/opt-outs.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

const importPath = "/v1/opt-outs/import"

// importRowLimit is maxImportRows; tests lower it.
var importRowLimit = maxImportRows

// headerReceived raises the body limit for opt-out imports only, and only for a request that
// carries a known API key: the body is read before the handler runs, so a stranger would otherwise
// have the proxy buffer 16 MiB per connection before being told 401.
func (f *Front) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	uri := h.RequestURI()
	if bytes.HasPrefix(uri, []byte(importPath)) && (len(uri) == len(importPath) || uri[len(importPath)] == '?') {
		if _, ok := f.appOf(h.Peek("Authorization")); ok {
			return fasthttp.RequestConfig{MaxRequestBodySize: maxImportBody, ReadTimeout: importTimeout}
		}
	}
	return fasthttp.RequestConfig{}
}

// requestError answers a request fasthttp could not read, in the API's JSON error shape, with the
// statuses fasthttp's own handler uses.
func requestError(rc *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(rc, fasthttp.StatusRequestEntityTooLarge, "body_too_large",
			"The body is too large: a message is at most 64 KiB and an opt-out import at most 16 MiB.", "")
	case errors.As(err, &small):
		writeError(rc, fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large", "The request header is too large.", "")
	case errors.As(err, &netErr) && netErr.Timeout():
		writeError(rc, fasthttp.StatusRequestTimeout, "request_timeout", "The request was not received in time.", "")
	default:
		writeError(rc, fasthttp.StatusBadRequest, "bad_request", "The request could not be read.", "")
	}
}

func (f *Front) recipients(rc *fasthttp.RequestCtx) (Recipients, string, bool) {
	r, ok := f.sub.(Recipients)
	if !ok {
		writeError(rc, fasthttp.StatusNotFound, "not_found", "No such endpoint.", "")
		return nil, "", false
	}
	app, ok := f.authenticate(rc)
	return r, app, ok
}

// optOuts routes /v1/opt-outs and below.
func (f *Front) optOuts(rc *fasthttp.RequestCtx, path []byte) {
	rest := string(path[len("/v1/opt-outs"):])
	switch {
	case rest == "" || rest == "/":
		switch {
		case rc.IsPost():
			f.postOptOut(rc)
		case rc.IsGet():
			f.listOptOuts(rc)
		default:
			f.methodNotAllowed(rc, "GET, POST")
		}
	case rest == "/import":
		if !rc.IsPost() {
			f.methodNotAllowed(rc, "POST")
			return
		}
		f.importOptOuts(rc)
	case strings.HasPrefix(rest, "/"):
		if !rc.IsDelete() {
			f.methodNotAllowed(rc, "DELETE")
			return
		}
		f.deleteOptOut(rc, rest[1:])
	default:
		writeError(rc, fasthttp.StatusNotFound, "not_found", "No such endpoint.", "")
	}
}

// optOutRequest is the JSON body of POST /v1/opt-outs and one line of an NDJSON import.
type optOutRequest struct {
	Number string `json:"number"`
	// Scope is "app" (the calling app, the default) or "all" (every app of the region).
	Scope  string `json:"scope"`
	Source string `json:"source"`
}

// optOutJSON is an opt-out as the API shows it to the app that recorded it.
type optOutJSON struct {
	Number    string     `json:"number"`
	Scope     string     `json:"scope"`
	Source    string     `json:"source"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	// Duplicate is true when the number had already opted out of that scope: nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
}

func scopeName(scope string) string {
	if scope == store.ScopeAll {
		return "all"
	}
	return "app"
}

// rowError is a row that cannot be imported, with a stable code.
type rowError struct {
	code, msg string
}

// toOptOut validates one opt-out request for app; source defaults to def.
func toOptOut(app string, r optOutRequest, def string) (store.OptOut, *rowError) {
	if strings.TrimSpace(r.Number) == "" {
		return store.OptOut{}, &rowError{"missing_number", "Give the number in E.164, e.g. +6591234567."}
	}
	ph, err := sms.ParsePhone(strings.TrimSpace(r.Number))
	if err != nil {
		return store.OptOut{}, &rowError{sms.CodeInvalidPhone, "The number is not a valid E.164 phone number."}
	}
	o := store.OptOut{Number: ph.E164, App: app, Scope: app, Source: strings.TrimSpace(r.Source)}
	switch strings.TrimSpace(r.Scope) {
	case "", "app":
	case "all":
		o.Scope = store.ScopeAll
	default:
		return store.OptOut{}, &rowError{"invalid_scope", `The scope must be "app" or "all".`}
	}
	if o.Source == "" {
		o.Source = def
	}
	if !store.ValidOptOutSource(o.Source) {
		return store.OptOut{}, &rowError{"invalid_source", "The source must be api, import, reply or provider-migration."}
	}
	return o, nil
}

// decodeJSONBody decodes one JSON object strictly, answering 400 itself on failure.
func decodeJSONBody(rc *fasthttp.RequestCtx, v any) bool {
	if !isJSON(rc.Request.Header.ContentType()) {
		writeError(rc, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Send the body as application/json.", "")
		return false
	}
	if err := decodeStrict(rc.PostBody(), v); err != nil {
		writeError(rc, fasthttp.StatusBadRequest, "invalid_json", jsonProblem(err), "")
		return false
	}
	return true
}

func (f *Front) postOptOut(rc *fasthttp.RequestCtx) {
	reg, app, ok := f.recipients(rc)
	if !ok {
		return
	}
	var req optOutRequest
	if !decodeJSONBody(rc, &req) {
		return
	}
	o, rerr := toOptOut(app, req, store.SourceAPI)
	if rerr != nil {
		writeError(rc, fasthttp.StatusBadRequest, rerr.code, rerr.msg, "")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	added, err := reg.AddOptOut(ctx, o)
	if err != nil {
		f.writeErr(rc, err)
		return
	}
	out := optOutJSON{Number: o.Number, Scope: scopeName(o.Scope), Source: o.Source, Duplicate: !added}
	if added {
		now := time.Now().UTC()
		out.CreatedAt = &now
	}
	writeJSON(rc, fasthttp.StatusCreated, out)
}

// pathNumber parses a number from a URL path segment ("+6591234567", "%2B6591234567").
func pathNumber(rc *fasthttp.RequestCtx, seg string) (string, bool) {
	ph, err := sms.ParsePhone(seg)
	if err != nil {
		writeError(rc, fasthttp.StatusBadRequest, sms.CodeInvalidPhone, "The number in the path is not a valid E.164 phone number.", "")
		return "", false
	}
	return ph.E164, true
}

func (f *Front) deleteOptOut(rc *fasthttp.RequestCtx, seg string) {
	reg, app, ok := f.recipients(rc)
	if !ok {
		return
	}
	number, ok := pathNumber(rc, seg)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	if _, err := reg.RemoveOptOut(ctx, app, number); err != nil {
		f.writeErr(rc, err)
		return
	}
	rc.SetStatusCode(fasthttp.StatusNoContent)
}

type optOutPage struct {
	OptOuts []optOutJSON `json:"opt_outs"`
	// Next is the cursor for the following page (?after=Next); "" on the last page.
	Next string `json:"next"`
}

func (f *Front) listOptOuts(rc *fasthttp.RequestCtx) {
	reg, app, ok := f.recipients(rc)
	if !ok {
		return
	}
	args := rc.QueryArgs()
	var after int64
	if a := args.Peek("after"); len(a) > 0 {
		v, err := strconv.ParseInt(string(a), 10, 64)
		if err != nil || v < 0 {
			writeError(rc, fasthttp.StatusBadRequest, "invalid_cursor", "after must be the next value of a previous page.", "")
			return
		}
		after = v
	}
	limit := defaultListLimit
	if l := args.Peek("limit"); len(l) > 0 {
		v, err := strconv.Atoi(string(l))
		if err != nil || v < 1 || v > maxListLimit {
			writeError(rc, fasthttp.StatusBadRequest, "invalid_limit", "limit must be between 1 and 1000.", "")
			return
		}
		limit = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	list, err := reg.ListOptOuts(ctx, app, after, limit)
	if err != nil {
		f.writeErr(rc, err)
		return
	}
	page := optOutPage{OptOuts: make([]optOutJSON, len(list))}
	for i, o := range list {
		at := o.CreatedAt.UTC()
		page.OptOuts[i] = optOutJSON{Number: o.Number, Scope: scopeName(o.Scope), Source: o.Source, CreatedAt: &at}
	}
	if len(list) == limit {
		page.Next = strconv.FormatInt(list[len(list)-1].Seq, 10)
	}
	writeJSON(rc, fasthttp.StatusOK, page)
}

// rejectedRow is an import line that was not imported.
type rejectedRow struct {
	Line int    `json:"line"`
	Code string `json:"code"`
}

type importJSON struct {
	Imported   int           `json:"imported"`
	Duplicates int           `json:"duplicates"`
	Rejected   []rejectedRow `json:"rejected"`
}

// errTooManyRows stops parsing an import at maxImportRows.
var errTooManyRows = errors.New("too many rows")

// importProblem is why a whole import cannot be read, as a sentence for the app.
type importProblem string

func (p importProblem) Error() string { return string(p) }

func (f *Front) importOptOuts(rc *fasthttp.RequestCtx) {
	reg, app, ok := f.recipients(rc)
	if !ok {
		return
	}
	ct := string(rc.Request.Header.ContentType())
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	var rows []store.OptOut
	var rejected []rejectedRow
	var err error
	switch strings.TrimSpace(strings.ToLower(ct)) {
	case "text/csv":
		rows, rejected, err = parseCSVImport(app, rc.PostBody())
	case "application/x-ndjson", "application/jsonl", "application/jsonlines":
		rows, rejected, err = parseNDJSONImport(app, rc.PostBody())
	default:
		writeError(rc, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type",
			"Send the import as text/csv (header row number[,scope,source]) or application/x-ndjson.", "")
		return
	}
	switch {
	case errors.Is(err, errTooManyRows):
		writeError(rc, fasthttp.StatusRequestEntityTooLarge, "too_many_rows",
			fmt.Sprintf("An import holds at most %d rows; split the file. Nothing was imported.", importRowLimit), "")
		return
	case err != nil:
		writeError(rc, fasthttp.StatusBadRequest, "invalid_import", err.Error(), "")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), importTimeout)
	defer cancel()
	res, err := reg.ImportOptOuts(ctx, rows)
	if err != nil {
		f.writeErr(rc, err)
		return
	}
	if rejected == nil {
		rejected = []rejectedRow{}
	}
	writeJSON(rc, fasthttp.StatusOK, importJSON{Imported: res.Imported, Duplicates: res.Duplicates, Rejected: rejected})
}

// parseCSVImport reads a CSV import: a header row naming the columns (number, and optionally scope
// and source, in any order) and one opt-out per row. Bad rows are rejected by line number.
func parseCSVImport(app string, body []byte) ([]store.OptOut, []rejectedRow, error) {
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, nil, importProblem("The CSV has no header row; the first row must name the columns: number[,scope,source].")
	}
	col := map[string]int{"number": -1, "scope": -1, "source": -1}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, known := col[name]; !known {
			return nil, nil, importProblem("The CSV header names an unknown column; use number, scope and source.")
		}
		col[name] = i
	}
	if col["number"] < 0 {
		return nil, nil, importProblem("The CSV header has no number column.")
	}
	field := func(rec []string, name string) string {
		if i := col[name]; i >= 0 && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var rows []store.OptOut
	var rejected []rejectedRow
	for n := 0; ; n++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if n >= importRowLimit {
			return nil, nil, errTooManyRows
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, nil, importProblem("The CSV cannot be read.")
			}
			rejected = append(rejected, rejectedRow{Line: pe.StartLine, Code: "invalid_csv"})
			continue
		}
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		o, rerr := toOptOut(app, optOutRequest{Number: field(rec, "number"), Scope: field(rec, "scope"), Source: field(rec, "source")}, store.SourceImport)
		if rerr != nil {
			rejected = append(rejected, rejectedRow{Line: line, Code: rerr.code})
			continue
		}
		rows = append(rows, o)
	}
	return rows, rejected, nil
}

// parseNDJSONImport reads one JSON object per line: {"number":…, "scope":…, "source":…}. Blank
// lines are skipped; bad lines are rejected by line number.
func parseNDJSONImport(app string, body []byte) ([]store.OptOut, []rejectedRow, error) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var rows []store.OptOut
	var rejected []rejectedRow
	n := 0
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if n++; n > importRowLimit {
			return nil, nil, errTooManyRows
		}
		var req optOutRequest
		if err := decodeStrict(text, &req); err != nil {
			rejected = append(rejected, rejectedRow{Line: line, Code: "invalid_json"})
			continue
		}
		o, rerr := toOptOut(app, req, store.SourceImport)
		if rerr != nil {
			rejected = append(rejected, rejectedRow{Line: line, Code: rerr.code})
			continue
		}
		rows = append(rows, o)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, importProblem("A line of the import is longer than 64 KiB.")
	}
	return rows, rejected, nil
}
