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
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

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
		HeaderReceived:        headerReceived, // opt-out imports may be larger
		ErrorHandler:          requestError,
		Logger:                fasthttpLogger{opts.Logger},
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
	key := rc.Request.Header.Peek("Idempotency-Key")
	if len(key) > sms.MaxIdempotencyKeyChars*utf8.UTFMax || utf8.RuneCount(key) > sms.MaxIdempotencyKeyChars {
		writeError(rc, fasthttp.StatusBadRequest, sms.CodeInvalidIdempotencyKey,
			"Idempotency-Key is at most "+strconv.Itoa(sms.MaxIdempotencyKeyChars)+" characters.", "")
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
		IdempotencyKey: string(key),
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
	h := rc.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	if len(h) > len(prefix) && strings.EqualFold(string(h[:len(prefix)]), prefix) {
		sum := sha256.Sum256(bytes.TrimSpace(h[len(prefix):]))
		if app, ok := f.opts.Apps[hex.EncodeToString(sum[:])]; ok {
			return app, true
		}
	}
	rc.Response.Header.Set("WWW-Authenticate", `Bearer realm="smsproxy"`)
	writeError(rc, fasthttp.StatusUnauthorized, "unauthorized", "A valid API key is required: Authorization: Bearer <key>.", "")
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
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var bp *bodyProblem
	switch {
	case errors.As(err, &se):
		return "The body is not valid JSON (at byte " + strconv.FormatInt(se.Offset, 10) + ")."
	case errors.As(err, &bp):
		return bp.msg
	case errors.As(err, &te):
		return typeProblem(te, nil)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// A field name is the client's text: echo it only when it looks like a field name, never
		// when it could be a number or a code sent in the wrong place.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if fieldName.MatchString(name) {
			return "Unknown field " + strconv.Quote(name) + "."
		}
		return "The body has a field that is not part of the message object."
	case errors.Is(err, errTrailingData):
		return "The body must hold one JSON object and nothing after it."
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "The body ends before its JSON object does."
	case errors.Is(err, io.EOF):
		return "The body is empty; send a JSON object."
	}
	return "The body is not a valid message object."
}

// jsonKind names, in JSON's words, the kind of value a Go type decodes from; "" when there is no
// one kind.
func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
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

// typeProblem says which field of a request described by ks has a value of the wrong type. The
// error's Field is a path of the request's own field names (never a metadata key) and its Type a
// Go type, of which only the kind is told, in JSON's words.
func typeProblem(te *json.UnmarshalTypeError, ks *keySet) string {
	if te.Field == "" {
		return "The body must be a JSON object."
	}
	kind := jsonKind(te.Type)
	if kind == "" {
		return "Field " + strconv.Quote(te.Field) + " has the wrong type."
	}
	// For a value inside a map, Field names the map and Type is the type of its values.
	parent, last := ks, te.Field
	for {
		seg, rest, more := strings.Cut(last, ".")
		if !more {
			break
		}
		if parent != nil {
			parent = parent.fields[seg]
		}
		last = rest
	}
	if parent != nil && parent.maps[last] && te.Type.Kind() != reflect.Map {
		return "Each value of field " + strconv.Quote(te.Field) + " must be " + kind + "."
	}
	return "Field " + strconv.Quote(te.Field) + " must be " + kind + "."
}

