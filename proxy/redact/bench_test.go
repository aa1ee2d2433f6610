package redact

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// logTypical writes the kind of line the proxy writes most: a few ids, a provider, a count, a duration.
func logTypical(l *slog.Logger) {
	l.Info("outbox rows handed to the dispatcher", "message_id", "msg_01a21d47edb824e99584bf858ec9",
		"provider", "simulator", "count", 16, "took", 350*time.Microsecond, "revision", "0443c8ba8d72")
}

func BenchmarkLogJSON(b *testing.B) {
	l := slog.New(slog.NewJSONHandler(io.Discard, nil))
	b.ReportAllocs()
	for b.Loop() {
		logTypical(l)
	}
}

func BenchmarkLogJSONRedacted(b *testing.B) {
	l := slog.New(New(slog.NewJSONHandler(io.Discard, nil)))
	b.ReportAllocs()
	for b.Loop() {
		logTypical(l)
	}
}

// BenchmarkLogJSONRedactedLeaky is a line that needs rewriting: a number in the message and a masked key.
func BenchmarkLogJSONRedactedLeaky(b *testing.B) {
	l := slog.New(New(slog.NewJSONHandler(io.Discard, nil)))
	b.ReportAllocs()
	for b.Loop() {
		l.Warn("cannot deliver to +6591234567", "to", "+6591234567", "provider", "simulator", "count", 16)
	}
}

func BenchmarkScrubClean(b *testing.B) {
	s := "provider simulator failed: unavailable after 3 attempts (msg_01a21d47edb824e99584bf858ec9)"
	b.ReportAllocs()
	for b.Loop() {
		Scrub(s)
	}
}

func BenchmarkScrubLeaky(b *testing.B) {
	s := `Post "https://api.example.com/send?To=%2B6591234567&Body=Your+code+is+123456": EOF`
	b.ReportAllocs()
	for b.Loop() {
		Scrub(s)
	}
}
