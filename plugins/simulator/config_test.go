package simulator

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

func TestParseConfig(t *testing.T) {
	full := `{"latency":"5ms","failure_rate":0.25,"receipt_delay":"200ms","receipt_failure_rate":0.5,
		"redelivery_delay":"2s","receive_window":8,"state_dir":"/var/lib/sim","seed":42,
		"replies":[{"to_suffix":"67","body":"STOP","after":"1s"}]}`
	tests := []struct {
		name string
		in   string
		want Config
		err  string // substring of the error; "" for success
	}{
		{name: "empty means defaults", in: "", want: DefaultConfig()},
		{name: "empty object means defaults", in: "{}", want: DefaultConfig()},
		{name: "full", in: full, want: Config{
			Latency: 5 * time.Millisecond, FailureRate: 0.25, ReceiptDelay: 200 * time.Millisecond,
			ReceiptFailureRate: 0.5, RedeliveryDelay: 2 * time.Second, ReceiveWindow: 8,
			StateDir: "/var/lib/sim", Seed: 42,
			Replies: []Reply{{ToSuffix: "67", Body: "STOP", After: time.Second}},
		}},
		{name: "seed zero is kept", in: `{"seed":0}`, want: func() Config { c := DefaultConfig(); c.Seed = 0; return c }()},
		{name: "unknown key", in: `{"latancy":"5ms"}`, err: `unknown key "latancy"`},
		{name: "unknown reply key", in: `{"replies":[{"suffix":"1","body":"x"}]}`, err: `unknown key "suffix"`},
		{name: "bad duration", in: `{"latency":"fast"}`, err: `latency: "fast" is not a duration`},
		{name: "number for duration", in: `{"latency":5}`, err: `latency: must be a string`},
		{name: "negative duration", in: `{"receipt_delay":"-1s"}`, err: "receipt_delay: must be between 0s and 24h0m0s"},
		{name: "zero redelivery", in: `{"redelivery_delay":"0s"}`, err: "redelivery_delay: must be more than 0s"},
		{name: "rate above one", in: `{"failure_rate":1.5}`, err: "failure_rate: must be between 0 and 1"},
		{name: "negative rate", in: `{"receipt_failure_rate":-0.1}`, err: "receipt_failure_rate: must be between 0 and 1"},
		{name: "string for rate", in: `{"failure_rate":"0.1"}`, err: "failure_rate: must be a number"},
		{name: "window zero", in: `{"receive_window":0}`, err: "receive_window: must be between 1 and 4096"},
		{name: "suffix not digits", in: `{"replies":[{"to_suffix":"6a","body":"STOP"}]}`, err: "replies[0].to_suffix: must be one or more digits"},
		{name: "empty reply body", in: `{"replies":[{"to_suffix":"1"}]}`, err: "replies[0].body: is empty"},
		{name: "bad reply delay", in: `{"replies":[{"to_suffix":"1","body":"x","after":"soon"}]}`, err: `replies[0].after: "soon" is not a duration`},
		{name: "not an object", in: `[1]`, err: "configuration is not a JSON object"},
		{name: "trailing data", in: `{} {}`, err: "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				if provider.ErrorCode(err) != provider.CodeInvalidConfig {
					t.Errorf("code %q, want %q", provider.ErrorCode(err), provider.CodeInvalidConfig)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestConfigureRefusalKeepsState checks that a refused configuration changes nothing.
func TestConfigureRefusalKeepsState(t *testing.T) {
	s := New()
	if err := s.Configure([]byte(`{"failure_rate":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Configure([]byte(`{"failure_rate":2}`)); err == nil {
		t.Fatal("Configure accepted failure_rate 2")
	}
	if s.cfg.FailureRate != 1 {
		t.Errorf("failure_rate is %v after a refused Configure, want 1", s.cfg.FailureRate)
	}
}
