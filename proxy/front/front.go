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
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

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
	if ct := rc.Request.Header.ContentType(); !bytes.HasPrefix(ct, []byte("application/json")) {
		writeError(rc, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Send the message as application/json.", "")
		return
	}
	var req messageRequest
	dec := json.NewDecoder(bytes.NewReader(rc.PostBody()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(rc, fasthttp.StatusBadRequest, "invalid_json", jsonProblem(err), "")
		return
	}
	if dec.More() {
		writeError(rc, fasthttp.StatusBadRequest, "invalid_json", "The body must hold one JSON object.", "")
		return
	}
	key := rc.Request.Header.Peek("Idempotency-Key")
	if len(key) > 255 {
		writeError(rc, fasthttp.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key is at most 255 characters.", "")
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
		writeError(rc, status, ce.ErrorCode(), msg, rule)
		return
	}
	if errors.Is(err, context.DeadlineExceeded) {
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

func writeError(rc *fasthttp.RequestCtx, status int, code, msg, rule string) {
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
	switch {
	case errors.As(err, &se):
		return "The body is not valid JSON (at byte " + strconv.FormatInt(se.Offset, 10) + ")."
	case errors.As(err, &te):
		return "Field " + te.Field + " must be a " + te.Type.String() + "."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// A field name is the client's text: echo it only when it looks like a field name, never
		// when it could be a number or a code sent in the wrong place.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if fieldName.MatchString(name) {
			return "Unknown field " + strconv.Quote(name) + "."
		}
		return "The body has a field that is not part of the message object."
	case errors.Is(err, io.EOF):
		return "The body is empty; send a JSON object."
	}
	return "The body is not a valid message object."
}

// fieldName matches what may be echoed as an unknown field's name.
var fieldName = regexp.MustCompile(`^[a-z_]{1,32}$`)

type fasthttpLogger struct{ l *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.l.Warn("http server", "detail", fmt.Sprintf(format, args...))
}
