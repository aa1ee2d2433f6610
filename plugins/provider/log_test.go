package provider

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestPluginLogHandler checks that a plugin's slog records come out in the JSON form go-plugin
// parses, so the host keeps their level.
func TestPluginLogHandler(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(pluginLogHandler(&buf, slog.LevelDebug))
	l.Warn("ledger slow", "ms", 12)
	l.Debug("tick")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	for i, want := range []string{"warn", "debug"} {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatal(err)
		}
		if m["@level"] != want {
			t.Errorf("line %d: @level %v, want %s", i, m["@level"], want)
		}
		ts, _ := m["@timestamp"].(string)
		if _, err := time.Parse(hclogTimeFormat, ts); err != nil {
			t.Errorf("line %d: @timestamp %q does not parse as go-plugin expects: %v", i, ts, err)
		}
	}
	if !strings.Contains(lines[0], `"@message":"ledger slow"`) || !strings.Contains(lines[0], `"ms":12`) {
		t.Errorf("line 0: %s", lines[0])
	}
}

func TestHostLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	h := newHostLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	h.Info("plugin started")                      // go-plugin's own chatter: demoted to Debug, dropped.
	h.Error("plugin process exited", "id", 1)     // go-plugin's own error: demoted to Warn.
	h.Named("smsproxy").Info("ledger opened")     // the plugin's own Info stays Info.
	h.Named("smsproxy").Debug("noise")            // below the handler's level.
	h.Named("smsproxy").Info("x", "plugin", "/p") // go-plugin's path attribute is renamed.
	out := buf.String()
	for _, want := range []string{`level=WARN msg="plugin process exited"`, `level=INFO msg="ledger opened"`, `plugin_path=/p`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"plugin started", "noise"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("%q logged:\n%s", unwanted, out)
		}
	}
	// go-plugin skips parsing plugin lines below the named logger's level.
	if got := h.Named("smsproxy").GetLevel(); got != hclog.Info {
		t.Errorf("GetLevel = %v, want Info", got)
	}
}

// TestPluginLogLinesLimited checks that a plugin spewing to stderr cannot flood the host's log.
func TestPluginLogLinesLimited(t *testing.T) {
	var buf bytes.Buffer
	h := newHostLogger(slog.New(slog.NewTextHandler(&buf, nil))).Named("smsproxy")
	for range 1000 {
		h.Info("spam")
	}
	if n := strings.Count(buf.String(), "msg=spam"); n > int(pluginLogBurst)+5 {
		t.Errorf("%d of 1000 lines logged in a burst, want at most about %v", n, pluginLogBurst)
	}
	l := &lineLimiter{tokens: 0, last: time.Unix(0, 0), dropped: 0}
	if ok, _ := l.allow(time.Unix(0, 0)); ok {
		t.Error("an empty bucket allowed a line")
	}
	ok, dropped := l.allow(time.Unix(1, 0))
	if !ok || dropped != 1 {
		t.Errorf("after a second: allowed %v, dropped %d; want true, 1", ok, dropped)
	}
}
