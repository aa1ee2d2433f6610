package policy

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/smsproxy/smsproxy/policies"
	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/regions"
)

// regionBundle is the embedded policy pack with the data of one embedded region.
func regionBundle(t testing.TB, region string) Bundle {
	t.Helper()
	r, err := config.LoadRegion(regions.FS, region)
	if err != nil {
		t.Fatalf("LoadRegion(%s): %v", region, err)
	}
	b, err := LoadBundle(policies.FS, map[string]any{"region": r.Data})
	if err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	return b
}

func compileRegion(t testing.TB, region string) *Prepared {
	t.Helper()
	p, err := Compile(context.Background(), regionBundle(t, region))
	if err != nil {
		t.Fatalf("Compile(%s): %v", region, err)
	}
	return p
}

// TestPackCompilesForEveryRegion loads every region under regions/ with config.LoadRegion, compiles the
// pack against it (which runs the Rego tests) and checks that the region serves its own markets and
// names the serving region for the others.
func TestPackCompilesForEveryRegion(t *testing.T) {
	dirs, err := fs.ReadDir(regions.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range dirs {
		if d.IsDir() {
			names = append(names, d.Name())
		}
	}
	// served are one registered market per region; elsewhere a market another region serves.
	cases := map[string]struct {
		served    *Input
		elsewhere string // country code
		serving   string // region named in the refusal
	}{
		"dev": {served: otpSG(), elsewhere: "FR", serving: ""},
		"eu":  {served: regionTxn("GB", "PAYLINK", "alphanumeric", "+447700900123"), elsewhere: "SG", serving: "sg"},
		"us":  {served: regionTxn("US", "+14155550100", "long_code", "+14155550123"), elsewhere: "DE", serving: "eu"},
		"sg":  {served: regionTxn("SG", "PAYLINK88", "alphanumeric", "+6591234567"), elsewhere: "US", serving: "us"},
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			c, ok := cases[name]
			if !ok {
				t.Fatalf("region %s has no case in this test; add one", name)
			}
			p := compileRegion(t, name)
			d, err := p.Decide(context.Background(), c.served)
			if err != nil || !d.Allow {
				t.Fatalf("served market: %+v, %v", d, err)
			}
			out := regionTxn(c.elsewhere, "PAYLINK", "alphanumeric", "+33612345678")
			d, err = p.Decide(context.Background(), out)
			if err != nil || d.Allow || len(d.Reasons) != 1 || d.Reasons[0].Code != "country_not_served" {
				t.Fatalf("market %s: %+v, %v", c.elsewhere, d, err)
			}
			if c.serving != "" && !strings.Contains(d.Reasons[0].Message, `region "`+c.serving+`"`) {
				t.Errorf("refusal does not name region %s: %s", c.serving, d.Reasons[0].Message)
			}
		})
	}
	if len(names) < 4 {
		t.Errorf("only regions %v", names)
	}
}

// regionTxn is a transaction message from the app "payments", which the real regions assign their senders to.
func regionTxn(country, from, kind, to string) *Input {
	return &Input{App: "payments", Now: now, Message: MessageInput{
		To: to, Country: country, From: from, SenderKind: kind, Category: "transaction",
		Body: "Your transfer PL20241208009 of 250.00 SGD has arrived.", Encoding: "GSM-7", Segments: 1,
	}, Facts: Facts{LocalHour: 12, LocalWeekday: 4, TimeZone: "UTC", Consents: consent("transaction", "contract", false)}}
}

// devData is the dev region's data as the proxy loads it, under data.region.
func devData() map[string]any {
	r, err := config.LoadRegion(regions.FS, "dev")
	if err != nil {
		panic("embedded dev region: " + err.Error())
	}
	return map[string]any{"region": r.Data}
}

func packFS() fs.FS { return policies.FS }

// TestPackRefusesCardNumbersWhenRegionDataIsSilent compiles the pack with the sg region's data minus
// its content actions, as a region file cut short would give it: a card number or an IBAN in a body
// is refused, not let through unmasked.
func TestPackRefusesCardNumbersWhenRegionDataIsSilent(t *testing.T) {
	r, err := config.LoadRegion(regions.FS, "sg")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, body, want string }{
		{"card", "Card 4111 1111 1111 1111 charged.", "content_card_number"},
		{"iban", "Pay DE89 3704 0044 0532 0130 00 today.", "content_account_number"},
	} {
		for _, strip := range []string{"actions", "section"} {
			t.Run(c.name+"/"+strip, func(t *testing.T) {
				data := map[string]any{}
				for k, v := range r.Data {
					data[k] = v
				}
				if strip == "section" {
					delete(data, "content")
				} else {
					content := map[string]any{}
					for k, v := range r.Data["content"].(map[string]any) {
						content[k] = v
					}
					delete(content, "card_numbers")
					delete(content, "ibans")
					data["content"] = content
				}
				b, err := LoadBundle(policies.FS, map[string]any{"region": data})
				if err != nil {
					t.Fatal(err)
				}
				p, err := Compile(context.Background(), b)
				if err != nil {
					t.Fatal(err)
				}
				in := regionTxn("SG", "PAYLINK88", "alphanumeric", "+6591234567")
				in.Message.Body = c.body
				d, err := p.Decide(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allow || !hasReason(d, c.want) {
					t.Fatalf("allow=%v reasons=%v, want a refusal with %s", d.Allow, d.Reasons, c.want)
				}
			})
		}
	}
}

// hasReason reports whether d refuses with the given reason code.
func hasReason(d Decision, code string) bool {
	for _, r := range d.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}