// isJSON reports whether a Content-Type names JSON: application/json, with any parameters, and
// a charset (if given) of UTF-8.
func isJSON(ct []byte) bool {
	mt, params, err := mime.ParseMediaType(string(ct))
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// errTrailingData is a body with something other than white space after its JSON value.
var errTrailingData = errors.New("data after the JSON value")

// decodeStrict decodes body, which must hold exactly one JSON value, into v, a pointer to a
// request struct. Unknown fields are refused, and before decoding checkKeys refuses what
// encoding/json would otherwise quietly accept: a key given twice, and a field name in other case.
func decodeStrict(body []byte, v any) error {
	ks := keysOf(reflect.TypeOf(v))
	if err := checkKeys(body, ks); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &bodyProblem{typeProblem(te, ks)}
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

// keySet is the keys an object of a request may hold: each field's name and, when the field is an
// object, its own keySet. A nil *keySet is free-form (metadata, template params): any key, once.
type keySet struct {
	path   string             // the fields leading here, as "template"; "" at the top
	fields map[string]*keySet // field name → keys of its value (nil unless a struct)
	folded map[string]string  // field name as encoding/json folds it → field name
	maps   map[string]bool    // the fields whose value is a map
	paths  map[string]string  // field name → its path from the top, as "template.params"
}

// keySets caches keysOf by type.
var keySets sync.Map // reflect.Type → *keySet

// keysOf returns the keySet of the JSON object t (or what t points to) decodes from; nil when t
// is not a struct.
func keysOf(t reflect.Type) *keySet {
	if ks, ok := keySets.Load(t); ok {
		return ks.(*keySet)
	}
	ks := buildKeys(t, "")
	keySets.Store(t, ks)
	return ks
}

func buildKeys(t reflect.Type, path string) *keySet {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	ks := &keySet{path: path, fields: map[string]*keySet{}, folded: map[string]string{}, maps: map[string]bool{}, paths: map[string]string{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if sf.Anonymous && name == "" {
			// An embedded struct's fields are the object's own, as encoding/json reads them.
			if emb := buildKeys(sf.Type, path); emb != nil {
				for n, sub := range emb.fields {
					if _, shadowed := ks.fields[n]; !shadowed {
						ks.fields[n], ks.maps[n], ks.paths[n] = sub, emb.maps[n], emb.paths[n]
						ks.folded[string(foldName(nil, []byte(n)))] = n
					}
				}
				continue
			}
		}
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		ks.fields[name] = buildKeys(sf.Type, qualify(path, name))
		ks.maps[name] = sf.Type.Kind() == reflect.Map
		ks.paths[name] = qualify(path, name)
		ks.folded[string(foldName(nil, []byte(name)))] = name
	}
	return ks
}

// foldName appends name folded as encoding/json folds field names when it matches them to keys
// (ASCII letters upper-cased, other runes to the least rune of their fold set, so "ſ" is "S").
func foldName(out, name []byte) []byte {
	for len(name) > 0 {
		if c := name[0]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			name = name[1:]
			continue
		}
		r, n := utf8.DecodeRune(name)
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
		name = name[n:]
	}
	return out
}

// bodyProblem is what is wrong with a request body, as a sentence that names only the request's own fields.
type bodyProblem struct{ msg string }

func (p *bodyProblem) Error() string { return p.msg }

// keyFrame is one open object or array of checkKeys' scan.
type keyFrame struct {
	obj     bool
	keys    *keySet // the object's keys; nil when free-form
	field   string  // the object's field path, for messages
	wantKey bool
	next    *keySet // keys of the value after the last key read
	nextAt  string
	start   int                 // where the object's keys begin in the scan's seen keys, while few
	seenSet map[string]struct{} // the object's keys, once many
}

// maxDepth bounds how deeply checkKeys follows nested objects and arrays; a request needs three.
const maxDepth = 32

// seenLimit is how many keys an object's frame compares one by one before it keeps them in a map.
const seenLimit = 16

// add records key as one of fr's, reporting false if fr already had it. seen holds the keys of the
// open objects that have few, innermost last; add returns it updated.
func (fr *keyFrame) add(seen [][]byte, key []byte) ([][]byte, bool) {
	if fr.seenSet != nil {
		if _, dup := fr.seenSet[string(key)]; dup {
			return seen, false
		}
		fr.seenSet[string(key)] = struct{}{}
		return seen, true
	}
	for _, k := range seen[fr.start:] {
		if bytes.Equal(k, key) {
			return seen, false
		}
	}
	if len(seen)-fr.start < seenLimit {
		return append(seen, key), true
	}
	fr.seenSet = make(map[string]struct{}, 4*seenLimit)
	for _, k := range seen[fr.start:] {
		fr.seenSet[string(k)] = struct{}{}
	}
	fr.seenSet[string(key)] = struct{}{}
	return seen[:fr.start], true
}

// checkKeys scans the JSON value of body, whose objects are described by top, and refuses any
// object that has a key twice, and any key of a described object that differs from one of its
// fields only as encoding/json folds case (it would decode into that field). Keys are compared as
// encoding/json reads them, escapes undone. A body that is not valid JSON is left to the decoder,
// which refuses it: checkKeys then has nothing to say. It reads body twice, once to validate it and
// once to scan it, and allocates only for keys with escapes and for objects with many keys.
func checkKeys(body []byte, top *keySet) error {
	if !json.Valid(body) {
		return nil
	}
	var frameBuf [4]keyFrame
	var seenBuf [2 * seenLimit][]byte
	var foldBuf [32]byte
	stack, seen, fold := frameBuf[:0], seenBuf[:0], foldBuf[:0]
	for i := 0; i < len(body); i++ {
		var fr *keyFrame
		if len(stack) > 0 {
			fr = &stack[len(stack)-1]
		}
		switch c := body[i]; c {
		case '{', '[':
			keys, at := top, ""
			if fr != nil {
				keys, at = fr.next, fr.nextAt
			}
			if len(stack) == maxDepth {
				return &bodyProblem{"The body nests objects or arrays too deeply."}
			}
			if c == '[' {
				// An array's elements are described by nothing: no request field is an array.
				stack = append(stack, keyFrame{nextAt: at})
			} else {
				stack = append(stack, keyFrame{obj: true, keys: keys, field: at, wantKey: true, start: len(seen)})
			}
		case '}', ']':
			if fr.obj && fr.seenSet == nil {
				seen = seen[:fr.start]
			}
			stack = stack[:len(stack)-1]
		case ',':
			if fr.obj {
				fr.wantKey = true
			}
		case '"':
			end := i + 1
			for body[end] != '"' {
				if body[end] == '\\' {
					end++
				}
				end++
			}
			raw := body[i : end+1]
			i = end
			if fr == nil || !fr.obj || !fr.wantKey {
				continue // a string value
			}
			fr.wantKey = false
			key := raw[1 : len(raw)-1]
			if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
				// Undo escapes and replace invalid UTF-8 exactly as the decoder will.
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return nil
				}
				key = []byte(s)
			}
			var fresh bool
			if seen, fresh = fr.add(seen, key); !fresh {
				return fr.duplicate(key)
			}
			fr.next, fr.nextAt = nil, fr.field
			if fr.keys == nil {
				continue
			}
			if sub, known := fr.keys.fields[string(key)]; known {
				fr.next, fr.nextAt = sub, fr.keys.paths[string(key)]
				continue
			}
			fold = foldName(fold[:0], key)
			if name, ok := fr.keys.folded[string(fold)]; ok {
				return &bodyProblem{"Field names are case-sensitive: use " + strconv.Quote(qualify(fr.keys.path, name)) + "."}
			}
			// An unknown field: the decoder refuses it by name.
		}
	}
	return nil
}

// duplicate is the problem of key given twice in the object of fr.
func (fr *keyFrame) duplicate(key []byte) error {
	if fr.keys != nil {
		if _, known := fr.keys.fields[string(key)]; known {
			return &bodyProblem{"Field " + strconv.Quote(qualify(fr.keys.path, string(key))) + " is given more than once."}
		}
		return &bodyProblem{"The body gives a field more than once."}
	}
	if fr.field != "" {
		return &bodyProblem{"A key of " + strconv.Quote(fr.field) + " is given more than once."}
	}
	return &bodyProblem{"The body gives a key more than once."}
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

type fasthttpLogger struct{ l *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.l.Warn("http server", "detail", fmt.Sprintf(format, args...))
}
