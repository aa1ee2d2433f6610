package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// Limits of the configuration.
const (
	maxDuration      = 24 * time.Hour
	maxReceiveWindow = 4096
	maxReplies       = 1000
)

// Config is the simulator's configuration. Its JSON form uses Go duration strings:
//
//	{"latency":"5ms","failure_rate":0.0,"receipt_delay":"200ms","receipt_failure_rate":0.0,
//	 "redelivery_delay":"1s","receive_window":64,"state_dir":"/path","seed":1,
//	 "replies":[{"to_suffix":"67","body":"STOP","after":"1s"}]}
type Config struct {
	// Latency is added to every Send batch, as a remote API's round trip would be.
	Latency time.Duration
	// FailureRate is the share of new messages refused with "sim_failure" (retryable), in [0, 1].
	FailureRate float64
	// ReceiptDelay is the time from acceptance to the delivery receipt.
	ReceiptDelay time.Duration
	// ReceiptFailureRate is the share of receipts that report "undeliverable" with code
	// "sim_undeliverable", in [0, 1].
	ReceiptFailureRate float64
	// RedeliveryDelay is how long an event that was not acknowledged waits before it is delivered
	// again. 0 means 1s.
	RedeliveryDelay time.Duration
	// ReceiveWindow is how many events one Receive keeps in flight at once. 0 means 64.
	ReceiveWindow int
	// StateDir, if set, holds the ledger that lets a restarted simulator recognise idempotency keys
	// and deliver receipts that were not acknowledged.
	StateDir string
	// Seed makes failures and receipt outcomes reproducible. Absent means 1.
	Seed int64
	// Replies are scripted inbound messages.
	Replies []Reply
}

// Reply scripts an inbound message: every accepted message to a number ending in ToSuffix is
// answered with Body, After the acceptance.
type Reply struct {
	ToSuffix string
	Body     string
	After    time.Duration
}

// DefaultConfig returns the configuration New starts with: no latency, no failures, immediate
// receipts, no ledger, seed 1.
func DefaultConfig() Config {
	return Config{RedeliveryDelay: time.Second, ReceiveWindow: 64, Seed: 1}
}

type jsonConfig struct {
	Latency            string      `json:"latency"`
	FailureRate        float64     `json:"failure_rate"`
	ReceiptDelay       string      `json:"receipt_delay"`
	ReceiptFailureRate float64     `json:"receipt_failure_rate"`
	RedeliveryDelay    string      `json:"redelivery_delay"`
	ReceiveWindow      *int        `json:"receive_window"`
	StateDir           string      `json:"state_dir"`
	Seed               *int64      `json:"seed"`
	Replies            []jsonReply `json:"replies"`
}

type jsonReply struct {
	ToSuffix string `json:"to_suffix"`
	Body     string `json:"body"`
	After    string `json:"after"`
}

// configError is an invalid_config error.
func configError(format string, args ...any) error {
	return &provider.Error{Code: provider.CodeInvalidConfig, Message: "simulator: " + fmt.Sprintf(format, args...)}
}

// ParseConfig decodes and validates the JSON configuration. Empty input means DefaultConfig.
// Unknown keys are refused.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, nil
	}
	var j jsonConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Config{}, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, configError("trailing data after the configuration object")
	}
	var err error
	if cfg.Latency, err = parseDuration("latency", j.Latency, 0); err != nil {
		return Config{}, err
	}
	if cfg.ReceiptDelay, err = parseDuration("receipt_delay", j.ReceiptDelay, 0); err != nil {
		return Config{}, err
	}
	if cfg.RedeliveryDelay, err = parseDuration("redelivery_delay", j.RedeliveryDelay, cfg.RedeliveryDelay); err != nil {
		return Config{}, err
	}
	cfg.FailureRate = j.FailureRate
	cfg.ReceiptFailureRate = j.ReceiptFailureRate
	if j.ReceiveWindow != nil {
		cfg.ReceiveWindow = *j.ReceiveWindow
	}
	cfg.StateDir = j.StateDir
	if j.Seed != nil {
		cfg.Seed = *j.Seed
	}
	for i, r := range j.Replies {
		after, err := parseDuration(fmt.Sprintf("replies[%d].after", i), r.After, 0)
		if err != nil {
			return Config{}, err
		}
		cfg.Replies = append(cfg.Replies, Reply{ToSuffix: r.ToSuffix, Body: r.Body, After: after})
	}
	return cfg, cfg.Validate()
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"latency", c.Latency}, {"receipt_delay", c.ReceiptDelay}, {"redelivery_delay", c.RedeliveryDelay}} {
		if d.v < 0 || d.v > maxDuration {
			return configError("%s: must be between 0s and %s", d.name, maxDuration)
		}
	}
	if c.RedeliveryDelay == 0 {
		return configError("redelivery_delay: must be more than 0s")
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"failure_rate", c.FailureRate}, {"receipt_failure_rate", c.ReceiptFailureRate}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			return configError("%s: must be between 0 and 1", r.name)
		}
	}
	if c.ReceiveWindow < 1 || c.ReceiveWindow > maxReceiveWindow {
		return configError("receive_window: must be between 1 and %d", maxReceiveWindow)
	}
	if len(c.Replies) > maxReplies {
		return configError("replies: at most %d", maxReplies)
	}
	for i, r := range c.Replies {
		switch {
		case r.ToSuffix == "" || strings.Trim(r.ToSuffix, "0123456789") != "":
			return configError("replies[%d].to_suffix: must be one or more digits", i)
		case r.Body == "":
			return configError("replies[%d].body: is empty", i)
		case r.After < 0 || r.After > maxDuration:
			return configError("replies[%d].after: must be between 0s and %s", i, maxDuration)
		}
	}
	return nil
}

func parseDuration(name, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, configError("%s: %q is not a duration such as \"250ms\" or \"2s\"", name, s)
	}
	if d < 0 || d > maxDuration {
		return 0, configError("%s: must be between 0s and %s", name, maxDuration)
	}
	return d, nil
}

// decodeError rewrites encoding/json's errors into invalid_config errors that name the key.
func decodeError(err error) error {
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return configError("unknown key %s", f)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return configError("%s: must be a %s", te.Field, jsonType(te.Type.Kind().String()))
	}
	return configError("configuration is not a JSON object: %v", err)
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "float64", "int", "int64", "ptr":
		return "number"
	case "slice":
		return "list"
	case "struct":
		return "JSON object"
	}
	return kind
}
