// Package front is smsproxy's HTTP front: it authenticates apps, decodes requests, copies everything it
// needs out of fasthttp and calls Submit. It is the only package that imports fasthttp; nothing keeps a
// reference to a RequestCtx after its handler returns.
package front

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/valyala/fasthttp"

	"github.com/smsproxy/smsproxy/proxy/sms"
)

// Submitter is what the front needs from the proxy.
type Submitter interface {
	// Submit takes one message from an app and answers once it is durable or refused.
	Submit(ctx context.Context, app string, d sms.Draft) (sms.Accepted, error)
	// Message returns one of the app's messages with its status history.
	Message(ctx context.Context, app, id string) (sms.Record, error)
}

// Options configures the HTTP front.
type Options struct {
	// Apps maps the hex SHA-256 of each API key to its app's name.
	Apps map[string]string
	// RequestTimeout bounds how long one request may take inside the proxy.
	RequestTimeout time.Duration
	// Ready reports whether the proxy can take traffic, for /readyz.
	Ready func() bool
	// Logger receives request errors, never personal data.
	Logger *slog.Logger
}

// Front serves the native JSON API.
type Front struct {
	sub    Submitter
	opts   Options
	server *fasthttp.Server
}

// maxBody bounds a request body; a message is at most ten segments of text.
const maxBody = 64 << 10

// New returns a front that hands requests to sub.
func New(sub Submitter, opts Options) *Front {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	f := &Front{sub: sub, opts: opts}
	f.server = &fasthttp.Server{
		Handler:               f.handle,
		Name:                  "smsproxy",
		NoDefaultServerHeader: true,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          15 * time.Second,
		IdleTimeout:           90 * time.Second,
		MaxRequestBodySize:    maxBody,
		HeaderReceived:        f.headerReceived, // opt-out imports may be larger
		ErrorHandler:          requestError,
		Logger:                fasthttpLogger{opts.Logger},
		SecureErrorLogMessage: true, // errors do not quote the request's bytes
	}
	return f
}

// Serve answers requests on ln until Shutdown.
func (f *Front) Serve(ln net.Listener) error { return f.server.Serve(ln) }

// Shutdown stops accepting connections and waits for in-flight requests until ctx ends.
func (f *Front) Shutdown(ctx context.Context) error { return f.server.ShutdownWithContext(ctx) }

// Handler returns the request handler, for tests that serve it on their own listener.
func (f *Front) Handler() fasthttp.RequestHandler { return f.handle }

func (f *Front) handle(rc *fasthttp.RequestCtx) {
	path := rc.Path()
	switch {
	case bytes.Equal(path, []byte("/v1/messages")):
		if !rc.IsPost() {
			f.methodNotAllowed(rc, "POST")
			return
		}
		f.postMessage(rc)
	case bytes.HasPrefix(path, []byte("/v1/messages/")):
		if !rc.IsGet() {
			f.methodNotAllowed(rc, "GET")
			return
		}
		f.getMessage(rc, string(path[len("/v1/messages/"):]))
	case bytes.HasPrefix(path, []byte("/v1/opt-outs")):
		f.optOuts(rc, path)
	case bytes.HasPrefix(path, []byte("/v1/consents")):
		f.consents(rc, path)
	case bytes.HasPrefix(path, []byte("/v1/erasures")):
		f.erasures(rc, path)
	case bytes.Equal(path, []byte("/healthz")):
		rc.SetStatusCode(fasthttp.StatusOK)
		rc.SetBodyString("ok\n")
	case bytes.Equal(path, []byte("/readyz")):
		if f.opts.Ready() {
			rc.SetStatusCode(fasthttp.StatusOK)
			rc.SetBodyString("ready\n")
			return
		}
		writeError(rc, fasthttp.StatusServiceUnavailable, "not_ready", "The proxy is starting or stopping.", "")
	default:
		writeError(rc, fasthttp.StatusNotFound, "not_found", "No such endpoint.", "")
	}
}

// messageRequest is the JSON body of POST /v1/messages.
type messageRequest struct {
	To       string            `json:"to"`
	From     string            `json:"from"`
	Body     *string           `json:"body"`
	Template *sms.TemplateRef  `json:"template"`
	Category string            `json:"category"`
	DeviceID string            `json:"device_id"`
	Metadata map[string]string `json:"metadata"`
}

