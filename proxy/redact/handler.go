// Package redact keeps phone numbers, one-time codes, message bodies and secrets out of logs and
// metric labels: New wraps any slog.Handler and scrubs every record on its way through, and Scrub
// cleans a single string (an error message, a label value).
//
// Wire it once where the logger is built, so every package's log lines pass through it:
//
//	logger := slog.New(redact.New(slog.NewJSONHandler(w, opts)))
//
// Values under sensitive keys (see SensitiveKey) are replaced by Mask whatever their type; other
// string values, the message, errors, fmt.Stringers, byte slices and LogValuers are scrubbed (see
// Scrub); structs, maps and slices are scrubbed field by field through their JSON form. Numbers,
// booleans, durations and times under ordinary keys pass unchanged.
package redact

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
)

// handler scrubs records before passing them to next.
type handler struct {
	next slog.Handler
	// masked is set inside a group whose name is sensitive (WithGroup("params")): every value is masked.
	masked bool
}

// New returns a handler that scrubs every record and every attribute (including those added with
// WithAttrs and inside groups) and then passes them to next.
func New(next slog.Handler) slog.Handler {
	if h, ok := next.(*handler); ok {
		return h // already redacting
	}
	return &handler{next: next}
}

// Enabled reports whether next handles level.
func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle scrubs r and passes it on. A record with nothing to remove is passed as it is.
func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	msg, changed := scrub(r.Message)
	if !changed {
		r.Attrs(func(a slog.Attr) bool {
			_, changed = h.attr(a)
			return !changed
		})
		if !changed {
			return h.next.Handle(ctx, r)
		}
	}
	nr := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	var buf [8]slog.Attr
	as := buf[:0]
	r.Attrs(func(a slog.Attr) bool {
		a, _ = h.attr(a)
		as = append(as, a)
		return true
	})
	nr.AddAttrs(as...)
	return h.next.Handle(ctx, nr)
}

// WithAttrs scrubs as once and hands them to next.
func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i], _ = h.attr(a)
	}
	return &handler{next: h.next.WithAttrs(out), masked: h.masked}
}

// WithGroup opens a group in next; every value inside a group with a sensitive name is masked.
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{next: h.next.WithGroup(name), masked: h.masked || cachedSensitive(name)}
}

// attr returns a scrubbed and whether it changed.
func (h *handler) attr(a slog.Attr) (slog.Attr, bool) {
	return scrubAttr(a, h.masked)
}

func scrubAttr(a slog.Attr, masked bool) (slog.Attr, bool) {
	v := a.Value
	resolved := false
	if v.Kind() == slog.KindLogValuer {
		v, resolved = v.Resolve(), true
	}
	if masked || a.Key != "" && cachedSensitive(a.Key) {
		if v.Kind() == slog.KindString && codeKey(a.Key) && !masked && looksLikeErrorCode(v.String()) {
			return slog.Attr{Key: a.Key, Value: v}, resolved
		}
		return slog.String(a.Key, Mask), true
	}
	switch v.Kind() {
	case slog.KindString:
		if s, ok := scrub(v.String()); ok {
			return slog.String(a.Key, s), true
		}
	case slog.KindGroup:
		g := v.Group()
		var out []slog.Attr
		for i, ga := range g {
			sa, ok := scrubAttr(ga, false)
			if ok && out == nil {
				out = make([]slog.Attr, len(g))
				copy(out, g[:i])
			}
			if out != nil {
				out[i] = sa
			}
		}
		if out != nil {
			return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}, true
		}
	case slog.KindAny:
		if sv, ok := scrubAny(v.Any()); ok {
			return slog.Attr{Key: a.Key, Value: sv}, true
		}
	}
	return slog.Attr{Key: a.Key, Value: v}, resolved
}

// scrubAny scrubs the value of slog.Any: errors and Stringers by their text, byte slices as text,
// anything else through its JSON form, so that a struct's To or Body field is masked like a key.
func scrubAny(x any) (slog.Value, bool) {
	switch t := x.(type) {
	case nil:
		return slog.Value{}, false
	case error:
		s, _ := scrub(t.Error())
		return slog.StringValue(s), true
	case fmt.Stringer:
		s, _ := scrub(t.String())
		return slog.StringValue(s), true
	case []byte:
		s, _ := scrub(string(t))
		return slog.StringValue(s), true
	case json.RawMessage:
		return scrubViaJSON(t)
	}
	b, err := json.Marshal(x)
	if err != nil {
		s, _ := scrub(fmt.Sprintf("%+v", x))
		return slog.StringValue(s), true
	}
	return scrubViaJSON(b)
}

func scrubViaJSON(b []byte) (slog.Value, bool) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		s, _ := scrub(string(b))
		return slog.StringValue(s), true
	}
	return slog.AnyValue(scrubJSON(v, false)), true
}

// scrubJSON masks sensitive keys and scrubs strings in a decoded JSON value. Numbers with 7 or more
// digits are masked like numbers in text.
func scrubJSON(v any, masked bool) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if masked || SensitiveKey(k) {
				if s, ok := x.(string); ok && !masked && codeKey(k) && looksLikeErrorCode(s) {
					continue
				}
				t[k] = Mask
				continue
			}
			t[k] = scrubJSON(x, false)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = scrubJSON(x, masked)
		}
		return t
	case string:
		s, _ := scrub(t)
		return s
	case float64:
		if t == float64(int64(t)) && (t >= 1e6 || t <= -1e6) {
			return Mask
		}
	}
	return v
}
