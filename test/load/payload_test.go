package load

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// request is the proxy's native request as an app sends it.
type request struct {
	To       string `json:"to"`
	From     string `json:"from"`
	Body     string `json:"body"`
	Category string `json:"category"`
	DeviceID string `json:"device_id"`
	Template *struct {
		ID     string            `json:"id"`
		Locale string            `json:"locale"`
		Params map[string]string `json:"params"`
	} `json:"template"`
}

func TestGeneratorRequests(t *testing.T) {
	cfg := PayloadConfig{
		Countries:  []string{"SG", "US", "GB", "DE", "ID", "MY"},
		Senders:    map[string]string{"GB": `PAY"LINK`},
		Categories: []string{"otp", "transaction"},
		BodyLen:    160,
		Devices:    3,
	}
	g, err := NewGenerator(cfg, 9)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	cats := map[string]int{}
	devices := map[string]bool{}
	var buf []byte
	for seq := range uint64(600) {
		buf = g.Append(buf[:0], seq, rng)
		var r request
		dec := json.NewDecoder(bytes.NewReader(buf))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("request %d is not valid JSON: %v\n%s", seq, err, buf)
		}
		country := cfg.Countries[seq%6]
		checkNumber(t, country, r.To)
		wantFrom := DefaultSenders[country]
		if country == "GB" {
			wantFrom = `PAY"LINK`
		}
		if r.From != wantFrom {
			t.Fatalf("request %d to %s: from %q, want %q", seq, country, r.From, wantFrom)
		}
		if len(r.Body) != 160 || !strings.HasPrefix(r.Body, "Your code is ") {
			t.Fatalf("request %d: body of %d characters %q, want 160 starting with the code", seq, len(r.Body), r.Body)
		}
		if !strings.HasPrefix(r.DeviceID, "dev-") {
			t.Fatalf("request %d: device_id %q", seq, r.DeviceID)
		}
		cats[r.Category]++
		devices[r.DeviceID] = true
	}
	if len(cats) != 2 || cats["otp"] == 0 || cats["transaction"] == 0 {
		t.Errorf("categories drawn %v, want both otp and transaction", cats)
	}
	if len(devices) != 3 {
		t.Errorf("%d distinct devices, want 3", len(devices))
	}
}

func TestDefaultSendersOfNumberKindAreValid(t *testing.T) {
	for country, from := range DefaultSenders {
		if strings.HasPrefix(from, "+") {
			n, err := phonenumbers.Parse(from, "")
			if err != nil || !phonenumbers.IsValidNumberForRegion(n, country) {
				t.Errorf("%s default sender %q is not a valid number of the country", country, from)
			}
		}
	}
}

func TestGeneratorGolden(t *testing.T) {
	var out bytes.Buffer
	for _, cfg := range []PayloadConfig{
		{Countries: []string{"SG", "US"}, BodyLen: MinBodyLen},
		{Countries: []string{"DE"}, BodyLen: 70, Categories: []string{"alert"}},
		{Countries: []string{"MY", "ID"}, Template: "otp_login", Devices: 100, Categories: []string{"otp"}},
	} {
		g, err := NewGenerator(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for seq := range uint64(3) {
			out.Write(g.Append(nil, seq, rng))
			out.WriteByte('\n')
		}
	}
	golden(t, "requests.golden", out.Bytes())
}

func TestPayloadConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  PayloadConfig
		code string
	}{
		{"ok", PayloadConfig{Countries: []string{"SG"}, BodyLen: 19}, ""},
		{"template needs no body length", PayloadConfig{Countries: []string{"SG"}, Template: "t"}, ""},
		{"no country", PayloadConfig{BodyLen: 60}, "invalid_countries"},
		{"unknown country", PayloadConfig{Countries: []string{"FR"}, BodyLen: 60}, "unknown_country"},
		{"body too short", PayloadConfig{Countries: []string{"SG"}, BodyLen: 18}, "invalid_body_len"},
		{"negative devices", PayloadConfig{Countries: []string{"SG"}, BodyLen: 60, Devices: -1}, "invalid_devices"},
		{"empty category", PayloadConfig{Countries: []string{"SG"}, BodyLen: 60, Categories: []string{""}}, "invalid_category"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.code+":") {
				t.Fatalf("Validate() = %v, want code %s", err, tt.code)
			}
		})
	}
}

func TestParseSenders(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
		code string
	}{
		{in: "", want: map[string]string{}},
		{in: "SG=PAYLINK88, us=+12015550123", want: map[string]string{"SG": "PAYLINK88", "US": "+12015550123"}},
		{in: "ACME", want: map[string]string{"SG": "ACME", "GB": "ACME"}},
		{in: "SG=", code: "invalid_senders"},
		{in: "SG=A,XX=B", code: "unknown_country"},
	}
	for _, tt := range tests {
		got, err := ParseSenders(tt.in, []string{"SG", "gb"})
		if tt.code != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.code+":") {
				t.Errorf("ParseSenders(%q) error = %v, want code %s", tt.in, err, tt.code)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("ParseSenders(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("ParseSenders(%q)[%s] = %q, want %q", tt.in, k, got[k], v)
			}
		}
	}
}

func BenchmarkGeneratorAppend(b *testing.B) {
	g, err := NewGenerator(PayloadConfig{Countries: []string{"SG", "US", "GB", "DE", "ID", "MY"}, BodyLen: 70}, 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 512)
	var seq uint64
	for b.Loop() {
		buf = g.Append(buf[:0], seq, rng)
		seq++
	}
}