func (f *Front) postMessage(rc *fasthttp.RequestCtx) {
	app, ok := f.authenticate(rc)
	if !ok {
		return
	}
	if !isJSON(rc.Request.Header.ContentType()) {
		writeError(rc, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Send the message as application/json.", "")
		return
	}
	var req messageRequest
	if err := decodeStrict(rc.PostBody(), &req); err != nil {
		writeError(rc, fasthttp.StatusBadRequest, "invalid_json", jsonProblem(err), "")
		return
	}
	d := sms.Draft{
		App:            app,
		To:             req.To,
		From:           req.From,
		Template:       req.Template,
		Category:       req.Category,
		DeviceID:       req.DeviceID,
		Metadata:       req.Metadata,
		IdempotencyKey: string(rc.Request.Header.Peek("Idempotency-Key")),
	}
	if req.Body != nil {
		d.Body = *req.Body
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	acc, err := f.sub.Submit(ctx, app, d)
	if err != nil {
		f.writeErr(rc, err)
		return
	}
	if acc.Duplicate {
		rc.Response.Header.Set("Idempotent-Replayed", "true")
	}
	writeJSON(rc, fasthttp.StatusCreated, acceptedJSON{
		ID: acc.ID, Status: acc.Status, Encoding: string(acc.Encoding), Segments: acc.Segments,
		Provider: acc.Provider, Country: acc.Country,
	})
}

type acceptedJSON struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Encoding string `json:"encoding"`
	Segments int    `json:"segments"`
	Provider string `json:"provider,omitempty"`
	Country  string `json:"country"`
}

func (f *Front) getMessage(rc *fasthttp.RequestCtx, id string) {
	app, ok := f.authenticate(rc)
	if !ok {
		return
	}
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "/?#") {
		writeError(rc, fasthttp.StatusNotFound, "message_not_found", "No message with that id.", "")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	rec, err := f.sub.Message(ctx, app, id)
	if err != nil {
		f.writeErr(rc, err)
		return
	}
	writeJSON(rc, fasthttp.StatusOK, rec)
}

// authenticate finds the app whose API key the request carries ("Authorization: Bearer <key>"). It
// answers 401 itself when there is none.
func (f *Front) authenticate(rc *fasthttp.RequestCtx) (string, bool) {
	if app, ok := f.appOf(rc.Request.Header.Peek("Authorization")); ok {
		return app, true
	}
	rc.Response.Header.Set("WWW-Authenticate", `Bearer realm="smsproxy"`)
	writeError(rc, fasthttp.StatusUnauthorized, "unauthorized", "A valid API key is required: Authorization: Bearer <key>.", "")
	return "", false
}

// appOf finds the app whose API key an Authorization header value ("Bearer <key>") carries.
func (f *Front) appOf(h []byte) (string, bool) {
	const prefix = "Bearer "
	if len(h) > len(prefix) && strings.EqualFold(string(h[:len(prefix)]), prefix) {
		sum := sha256.Sum256(bytes.TrimSpace(h[len(prefix):]))
		if app, ok := f.opts.Apps[hex.EncodeToString(sum[:])]; ok {
			return app, true
		}
	}
	return "", false
}

func (f *Front) methodNotAllowed(rc *fasthttp.RequestCtx, allow string) {
	rc.Response.Header.Set("Allow", allow)
	writeError(rc, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "Use "+allow+" on this endpoint.", "")
}

// The error classes the proxy's errors declare, and the HTTP status each answers with.
var classStatus = map[string]int{
	"invalid":     fasthttp.StatusBadRequest,
	"refused":     fasthttp.StatusUnprocessableEntity,
	"limited":     fasthttp.StatusTooManyRequests,
	"conflict":    fasthttp.StatusConflict,
	"not_found":   fasthttp.StatusNotFound,
	"unavailable": fasthttp.StatusServiceUnavailable,
}

// classified is what the front reads from an error to answer with it.
type classified interface {
	error
	ErrorClass() string
	ErrorCode() string
}

func (f *Front) writeErr(rc *fasthttp.RequestCtx, err error) {
	var ce classified
	if errors.As(err, &ce) {
		status, ok := classStatus[ce.ErrorClass()]
		if !ok {
			status = fasthttp.StatusInternalServerError
		}
		var rule string
		if r, ok := ce.(interface{ ErrorRule() string }); ok {
			rule = r.ErrorRule()
		}
		if ra, ok := ce.(interface{ RetryAfter() time.Duration }); ok && ra.RetryAfter() > 0 {
			secs := int((ra.RetryAfter() + time.Second - 1) / time.Second)
			rc.Response.Header.Set("Retry-After", strconv.Itoa(secs))
		}
		msg := ce.Error()
		if m, ok := ce.(interface{ ErrorMessage() string }); ok {
			msg = m.ErrorMessage()
		}
		if status >= fasthttp.StatusInternalServerError {
			// The proxy's errors name no phone number or message text, so the wrapped error may be logged.
			f.opts.Logger.Error("request failed", "status", status, "code", ce.ErrorCode(), "err", err)
		}
		writeError(rc, status, ce.ErrorCode(), msg, rule)
		return
	}
	if errors.Is(err, context.DeadlineExceeded) {
		f.opts.Logger.Error("request failed", "status", fasthttp.StatusServiceUnavailable, "code", "timeout", "err", err)
		writeError(rc, fasthttp.StatusServiceUnavailable, "timeout", "The proxy could not finish in time; retry with the same Idempotency-Key.", "")
		return
	}
	f.opts.Logger.Error("request failed", "err", err)
	writeError(rc, fasthttp.StatusInternalServerError, "internal", "Internal error; retry with the same Idempotency-Key.", "")
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Rule    string `json:"rule,omitempty"`
}

// writeError answers with the API's error shape. A 503 always says when to retry: Retry-After: 1
// unless the error named a later time.
func writeError(rc *fasthttp.RequestCtx, status int, code, msg, rule string) {
	if status == fasthttp.StatusServiceUnavailable && len(rc.Response.Header.Peek("Retry-After")) == 0 {
		rc.Response.Header.Set("Retry-After", "1")
	}
	writeJSON(rc, status, errorJSON{Code: code, Message: msg, Rule: rule})
}

func writeJSON(rc *fasthttp.RequestCtx, status int, v any) {
	rc.SetStatusCode(status)
	rc.SetContentType("application/json")
	enc := json.NewEncoder(rc)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// jsonProblem says what is wrong with a body without echoing its content.
func jsonProblem(err error) string {
	var bp *bodyProblem
	if errors.As(err, &bp) {
		return bp.msg
	}
	return "The body is not a valid message object."
}

// jsonKind names, in JSON's words, the kind of value a Go type decodes from; "" when there is no
// one kind.
func jsonKind(t reflect.Type) string {
	t = deref(t)
	if t == nil {
		return ""
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return ""
}

// isJSON reports whether a Content-Type names JSON: application/json, with any parameters, and
// a charset (if given) of UTF-8.
func isJSON(ct []byte) bool {
	if bytes.EqualFold(ct, []byte("application/json")) {
		return true // the usual header: no parsing, no allocation
	}
	mt, params, err := mime.ParseMediaType(string(ct))
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// strictJSON is how decodeStrict reads a body: unknown fields are refused. The rest are the
// library's defaults, given because it is a prototype whose defaults may change: a key given twice
// is refused, field names match exactly (not as encoding/json folds case) and the body must be
// UTF-8.
var strictJSON = jsonv2.JoinOptions(
	jsonv2.RejectUnknownMembers(true),
	jsonv2.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// decodeStrict decodes body, which must hold exactly one JSON value and nothing but white space
// after it, into v, a pointer to a request struct. It refuses unknown fields, a key given twice
// (in free-form maps too) and a field name in other case. Its errors are *bodyProblem.
func decodeStrict(body []byte, v any) error {
	if err := jsonv2.Unmarshal(body, v, strictJSON); err != nil {
		return &bodyProblem{problemOf(body, reflect.TypeOf(v), err)}
	}
	return nil
}

// bodyProblem is what is wrong with a request body, as a sentence that names only the request's own fields.
type bodyProblem struct{ msg string }

func (p *bodyProblem) Error() string { return p.msg }

// problemOf says what is wrong with body, which err refused to decode into a t, naming only t's
// own fields: never a Go type, a map key or a value of the client's.
func problemOf(body []byte, t reflect.Type, err error) string {
	var se *jsonv2.SemanticError
	var sy *jsontext.SyntacticError
	switch {
	case errors.As(err, &sy):
		return syntaxProblem(body, t, sy)
	case errors.As(err, &se) && errors.Is(se.Err, jsonv2.ErrUnknownName):
		return unknownProblem(t, se.JSONPointer)
	case errors.As(err, &se):
		return typeProblem(t, se)
	}
	return "The body is not a valid message object."
}

func syntaxProblem(body []byte, t reflect.Type, sy *jsontext.SyntacticError) string {
	off := min(max(sy.ByteOffset, 0), int64(len(body)))
	at := " (at byte " + strconv.FormatInt(off, 10) + ")."
	switch {
	case errors.Is(sy.Err, jsontext.ErrDuplicateName):
		return duplicateProblem(t, sy.JSONPointer)
	case len(bytes.Trim(body, " \t\r\n")) == 0:
		return "The body is empty; send a JSON object."
	case errors.Is(sy.Err, io.ErrUnexpectedEOF):
		return "The body ends before its JSON object does."
	case invalidRune(body[off:]):
		return "The body is not valid UTF-8" + at
	case sy.JSONPointer == "" && jsontext.Value(body[:off]).IsValid():
		// What comes before the error is one whole value: the error is what follows it.
		return "The body must hold one JSON object and nothing after it."
	}
	return "The body is not valid JSON" + at
}

// invalidRune reports whether b starts with a byte that does not start a UTF-8 encoded rune.
func invalidRune(b []byte) bool {
	r, n := utf8.DecodeRune(b)
	return r == utf8.RuneError && n == 1
}

// unknownProblem is the problem of the key at ptr, which is no field of its object. A field name
// in other case is told which field it means; another name is echoed only when it looks like a
// field name, never when it could be a number or a code sent in the wrong place.
func unknownProblem(t reflect.Type, ptr jsontext.Pointer) string {
	name := ptr.LastToken()
	if path, obj, rest := locate(t, ptr.Parent()); rest == 0 && obj.Kind() == reflect.Struct {
		for _, f := range fieldsOf(obj) {
			if strings.EqualFold(f.name, name) {
				return "Field names are case-sensitive: use " + strconv.Quote(qualify(path, f.name)) + "."
			}
		}
	}
	if fieldName.MatchString(name) {
		return "Unknown field " + strconv.Quote(name) + "."
	}
	return "The body has a field that is not part of the message object."
}

// duplicateProblem is the problem of the key at ptr, given twice in its object.
func duplicateProblem(t reflect.Type, ptr jsontext.Pointer) string {
	path, obj, rest := locate(t, ptr.Parent())
	if rest == 0 && obj.Kind() == reflect.Struct {
		if _, known := fieldOf(obj, ptr.LastToken()); known {
			return "Field " + strconv.Quote(qualify(path, ptr.LastToken())) + " is given more than once."
		}
		return "The body gives a field more than once."
	}
	if path != "" {
		return "A key of " + strconv.Quote(path) + " is given more than once."
	}
	return "The body gives a key more than once."
}

// typeProblem says which field of a t has a value of the wrong kind; the field's Go type is told
// only as a kind, in JSON's words.
func typeProblem(t reflect.Type, se *jsonv2.SemanticError) string {
	if se.JSONPointer == "" {
		return "The body must be a JSON object."
	}
	path, in, rest := locate(t, se.JSONPointer)
	kind := jsonKind(se.GoType)
	switch {
	case path == "":
		return "The body is not a valid message object."
	case kind != "" && rest == 0:
		return "Field " + strconv.Quote(path) + " must be " + kind + "."
	case kind != "" && rest == 1 && in.Kind() == reflect.Map:
		// A value of a free-form field: its key is the client's, not told.
		return "Each value of field " + strconv.Quote(path) + " must be " + kind + "."
	}
	return "Field " + strconv.Quote(path) + " has the wrong type."
}

// locate follows ptr from a value of type t through struct fields, as far as it names them. It
// returns the path of those fields (as "template.params"), the type it stops at, and how many of
// ptr's tokens are left: those inside a map or array, whose keys are the client's, or from a name
// that is no field on.
func locate(t reflect.Type, ptr jsontext.Pointer) (path string, end reflect.Type, rest int) {
	end = deref(t)
	for tok := range ptr.Tokens() {
		if rest == 0 && end.Kind() == reflect.Struct {
			if ft, ok := fieldOf(end, tok); ok {
				path, end = qualify(path, tok), deref(ft)
				continue
			}
		}
		rest++
	}
	return path, end, rest
}

// jsonField is a field of a struct as JSON names it.
type jsonField struct {
	name string
	typ  reflect.Type
}

// fieldsOf lists the fields of struct type t by the names their json tags give them, with the
// fields of embedded structs as t's own, after t's.
func fieldsOf(t reflect.Type) []jsonField {
	var fs []jsonField
	var embedded []reflect.Type
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case tag == "-":
			continue
		case sf.Anonymous && name == "" && deref(sf.Type).Kind() == reflect.Struct:
			embedded = append(embedded, deref(sf.Type))
			continue
		case !sf.IsExported():
			continue
		case name == "":
			name = sf.Name
		}
		fs = append(fs, jsonField{name, sf.Type})
	}
	for _, et := range embedded {
		fs = append(fs, fieldsOf(et)...)
	}
	return fs
}

// fieldOf returns the type of struct type t's field named name.
func fieldOf(t reflect.Type, name string) (reflect.Type, bool) {
	for _, f := range fieldsOf(t) {
		if f.name == name {
			return f.typ, true
		}
	}
	return nil, false
}

// deref is t, or what it points to.
func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// qualify is the path of field name in an object at path.
func qualify(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fieldName matches what may be echoed as an unknown field's name.
var fieldName = regexp.MustCompile(`^[a-z_]{1,32}$`)

// fasthttpLogger passes the HTTP server's own errors to the log. Their arguments may quote the
// request (a header line that failed to parse, the buffered bytes: a body, an API key), which
// redaction cannot reliably clean inside quoted text, so only the message's fixed format is kept.
type fasthttpLogger struct{ l *slog.Logger }

func (l fasthttpLogger) Printf(format string, _ ...any) {
	l.l.Warn("http server", "detail", format)
}
