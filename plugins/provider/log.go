package provider

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// hclogTimeFormat is the timestamp layout go-plugin expects in a plugin's JSON log lines.
const hclogTimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// pluginLogRate and pluginLogBurst bound how many lines per second a plugin's stderr may put into
// the host's log; lines above it are counted and dropped.
const (
	pluginLogRate  = 20.0
	pluginLogBurst = 100.0
)

// hostLogger routes go-plugin's hclog output into slog. go-plugin's own messages are demoted one
// level (Info to Debug, Error to Warn), because the supervisor reports restarts itself; lines the
// plugin writes to stderr keep their level but are rate limited.
type hostLogger struct {
	l       *slog.Logger
	name    string
	implied []any
	// fromPlugin is set on the logger go-plugin uses for the plugin's stderr lines.
	fromPlugin bool
	limit      *lineLimiter
}

var _ hclog.Logger = (*hostLogger)(nil)

func newHostLogger(l *slog.Logger) *hostLogger {
	return &hostLogger{l: l, limit: &lineLimiter{tokens: pluginLogBurst}}
}

func (h *hostLogger) level(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.NoLevel:
		if h.fromPlugin {
			return slog.LevelInfo
		}
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	default:
		if h.fromPlugin {
			return slog.LevelError
		}
		return slog.LevelWarn
	}
}

// Log logs msg at level with hclog-style key/value args.
func (h *hostLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lv := h.level(level)
	ctx := context.Background()
	if !h.l.Enabled(ctx, lv) {
		return
	}
	if h.fromPlugin {
		ok, dropped := h.limit.allow(time.Now())
		if !ok {
			return
		}
		if dropped > 0 {
			h.l.Warn("plugin log lines dropped", "count", dropped)
		}
	}
	if len(h.implied) > 0 {
		args = append(append([]any{}, h.implied...), args...)
	}
	// go-plugin names the binary "plugin"; the host's logger already names the plugin so.
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "plugin" {
			args[i] = "plugin_path"
		}
	}
	h.l.Log(ctx, lv, msg, args...)
}

func (h *hostLogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hostLogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hostLogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hostLogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hostLogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hostLogger) enabled(level hclog.Level) bool {
	return h.l.Enabled(context.Background(), h.level(level))
}

func (h *hostLogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hostLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hostLogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hostLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hostLogger) IsError() bool { return h.enabled(hclog.Error) }

// ImpliedArgs returns the args added by With.
func (h *hostLogger) ImpliedArgs() []any { return h.implied }

// With returns a logger that adds args to every message.
func (h *hostLogger) With(args ...any) hclog.Logger {
	c := *h
	c.implied = append(append([]any{}, h.implied...), args...)
	return &c
}

// Name returns the logger's name.
func (h *hostLogger) Name() string { return h.name }

// Named returns a sub-logger. go-plugin names the logger for the plugin's stderr after the
// binary, and only that one.
func (h *hostLogger) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	c.fromPlugin = true
	return &c
}

// ResetNamed returns a sub-logger with exactly name.
func (h *hostLogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel does nothing: the slog handler decides.
func (h *hostLogger) SetLevel(hclog.Level) {}

// GetLevel returns the lowest hclog level the slog handler accepts, so that go-plugin skips
// parsing lines nobody would see.
func (h *hostLogger) GetLevel() hclog.Level {
	for _, lv := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if h.enabled(lv) {
			return lv
		}
	}
	return hclog.Off
}

// StandardLogger returns a log.Logger writing into this logger at Info.
func (h *hostLogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), h.level(hclog.Info))
}

// StandardWriter returns a writer for a log.Logger.
func (h *hostLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return slogWriter{h}
}

type slogWriter struct{ h *hostLogger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.h.Info(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// lineLimiter is a token bucket for log lines.
type lineLimiter struct {
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int
}

// allow reports whether a line may be logged now, and how many were dropped since the last one
// that was.
func (l *lineLimiter) allow(now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(pluginLogBurst, l.tokens+now.Sub(l.last).Seconds()*pluginLogRate)
	}
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		return false, 0
	}
	l.tokens--
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// pluginLogHandler returns a slog handler for a plugin process that writes hclog-compatible JSON
// lines to w, so the host logs each record at its level.
func pluginLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				if t, ok := a.Value.Any().(time.Time); ok {
					return slog.String("@timestamp", t.Format(hclogTimeFormat))
				}
			case slog.LevelKey:
				lv, _ := a.Value.Any().(slog.Level)
				return slog.String("@level", hclogLevelName(lv))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	})
}

func hclogLevelName(lv slog.Level) string {
	switch {
	case lv < slog.LevelDebug:
		return "trace"
	case lv < slog.LevelInfo:
		return "debug"
	case lv < slog.LevelWarn:
		return "info"
	case lv < slog.LevelError:
		return "warn"
	default:
		return "error"
	}
}
