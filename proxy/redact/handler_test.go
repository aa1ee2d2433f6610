package redact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

type submitRequest struct {
	To       string `json:"to"`
	From     string `json:"from"`
	Body     string `json:"body"`
	Segments int    `json:"segments"`
	Meta     map[string]string
}

type recipient string

func (r recipient) LogValue() slog.Value { return slog.StringValue("number " + string(r)) }

type account struct{ number string }

func (a account) String() string { return "account " + a.number }

func newLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

func TestHandlerRedacts(t *testing.T) {
	tests := []struct {
		name    string
		log     func(l *slog.Logger)
		secrets []string
		keep    []string
	}{
		{"sensitive keys of every type", func(l *slog.Logger) {
			l.Info("submit", "to", "+6591234567", "body", "Your transfer has arrived", "otp", 123456,
				"code", "482193", "api_key", "smsproxy-dev-key", "phone_number", 6591234567, "password", []byte("hunter2"))
		}, []string{"91234567", "transfer", "123456", "482193", "smsproxy-dev-key", "hunter2"}, []string{`"to":"[redacted]"`, `"otp":"[redacted]"`}},
		{"message and free text", func(l *slog.Logger) {
			l.Warn("cannot deliver to +65 9123 4567: Your code is 4821", "detail", "recipient +6598765432 opted out")
		}, []string{"9123 4567", "4821", "98765432"}, []string{"cannot deliver to"}},
		{"errors", func(l *slog.Logger) {
			l.Error("send failed", "err", fmt.Errorf("provider: %w", errors.New(`Post "https://api.x/send?To=%2B6591234567&Body=hi": EOF`)))
		}, []string{"91234567", "Body=hi"}, []string{"provider:", "EOF"}},
		{"groups and nested attrs", func(l *slog.Logger) {
			l.Info("receipt", slog.Group("msg", slog.String("id", "msg_01a21d47edb824e99584bf858ec9"),
				slog.Group("dest", slog.String("msisdn", "6591234567"), slog.String("note", "call 0171 1234567"))))
		}, []string{"91234567", "1234567"}, []string{"msg_01a21d47edb824e99584bf858ec9"}},
		{"a sensitive group is masked whole", func(l *slog.Logger) {
			l.Info("provider call", slog.Group("params", slog.String("From", "PAYLINK88"), slog.String("Body", "hello")))
		}, []string{"PAYLINK88", "hello"}, []string{`"params":"[redacted]"`}},
		{"WithAttrs and WithGroup", func(l *slog.Logger) {
			l.With("to", "+6591234567", "app", "dev").WithGroup("params").Info("x", "From", "PAYLINK88", "n", 3)
		}, []string{"91234567", "PAYLINK88"}, []string{`"app":"dev"`}},
		{"LogValuer", func(l *slog.Logger) {
			l.Info("x", "who", recipient("+6591234567"))
		}, []string{"91234567"}, []string{`"who":"number [redacted]"`}},
		{"Stringer", func(l *slog.Logger) {
			l.Info("x", "acct", account{"4111111111111111"})
		}, []string{"4111111111111111"}, []string{"account [redacted]"}},
		{"structs and maps through JSON", func(l *slog.Logger) {
			l.Info("x", "req", submitRequest{To: "+6591234567", From: "PAYLINK88", Body: "code 123456", Segments: 2,
				Meta: map[string]string{"Token": "abc", "note": "+6598765432"}},
				"m", map[string]any{"msisdn": 6591234567, "n": 6598765432, "count": 3})
		}, []string{"91234567", "123456", `"abc"`, "98765432"}, []string{`"from":"PAYLINK88"`, `"segments":2`, `"count":3`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(newLogger(&buf))
			out := buf.String()
			for _, s := range tt.secrets {
				if strings.Contains(out, s) {
					t.Errorf("log line leaks %q: %s", s, out)
				}
			}
			for _, s := range tt.keep {
				if !strings.Contains(out, s) {
					t.Errorf("log line lost %q: %s", s, out)
				}
			}
		})
	}
}

func TestHandlerKeepsOperationalValues(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 11, 27, 10, 15, 30, 123456789, time.UTC)
	newLogger(&buf).Info("policy swapped", "old_revision", "0443c8ba8d72", "new_revision", "9f1c2ab3d4e5",
		"message_id", "msg_01a21d47edb824e99584bf858ec9", "provider", "simulator", "country", "SG",
		"code", "otp_resend_too_soon", "error_code", 21610, "status_code", 429, "count", 12345678,
		"took", 1234567891*time.Nanosecond, "at", at, "listen", "127.0.0.1:8080",
		"addr", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9090}, "ok", true, "ratio", 0.25)
	want := `"msg":"policy swapped","old_revision":"0443c8ba8d72","new_revision":"9f1c2ab3d4e5",` +
		`"message_id":"msg_01a21d47edb824e99584bf858ec9","provider":"simulator","country":"SG",` +
		`"code":"otp_resend_too_soon","error_code":21610,"status_code":429,"count":12345678,"took":1234567891,` +
		`"at":"2026-11-27T10:15:30.123456789Z","listen":"127.0.0.1:8080","addr":"10.0.0.1:9090","ok":true,"ratio":0.25}`
	if out := buf.String(); !strings.HasSuffix(strings.TrimSpace(out), want) {
		t.Fatalf("got  %s\nwant …%s", out, want)
	}
}

// countingHandler records what reaches it.
type countingHandler struct {
	slog.Handler
	records []slog.Record
}

func (c *countingHandler) Handle(_ context.Context, r slog.Record) error {
	c.records = append(c.records, r)
	return nil
}

func TestHandlerPassesLevelAndCleanRecords(t *testing.T) {
	next := &countingHandler{Handler: slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn})}
	h := New(next)
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Fatal("Enabled does not follow the wrapped handler")
	}
	if New(h) != h {
		t.Fatal("wrapping twice scrubs twice")
	}
	l := slog.New(h)
	l.Warn("clean", "n", 1)
	l.Warn("leaky", "to", "+6591234567")
	if len(next.records) != 2 || next.records[0].NumAttrs() != 1 || next.records[1].NumAttrs() != 1 {
		t.Fatalf("records %v", next.records)
	}
	next.records[1].Attrs(func(a slog.Attr) bool {
		if a.Value.String() != Mask {
			t.Errorf("attr %v reached the handler", a)
		}
		return true
	})
}
