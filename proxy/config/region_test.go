package config

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/smsproxy/smsproxy/regions"
)

// TestEmbeddedRegionsLoad loads every region shipped under regions/.
func TestEmbeddedRegionsLoad(t *testing.T) {
	dirs, err := fs.ReadDir(regions.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		seen++
		t.Run(d.Name(), func(t *testing.T) {
			r, err := LoadRegion(regions.FS, d.Name())
			if err != nil {
				t.Fatal(err)
			}
			if r.Name != d.Name() || len(r.Countries) == 0 || len(r.Templates) == 0 {
				t.Errorf("region %+v", r)
			}
			// A region never both serves a country and names another region for it.
			res, _ := r.Data["residency"].(map[string]any)
			for cc := range r.Countries {
				if _, ok := res[cc]; ok {
					t.Errorf("%s is served here and listed under residency", cc)
				}
			}
		})
	}
	if seen < 4 {
		t.Errorf("only %d regions", seen)
	}
}

// TestComplianceKeysErrorsNameFileAndKey feeds one mistake at a time in the compliance pack's keys and
// expects an error naming the file and the key.
func TestComplianceKeysErrorsNameFileAndKey(t *testing.T) {
	const base = "region: x\nproviders:\n  sim: {plugin: simulator}\ncountries:\n  SG: {providers: [sim]}\n"
	const tpl = "templates:\n  - {id: stop_confirmation, category: transaction, locales: {en: bye}}\n"
	country := func(extra string) string {
		return strings.Replace(base, "{providers: [sim]}", "{providers: [sim], "+extra+"}", 1)
	}
	cases := []struct {
		name, region, want string
	}{
		{"gdpr not bool", country("gdpr: sometimes"), "x/region.yaml: countries.SG.gdpr: must be a bool"},
		{"templates_required category", country("templates_required: [promo]"), "x/region.yaml: countries.SG.templates_required: [0]: promo is not a category"},
		{"quiet hour out of range", country("quiet_hours: {start: 25, end: 8}"), "x/region.yaml: countries.SG.quiet_hours: start: must be an hour"},
		{"quiet hours unknown key", country("quiet_hours: {start: 21, end: 8, tz: x}"), "x/region.yaml: countries.SG.quiet_hours: tz: unknown key"},
		{"unknown time zone", country("time_zone: Mars/Olympus"), `x/region.yaml: countries.SG.time_zone: "Mars/Olympus" is not a known IANA time zone`},
		{"unknown mobile time zone", country("mobile_time_zones: [Asia/Jakarta, Mars/Olympus]"), `x/region.yaml: countries.SG.mobile_time_zones: [1]: "Mars/Olympus" is not a known IANA time zone`},
		{"sender kind", country("sender_registration: {pigeon: required}"), "x/region.yaml: countries.SG.sender_registration: pigeon: not a sender kind"},
		{"registration value", country("sender_registration: {alphanumeric: maybe}"), `x/region.yaml: countries.SG.sender_registration: alphanumeric: must be "required" or "optional"`},
		{"unknown limit", base + "limits:\n  per_moon: {rate: 1, period: 1s}\n", "x/region.yaml: limits.per_moon: unknown limit"},
		{"prefix digits", base + "limits:\n  velocity_prefix: {rate: 1, period: 1s}\n", "x/region.yaml: limits.velocity_prefix.digits: must be 1 to 14"},
		{"window rate", base + "limits:\n  otp_per_device: {rate: 17, period: 24h, window: true}\n", "x/region.yaml: limits.otp_per_device.rate: a window limit allows at most 16 events per period, got 17"},
		{"window burst", base + "limits:\n  otp_per_device: {rate: 3, period: 24h, burst: 2, window: true}\n", "x/region.yaml: limits.otp_per_device.burst: a window limit has no burst"},
		{"window not bool", base + "limits:\n  otp_per_device: {rate: 3, period: 24h, window: \"yes\"}\n", "x/region.yaml: limits.otp_per_device.window: must be a bool, got yes"},
		{"digits elsewhere", base + "limits:\n  app: {rate: 1, period: 1s, digits: 3}\n", "x/region.yaml: limits.app.digits: only velocity_prefix"},
		{"residency of a served country", base + "residency: {SG: sg}\n", "x/region.yaml: residency.SG: the country is served here"},
		{"residency region name", base + "residency: {US: US-East}\n", `x/region.yaml: residency.US: must name a region, got "US-East"`},
		{"sender country not served", base + "senders:\n  US: {X: {apps: [a]}}\n", "x/region.yaml: senders.US: the country is not under countries"},
		{"sender without apps", base + "senders:\n  SG: {PAYLINK88: {apps: []}}\n", "x/region.yaml: senders.SG.PAYLINK88.apps: a sender must be assigned"},
		{"sender unknown key", base + "senders:\n  SG: {PAYLINK88: {apps: [a], uen: 1}}\n", "x/region.yaml"},
		{"sender campaign", base + "senders:\n  SG: {PAYLINK88: {apps: [a], campaign: CNONE}}\n", `x/region.yaml: senders.SG.PAYLINK88.campaign: campaign "CNONE" is not under us_10dlc.campaigns`},
		{"short code categories", base + "senders:\n  SG: {\"74688\": {apps: [a], categories: [promo]}}\n", `x/region.yaml: senders.SG.74688.categories[0]: "promo" is not a category`},
		{"empty generic id", base + "generic_sender_ids: [OTP, \" \"]\n", "x/region.yaml: generic_sender_ids: must not hold an empty sender ID"},
		{"brand id", base + "us_10dlc:\n  brands: {X1: {name: a, trust_score: 50, daily_cap: 1}}\n", "x/region.yaml: us_10dlc.brands.X1: TCR brand ids start with B"},
		{"brand cap", base + "us_10dlc:\n  brands: {B1: {name: a, trust_score: 50, daily_cap: 0}}\n", "x/region.yaml: us_10dlc.brands.B1.daily_cap: must be positive"},
		{"trust score", base + "us_10dlc:\n  brands: {B1: {name: a, trust_score: 101, daily_cap: 1}}\n", "x/region.yaml: us_10dlc.brands.B1.trust_score: must be 0 to 100"},
		{"campaign brand", base + "us_10dlc:\n  campaigns: {C1: {brand: B9, use_case: MIXED, per_minute: 75}}\n  use_cases: {MIXED: [otp]}\n", `x/region.yaml: us_10dlc.campaigns.C1.brand: brand "B9" is not under us_10dlc.brands`},
		{"campaign use case", base + "us_10dlc:\n  brands: {B1: {name: a, trust_score: 50, daily_cap: 1}}\n  campaigns: {C1: {brand: B1, use_case: POLLS, per_minute: 75}}\n", `x/region.yaml: us_10dlc.campaigns.C1.use_case: use case "POLLS" is not under us_10dlc.use_cases`},
		{"campaign id", base + "us_10dlc:\n  brands: {B1: {name: a, trust_score: 50, daily_cap: 1}}\n  campaigns: {K1: {brand: B1, use_case: MIXED, per_minute: 75}}\n  use_cases: {MIXED: [otp]}\n", "x/region.yaml: us_10dlc.campaigns.K1: TCR campaign ids start with C"},
		{"campaign rate", base + "us_10dlc:\n  brands: {B1: {name: a, trust_score: 50, daily_cap: 1}}\n  campaigns: {C1: {brand: B1, use_case: MIXED, per_minute: 0}}\n  use_cases: {MIXED: [otp]}\n", "x/region.yaml: us_10dlc.campaigns.C1.per_minute: must be positive"},
		{"use case category", base + "us_10dlc:\n  use_cases: {MIXED: [otp, promo]}\n", `x/region.yaml: us_10dlc.use_cases.MIXED[1]: "promo" is not a category`},
		{"confirmation template", base + "opt_out:\n  confirmation_templates: [stop_confirmation, help_reply]\n", `x/region.yaml: opt_out.confirmation_templates[1]: template "help_reply" is not in templates.yaml`},
		{"exception category", base + "opt_out:\n  exceptions: {promo: because}\n", "x/region.yaml: opt_out.exceptions.promo: not a category"},
		{"exception without reason", base + "opt_out:\n  exceptions: {alert: \" \"}\n", "x/region.yaml: opt_out.exceptions.alert: needs a sentence"},
		{"gdpr exempt category", base + "gdpr:\n  exempt_categories: [otp, promo]\n", `x/region.yaml: gdpr.exempt_categories[1]: "promo" is not a category`},
		{"gdpr basis", base + "gdpr:\n  bases: {marketing: [consent, vibes]}\n", `x/region.yaml: gdpr.bases.marketing[1]: "vibes" is not consent`},
		{"gdpr basis category", base + "gdpr:\n  bases: {promo: [consent]}\n", "x/region.yaml: gdpr.bases.promo: not a category"},
		{"list action", base + "content:\n  lists: {words: {action: hide, description: d, phrases: [a]}}\n", `x/region.yaml: content.lists.words.action: must be "refuse" or "mask", got "hide"`},
		{"list description", base + "content:\n  lists: {words: {action: mask, phrases: [a]}}\n", "x/region.yaml: content.lists.words.description: needs a sentence"},
		{"list name", base + "content:\n  lists: {Words: {action: mask, description: d, phrases: [a]}}\n", "x/region.yaml: content.lists.Words: list names are lower-case"},
		{"empty phrase", base + "content:\n  lists: {words: {action: mask, description: d, phrases: [a, \"\"]}}\n", "x/region.yaml: content.lists.words.phrases[1]: must not be empty"},
		{"card action", base + "content:\n  card_numbers: warn\n", `x/region.yaml: content.card_numbers: must be "refuse" or "mask", got "warn"`},
		{"iban action", base + "content:\n  ibans: warn\n", `x/region.yaml: content.ibans: must be "refuse" or "mask", got "warn"`},
		{"body mask style", base + "masking:\n  body: {otp: blur}\n", `x/region.yaml: masking.body.otp: style must be none, phone, last4 or full, got "blur"`},
		{"body mask category", base + "masking:\n  body: {promo: full}\n", "x/region.yaml: masking.body.promo: not a category"},
		{"field mask style", base + "masking:\n  fields: {to: blur}\n", `x/region.yaml: masking.fields.to: style must be none, phone, last4 or full, got "blur"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"x/region.yaml":    {Data: []byte(complete(c.region))},
				"x/templates.yaml": {Data: []byte(tpl)},
			}
			_, err := LoadRegion(fsys, "x")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	// The base itself is valid, so each case above fails for its own mistake only.
	fsys := fstest.MapFS{"x/region.yaml": {Data: []byte(complete(base))}, "x/templates.yaml": {Data: []byte(tpl)}}
	if _, err := LoadRegion(fsys, "x"); err != nil {
		t.Fatalf("base region: %v", err)
	}
}

func TestRegionRetention(t *testing.T) {
	base := "region: x\nproviders:\n  sim: {plugin: simulator}\ncountries:\n  SG: {providers: [sim]}\n"
	good := base + "retention:\n  default: 400d\n  per_category: {otp: 365d, transaction: 2555d}\n"
	r, err := LoadRegion(fstest.MapFS{"x/region.yaml": {Data: []byte(complete(good))}}, "x")
	if err != nil {
		t.Fatal(err)
	}
	ret, ok := r.Data["retention"].(map[string]any)
	if !ok || ret["default"] != "400d" {
		t.Fatalf("policy data retention = %v", r.Data["retention"])
	}
	cases := []struct{ yaml, want string }{
		{"retention:\n  default: 30d\n", `x/region.yaml: retention.default: must be a duration of at least 365d`},
		{"retention:\n  per_category: {otp: 364d}\n", `retention.per_category.otp: must be a duration of at least 365d`},
		{"retention:\n  per_category: {promo: 400d}\n", `retention.per_category.promo: "promo" is not a category`},
		{"retention:\n  default: forever\n", `retention.default`},
		{"retention:\n  keep: 400d\n", `unknown key keep`},
	}
	for _, c := range cases {
		_, err := LoadRegion(fstest.MapFS{"x/region.yaml": {Data: []byte(complete(base + c.yaml))}}, "x")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.yaml, err, c.want)
		}
	}
}

// sectionDefaults are minimal values of the sections every region declares (requiredSections).
var sectionDefaults = []struct{ key, yaml string }{
	{"limits", "limits:\n  app: {rate: 1, period: 1s}\n"},
	{"senders", "senders: {}\n"},
	{"generic_sender_ids", "generic_sender_ids: []\n"},
	{"opt_out", "opt_out: {}\n"},
	{"content", "content: {card_numbers: refuse, ibans: mask}\n"},
	{"masking", "masking: {}\n"},
	{"residency", "residency: {}\n"},
	{"retention", "retention: {default: 400d}\n"},
}

// complete appends to a test region file each required section it does not declare, so that a test
// region fails for its own mistake only.
func complete(region string) string {
	for _, s := range sectionDefaults {
		if !strings.Contains("\n"+region, "\n"+s.key+":") {
			region += s.yaml
		}
	}
	return region
}

// TestRegionRequiresEverySection leaves out one required section at a time, and the card-number and
// IBAN actions, and expects an error naming the missing key.
func TestRegionRequiresEverySection(t *testing.T) {
	const base = "region: x\nproviders:\n  sim: {plugin: simulator}\ncountries:\n  SG: {providers: [sim]}\n"
	if _, err := LoadRegion(fstest.MapFS{"x/region.yaml": {Data: []byte(complete(base))}}, "x"); err != nil {
		t.Fatalf("complete region: %v", err)
	}
	if len(sectionDefaults) != len(requiredSections) {
		t.Fatalf("%d section defaults for %d required sections", len(sectionDefaults), len(requiredSections))
	}
	for _, left := range sectionDefaults {
		t.Run(left.key, func(t *testing.T) {
			region := base
			for _, s := range sectionDefaults {
				if s.key != left.key {
					region += s.yaml
				}
			}
			_, err := LoadRegion(fstest.MapFS{"x/region.yaml": {Data: []byte(region)}}, "x")
			want := "x/region.yaml: " + left.key + ": missing"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error containing %q", err, want)
			}
		})
	}
	for _, c := range []struct{ content, want string }{
		{"content: {ibans: mask}\n", "x/region.yaml: content.card_numbers: missing"},
		{"content: {card_numbers: mask}\n", "x/region.yaml: content.ibans: missing"},
		{"content:\n  lists: {}\n", "x/region.yaml: content.card_numbers: missing"},
	} {
		_, err := LoadRegion(fstest.MapFS{"x/region.yaml": {Data: []byte(complete(base + c.content))}}, "x")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.content, err, c.want)
		}
	}
}

// TestTruncatedRegionIsRefused cuts every embedded region.yaml at the start of each of its top-level
// keys after the first (a file cut short at a line boundary still parses) and expects it refused.
func TestTruncatedRegionIsRefused(t *testing.T) {
	for _, name := range []string{"dev", "sg", "us", "eu"} {
		full, err := fs.ReadFile(regions.FS, name+"/region.yaml")
		if err != nil {
			t.Fatal(err)
		}
		tpl, err := fs.ReadFile(regions.FS, name+"/templates.yaml")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(full), "\n")
		cut := 0
		for i, line := range lines {
			if i == 0 || line == "" || line[0] == ' ' || line[0] == '#' || line[0] == '\n' || !strings.Contains(line, ":") {
				continue
			}
			key := line[:strings.Index(line, ":")]
			if key == "region" {
				continue
			}
			cut++
			short := strings.Join(lines[:i], "")
			fsys := fstest.MapFS{name + "/region.yaml": {Data: []byte(short)}, name + "/templates.yaml": {Data: tpl}}
			if _, err := LoadRegion(fsys, name); err == nil {
				t.Errorf("%s/region.yaml cut before %q (%d of %d bytes) was accepted", name, key, len(short), len(full))
			}
		}
		if cut < 8 {
			t.Errorf("%s: only %d cuts", name, cut)
		}
	}
}
