package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// DefaultSenders are sender IDs of the kind each country accepts: a registered alphanumeric ID where
// that is the norm, a long code for the US (no alphanumeric senders there) and a short code for
// Malaysia. They are placeholders: pass the senders registered in the region's data.
var DefaultSenders = map[string]string{
	"SG": "PAYLINK88",
	"US": "+12015550123",
	"GB": "PAYLINK",
	"DE": "PAYLINK",
	"ID": "PAYLINK",
	"MY": "66300",
}

// MinBodyLen is the shortest body the generator can build: "Your code is " and six digits.
const MinBodyLen = len(bodyLead) + codeLen

const (
	bodyLead   = "Your code is "
	codeLen    = 6
	bodyFiller = ". Valid for 5 mins. For security, do not share it with anyone. Reply STOP to opt out"
)

// PayloadConfig says what the generated requests look like.
type PayloadConfig struct {
	// Countries are the recipients' countries, taken in turn; see SupportedCountries.
	Countries []string
	// Senders maps a country to its "from"; countries missing here use DefaultSenders.
	Senders map[string]string
	// Categories are drawn at random for each request ("transaction" when empty).
	Categories []string
	// BodyLen is the exact body length in characters (GSM-7 text); at least MinBodyLen.
	BodyLen int
	// Template, when set, sends {"template":{"id":Template,"locale":"en","params":{"code":...}}}
	// instead of a body.
	Template string
	// Devices, when positive, adds a "device_id" drawn from that many devices.
	Devices int
}

// Validate reports the first problem in c, with a stable code.
func (c PayloadConfig) Validate() error {
	if len(c.Countries) == 0 {
		return errors.New("invalid_countries: at least one country is required")
	}
	for _, cc := range c.Countries {
		if _, ok := mobileRanges[strings.ToUpper(cc)]; !ok {
			return fmt.Errorf("unknown_country: no number ranges for %q (supported: %s)", cc, strings.Join(SupportedCountries(), ","))
		}
	}
	if c.Template == "" && c.BodyLen < MinBodyLen {
		return fmt.Errorf("invalid_body_len: %d is shorter than the minimum of %d", c.BodyLen, MinBodyLen)
	}
	if c.Devices < 0 {
		return fmt.Errorf("invalid_devices: %d is negative", c.Devices)
	}
	for _, cat := range c.Categories {
		if cat == "" {
			return errors.New("invalid_category: empty category")
		}
	}
	return nil
}

// Generator builds request bodies. It is safe for concurrent use as long as each goroutine passes its
// own random source.
type Generator struct {
	spaces     []*numberSpace
	from       [][]byte // JSON-encoded sender per country, in Countries order
	categories [][]byte // JSON-encoded
	template   []byte   // JSON-encoded template id, or nil
	bodyLen    int
	devices    int
}

// NewGenerator validates c and prepares a generator whose recipients are a scattered walk seeded by seed.
func NewGenerator(c PayloadConfig, seed uint64) (*Generator, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{bodyLen: c.BodyLen, devices: c.Devices}
	for i, cc := range c.Countries {
		s, err := newNumberSpace(cc, seed+uint64(i))
		if err != nil {
			return nil, err
		}
		g.spaces = append(g.spaces, s)
		from, ok := c.Senders[s.country]
		if !ok {
			from = DefaultSenders[s.country]
		}
		g.from = append(g.from, mustJSON(from))
	}
	cats := c.Categories
	if len(cats) == 0 {
		cats = []string{"transaction"}
	}
	for _, cat := range cats {
		g.categories = append(g.categories, mustJSON(cat))
	}
	if c.Template != "" {
		g.template = mustJSON(c.Template)
	}
	return g, nil
}

// mustJSON encodes a string; encoding a string cannot fail.
func mustJSON(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// Append appends the JSON body of request seq to dst. Countries are taken in turn, so the numbers of
// one country are distinct for the first millions of requests of a run.
func (g *Generator) Append(dst []byte, seq uint64, rng *rand.Rand) []byte {
	ci := int(seq % uint64(len(g.spaces)))
	dst = append(dst, `{"to":"`...)
	dst = g.spaces[ci].appendNumber(dst, seq/uint64(len(g.spaces)))
	dst = append(dst, `","from":`...)
	dst = append(dst, g.from[ci]...)
	dst = append(dst, `,"category":`...)
	dst = append(dst, g.categories[rng.IntN(len(g.categories))]...)
	code := rng.Uint64N(1_000_000)
	if g.template != nil {
		dst = append(dst, `,"template":{"id":`...)
		dst = append(dst, g.template...)
		dst = append(dst, `,"locale":"en","params":{"code":"`...)
		dst = appendDigits(dst, code, codeLen)
		dst = append(dst, `"}}`...)
	} else {
		dst = append(dst, `,"body":"`+bodyLead...)
		dst = appendDigits(dst, code, codeLen)
		for n := g.bodyLen - MinBodyLen; n > 0; {
			k := min(n, len(bodyFiller))
			dst = append(dst, bodyFiller[:k]...)
			n -= k
		}
		dst = append(dst, '"')
	}
	if g.devices > 0 {
		dst = append(dst, `,"device_id":"dev-`...)
		dst = appendDigits(dst, rng.Uint64N(uint64(g.devices)), 8)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// ParseSenders parses "SG=PAYLINK88,US=+12015550123": a comma-separated list of country=sender.
// A single value without "=" applies to every country. An empty string yields no overrides.
func ParseSenders(s string, countries []string) (map[string]string, error) {
	out := make(map[string]string)
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	if !strings.Contains(s, "=") {
		for _, c := range countries {
			out[strings.ToUpper(c)] = strings.TrimSpace(s)
		}
		return out, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		cc, from, ok := strings.Cut(part, "=")
		cc, from = strings.ToUpper(strings.TrimSpace(cc)), strings.TrimSpace(from)
		if !ok || cc == "" || from == "" {
			return nil, fmt.Errorf("invalid_senders: %q is not country=sender", part)
		}
		if !slices.Contains(SupportedCountries(), cc) {
			return nil, fmt.Errorf("unknown_country: sender given for %q", cc)
		}
		out[cc] = from
	}
	return out, nil
}

// SplitList splits a comma-separated flag value, trimming spaces and dropping empty items.
func SplitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}
