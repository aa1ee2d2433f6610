package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/smsproxy/smsproxy/proxy/limit"
	"github.com/smsproxy/smsproxy/proxy/sms"
)

// Region is one region's data: what it serves, through which providers, under which limits, with which
// templates. Policies read it as data.region; the proxy uses the providers, routes and templates.
type Region struct {
	// Name is the region's name, e.g. "dev".
	Name string
	// DefaultLocale is the template locale used when neither the requested locale nor its language exists.
	DefaultLocale string
	// Providers are the region's providers by name.
	Providers map[string]ProviderSpec
	// Countries are the destinations served, by ISO 3166-1 alpha-2 code, each with its provider order.
	Countries map[string]Country
	// Templates are the registered message templates.
	Templates []sms.Template
	// Data is the region document as policies see it (data.region): JSON types only.
	Data map[string]any
}

// ProviderSpec says how to run one provider.
type ProviderSpec struct {
	// Plugin names a built-in plugin ("simulator"); empty when Path is set.
	Plugin string `yaml:"plugin" json:"plugin,omitempty"`
	// Path is a third-party plugin binary; SHA256 is its required checksum.
	Path   string `yaml:"path" json:"path,omitempty"`
	SHA256 string `yaml:"sha256" json:"sha256,omitempty"`
	// Config is handed to the plugin as JSON.
	Config map[string]any `yaml:"config" json:"config,omitempty"`
}

// Country is one destination country's routing data. Other keys in the file are for policies.
type Country struct {
	// Providers is the default provider order for the country.
	Providers []string `yaml:"providers" json:"providers"`
}

// regionFile is region.yaml. Keys that only policies read are kept as raw values but still checked
// against the known set so that a typo is refused.
type regionFile struct {
	Region        string                    `yaml:"region"`
	DefaultLocale string                    `yaml:"default_locale"`
	Providers     map[string]ProviderSpec   `yaml:"providers"`
	Countries     map[string]map[string]any `yaml:"countries"`
	Limits        map[string]limitSpec      `yaml:"limits"`
	// The compliance pack's data; see regions/README.md for what each key means.
	Residency        map[string]string                `yaml:"residency"`
	Senders          map[string]map[string]senderSpec `yaml:"senders"`
	GenericSenderIDs []string                         `yaml:"generic_sender_ids"`
	US10DLC          *us10DLCSpec                     `yaml:"us_10dlc"`
	OptOut           *optOutSpec                      `yaml:"opt_out"`
	GDPR             *gdprSpec                        `yaml:"gdpr"`
	Content          *contentSpec                     `yaml:"content"`
	Masking          *maskingSpec                     `yaml:"masking"`
	// Retention says how long records are kept: default and per message category, each at least 365d.
	Retention *retentionSpec `yaml:"retention"`
}

type retentionSpec struct {
	Default     string            `yaml:"default" json:"default,omitempty"`
	PerCategory map[string]string `yaml:"per_category" json:"per_category,omitempty"`
}

type limitSpec struct {
	Rate   int    `yaml:"rate" json:"rate"`
	Period string `yaml:"period" json:"period"`
	Burst  int    `yaml:"burst,omitempty" json:"burst,omitempty"`
	// Digits is the length of the number prefix a velocity_prefix limit counts by ("+6591" is 4 digits).
	Digits int `yaml:"digits,omitempty" json:"digits,omitempty"`
	// Window, when true, makes the limit a cap on every window: at most Rate events in any Period
	// (limit.Limit.Window), instead of a GCRA rate that admits up to Burst + Rate - 1 per Period. It is
	// kept as decoded (nil when absent) so that a value that is not a bool is refused naming the key.
	Window any `yaml:"window,omitempty" json:"window,omitempty"`
}

// limitNames are the limits policies declare; any other name is a typo.
var limitNames = map[string]bool{
	"app": true, "otp_per_device": true, "otp_per_number": true, "velocity_country": true, "velocity_prefix": true,
}

// senderSpec is one registered sender ID, number or short code of a country.
type senderSpec struct {
	// Apps are the apps the sender is assigned to; no other app may use it.
	Apps []string `yaml:"apps" json:"apps"`
	// Organisation is who registered it (e.g. the SGNIC registrant).
	Organisation string `yaml:"organisation" json:"organisation,omitempty"`
	// Campaign is the 10DLC campaign a US long code is assigned to.
	Campaign string `yaml:"campaign" json:"campaign,omitempty"`
	// Verified is true for a toll-free number that passed toll-free verification.
	Verified bool `yaml:"verified" json:"verified,omitempty"`
	// Categories are the categories a short code's approved program covers.
	Categories []string `yaml:"categories" json:"categories,omitempty"`
}

type us10DLCSpec struct {
	Brands    map[string]brandSpec    `yaml:"brands" json:"brands"`
	Campaigns map[string]campaignSpec `yaml:"campaigns" json:"campaigns"`
	// UseCases maps a TCR use case to the message categories it covers.
	UseCases map[string][]string `yaml:"use_cases" json:"use_cases"`
}

type brandSpec struct {
	Name       string `yaml:"name" json:"name"`
	TrustScore int    `yaml:"trust_score" json:"trust_score"`
	// DailyCap is the brand's daily message cap (T-Mobile).
	DailyCap int `yaml:"daily_cap" json:"daily_cap"`
}

type campaignSpec struct {
	Brand   string `yaml:"brand" json:"brand"`
	UseCase string `yaml:"use_case" json:"use_case"`
	// PerMinute is the campaign's throughput cap (AT&T, by trust score).
	PerMinute int `yaml:"per_minute" json:"per_minute"`
}

type optOutSpec struct {
	// ConfirmationTemplates are the templates of STOP/HELP confirmations, sent even after an opt-out.
	ConfirmationTemplates []string `yaml:"confirmation_templates" json:"confirmation_templates"`
	// Exceptions maps a category that still reaches opted-out recipients to why, as a sentence.
	Exceptions map[string]string `yaml:"exceptions" json:"exceptions"`
}

type gdprSpec struct {
	// ExemptCategories need no recorded lawful basis.
	ExemptCategories []string `yaml:"exempt_categories" json:"exempt_categories"`
	// Bases lists the lawful bases accepted per category; a category not listed accepts any basis.
	Bases map[string][]string `yaml:"bases" json:"bases"`
}

type contentSpec struct {
	// Lists are phrase lists by name, each refused or masked.
	Lists map[string]phraseListSpec `yaml:"lists" json:"lists"`
	// CardNumbers and IBANs say what a body holding one gets: "refuse" or "mask".
	CardNumbers string `yaml:"card_numbers" json:"card_numbers"`
	IBANs       string `yaml:"ibans" json:"ibans"`
}

type phraseListSpec struct {
	Action      string   `yaml:"action" json:"action"`
	Description string   `yaml:"description" json:"description"`
	Phrases     []string `yaml:"phrases" json:"phrases"`
}

type maskingSpec struct {
	// Body is the body's mask style per category; other categories use Fields["body"] or "none".
	Body map[string]string `yaml:"body" json:"body"`
	// Fields are mask styles of other fields (to, device_id, template.params.<name>, …).
	Fields map[string]string `yaml:"fields" json:"fields"`
}

var (
	maskStyles    = map[string]bool{"none": true, "phone": true, "last4": true, "full": true}
	contentAction = map[string]bool{"refuse": true, "mask": true}
	lawfulBases   = map[string]bool{"consent": true, "contract": true, "legal_obligation": true, "legitimate_interest": true}
	senderKinds   = map[string]bool{"alphanumeric": true, "long_code": true, "short_code": true, "toll_free": true}
	registrations = map[string]bool{"required": true, "optional": true}
)

type templatesFile struct {
	Templates []struct {
		ID       string            `yaml:"id"`
		Category string            `yaml:"category"`
		Locales  map[string]string `yaml:"locales"`
	} `yaml:"templates"`
}

// countryKeys are the keys a country entry may have; policies define what they mean.
var countryKeys = map[string]string{
	"providers":      "list",
	"alphanumeric":   "bool",
	"opt_out_footer": "string",
	"categories":     "list",
	// gdpr is true for EU/EEA and UK destinations: categories need a recorded lawful basis.
	"gdpr": "bool",
	// templates_required lists the categories that must use (or render) a registered template.
	"templates_required": "list",
	// quiet_hours is {start, end}: local hours in which marketing is refused (start inclusive, end exclusive).
	"quiet_hours": "map",
	// time_zone is the zone used when the proxy could not tell the recipient's own.
	"time_zone": "string",
	// mobile_time_zones lists every zone a mobile number of the country may be in, where numbers
	// do not tell (Indonesia: WIB, WITA, WIT); marketing must be outside quiet hours in each.
	"mobile_time_zones": "list",
	// sender_registration maps a sender kind to "required" or "optional"; unlisted kinds are required.
	"sender_registration": "map",
}

// LoadRegion reads <name>/region.yaml and <name>/templates.yaml from fsys and validates them. Every
// problem names the file and the key.
func LoadRegion(fsys fs.FS, name string) (*Region, error) {
	var rf regionFile
	regionPath := path.Join(name, "region.yaml")
	if err := decodeStrict(fsys, regionPath, &rf); err != nil {
		return nil, err
	}
	var tf templatesFile
	tplPath := path.Join(name, "templates.yaml")
	if _, err := fs.Stat(fsys, tplPath); err == nil {
		if err := decodeStrict(fsys, tplPath, &tf); err != nil {
			return nil, err
		}
	}

	var errs Errors
	add := func(file, key, format string, args ...any) {
		errs = append(errs, &Error{Key: file + ": " + key, Msg: fmt.Sprintf(format, args...)})
	}
	if rf.Region != name {
		add(regionPath, "region", "must be %q (the directory's name), got %q", name, rf.Region)
	}
	if rf.DefaultLocale == "" {
		rf.DefaultLocale = "en"
	}
	if len(rf.Providers) == 0 {
		add(regionPath, "providers", "at least one provider is needed")
	}
	for pname, p := range rf.Providers {
		key := "providers." + pname
		if !validName(pname) {
			add(regionPath, key, "provider names are lower-case letters, digits, - and _")
		}
		switch {
		case p.Plugin != "" && p.Path != "":
			add(regionPath, key, "set plugin (built-in) or path (third-party binary), not both")
		case p.Plugin == "" && p.Path == "":
			add(regionPath, key, "needs plugin or path")
		case p.Path != "" && len(p.SHA256) != 64:
			add(regionPath, key+".sha256", "a third-party plugin needs the hex SHA-256 of its binary")
		}
	}
	reg := &Region{
		Name:          rf.Region,
		DefaultLocale: rf.DefaultLocale,
		Providers:     rf.Providers,
		Countries:     map[string]Country{},
	}
	if len(rf.Countries) == 0 {
		add(regionPath, "countries", "at least one country is needed")
	}
	codes := make([]string, 0, len(rf.Countries))
	for code := range rf.Countries {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	for _, code := range codes {
		entry := rf.Countries[code]
		key := "countries." + code
		if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
			add(regionPath, key, "country keys are ISO 3166-1 alpha-2 codes in capitals, such as SG")
		}
		for k, v := range entry {
			kind, ok := countryKeys[k]
			if !ok {
				add(regionPath, key+"."+k, "unknown key")
				continue
			}
			if !hasKind(v, kind) {
				add(regionPath, key+"."+k, "must be a %s", kind)
				continue
			}
			for _, msg := range checkCountryKey(k, v) {
				add(regionPath, key+"."+k, "%s", msg)
			}
		}
		var c Country
		if list, ok := entry["providers"].([]any); ok {
			for i, p := range list {
				s, _ := p.(string)
				if _, ok := rf.Providers[s]; !ok {
					add(regionPath, fmt.Sprintf("%s.providers[%d]", key, i), "provider %q is not declared under providers", s)
				}
				c.Providers = append(c.Providers, s)
			}
		}
		if len(c.Providers) == 0 {
			add(regionPath, key+".providers", "at least one provider is needed")
		}
		reg.Countries[code] = c
	}
	if r := rf.Retention; r != nil {
		check := func(key, v string) {
			if d, err := ParseDuration(v); err != nil || d < MinRetention {
				add(regionPath, key, "must be a duration of at least 365d (one year), got %q", v)
			}
		}
		if r.Default != "" {
			check("retention.default", r.Default)
		}
		for cat, v := range r.PerCategory {
			if _, err := sms.ParseCategory(cat); err != nil {
				add(regionPath, "retention.per_category."+cat, "%q is not a category", cat)
				continue
			}
			check("retention.per_category."+cat, v)
		}
	}
	for lname, l := range rf.Limits {
		key := "limits." + lname
		if !limitNames[lname] {
			add(regionPath, key, "unknown limit; known are app, otp_per_device, otp_per_number, velocity_country, velocity_prefix")
		}
		if lname == "velocity_prefix" && (l.Digits < 1 || l.Digits > 14) {
			add(regionPath, key+".digits", "must be 1 to 14 (the digits after + that make the prefix)")
		} else if lname != "velocity_prefix" && l.Digits != 0 {
			add(regionPath, key+".digits", "only velocity_prefix counts by a number prefix")
		}
		if l.Rate <= 0 {
			add(regionPath, key+".rate", "must be positive")
		}
		if d, err := time.ParseDuration(l.Period); err != nil || d <= 0 {
			add(regionPath, key+".period", "must be a positive duration such as 60s, got %q", l.Period)
		}
		if l.Burst < 0 {
			add(regionPath, key+".burst", "must not be negative")
		}
		if l.Window != nil {
			switch w, ok := l.Window.(bool); {
			case !ok:
				add(regionPath, key+".window", "must be a bool, got %v", l.Window)
			case w && l.Rate > limit.MaxWindowRate:
				add(regionPath, key+".rate", "a window limit allows at most %d events per period, got %d", limit.MaxWindowRate, l.Rate)
			case w && l.Burst != 0:
				add(regionPath, key+".burst", "a window limit has no burst: it allows rate events in any period")
			}
		}
	}
	for i, t := range tf.Templates {
		cat, err := sms.ParseCategory(t.Category)
		if err != nil {
			add(tplPath, fmt.Sprintf("templates[%d].category", i), "%q is not a category", t.Category)
		}
		reg.Templates = append(reg.Templates, sms.Template{ID: t.ID, Category: cat, Locales: t.Locales})
	}
	templateIDs := map[string]bool{}
	for _, t := range tf.Templates {
		templateIDs[t.ID] = true
	}
	checkRequired(&rf, regionPath, add)
	checkCompliance(&rf, regionPath, templateIDs, add)
	if len(errs) == 0 {
		if _, err := sms.NewTemplates(reg.Templates, reg.DefaultLocale); err != nil {
			add(tplPath, "templates", "%v", err)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	templates := make(map[string]any, len(tf.Templates))
	for _, t := range tf.Templates {
		templates[t.ID] = map[string]any{"category": t.Category, "locales": t.Locales}
	}
	doc := map[string]any{
		"region":             rf.Region,
		"default_locale":     rf.DefaultLocale,
		"countries":          rf.Countries,
		"limits":             rf.Limits,
		"providers":          providerNames(rf.Providers),
		"templates":          templates,
		"residency":          orEmpty(rf.Residency),
		"senders":            orEmpty(rf.Senders),
		"generic_sender_ids": upperSet(rf.GenericSenderIDs),
	}
	for k, v := range map[string]any{"us_10dlc": rf.US10DLC, "opt_out": rf.OptOut, "gdpr": rf.GDPR, "content": rf.Content, "masking": rf.Masking, "retention": rf.Retention} {
		if !reflect.ValueOf(v).IsNil() {
			doc[k] = v
		}
	}
	data, err := jsonData(doc)
	if err != nil {
		return nil, &Error{Key: regionPath, Msg: err.Error()}
	}
	reg.Data = data
	return reg, nil
}

func providerNames(ps map[string]ProviderSpec) []string {
	names := make([]string, 0, len(ps))
	for n := range ps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func hasKind(v any, kind string) bool {
	switch kind {
	case "map":
		_, ok := v.(map[string]any)
		return ok
	case "list":
		_, ok := v.([]any)
		return ok
	case "bool":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	}
	return false
}

// jsonData converts YAML-decoded values into the JSON types OPA expects.
func jsonData(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

func decodeStrict(fsys fs.FS, name string, v any) error {
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &Error{Key: name, Msg: "region data not found"}
		}
		return &Error{Key: name, Msg: err.Error()}
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return &Error{Key: name, Msg: yamlMessage(err)}
	}
	return nil
}

func orEmpty[M ~map[K]V, K comparable, V any](m M) M {
	if m == nil {
		return M{}
	}
	return m
}

// upperSet turns a list of sender IDs into a set keyed by their upper-case form, so policies look one up.
func upperSet(ids []string) map[string]bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[strings.ToUpper(id)] = true
	}
	return set
}

func isCategory(s string) bool {
	_, err := sms.ParseCategory(s)
	return err == nil
}

func hourOf(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, n >= 0 && n <= 23
	case float64:
		return int(n), n == float64(int(n)) && n >= 0 && n <= 23
	}
	return 0, false
}

// checkCountryKey checks the value of one policy key of a country entry beyond its kind.
func checkCountryKey(k string, v any) []string {
	var out []string
	switch k {
	case "categories", "templates_required":
		for i, c := range v.([]any) {
			if s, _ := c.(string); !isCategory(s) {
				out = append(out, fmt.Sprintf("[%d]: %v is not a category", i, c))
			}
		}
	case "quiet_hours":
		m := v.(map[string]any)
		for key := range m {
			if key != "start" && key != "end" {
				out = append(out, fmt.Sprintf("%s: unknown key (start and end are known)", key))
			}
		}
		for _, key := range []string{"start", "end"} {
			if _, ok := hourOf(m[key]); !ok {
				out = append(out, key+": must be an hour from 0 to 23")
			}
		}
	case "time_zone":
		if s := v.(string); s == "" || s == "Local" {
			out = append(out, "must be an IANA time zone such as Asia/Singapore")
		} else if _, err := time.LoadLocation(s); err != nil {
			out = append(out, fmt.Sprintf("%q is not a known IANA time zone", s))
		}
	case "mobile_time_zones":
		for i, z := range v.([]any) {
			if s, _ := z.(string); s == "" || s == "Local" {
				out = append(out, fmt.Sprintf("[%d]: must be an IANA time zone such as Asia/Makassar", i))
			} else if _, err := time.LoadLocation(s); err != nil {
				out = append(out, fmt.Sprintf("[%d]: %q is not a known IANA time zone", i, s))
			}
		}
	case "sender_registration":
		for kind, reg := range v.(map[string]any) {
			if !senderKinds[kind] {
				out = append(out, kind+": not a sender kind (alphanumeric, long_code, short_code, toll_free)")
			}
			if s, _ := reg.(string); !registrations[s] {
				out = append(out, kind+`: must be "required" or "optional"`)
			}
		}
	}
	sort.Strings(out)
	return out
}

// requiredSections are the sections every region declares, with what each holds. A region file that
// lacks one is refused rather than read as "no rules": a file cut short at a line boundary still parses,
// and without its content or masking sections the policies would let card numbers through unmasked.
var requiredSections = []struct {
	key, holds string
	present    func(rf *regionFile) bool
}{
	{"limits", "its rate limits", func(rf *regionFile) bool { return rf.Limits != nil }},
	{"senders", "its registered senders ({} for none)", func(rf *regionFile) bool { return rf.Senders != nil }},
	{"generic_sender_ids", "the sender IDs it refuses as generic", func(rf *regionFile) bool { return rf.GenericSenderIDs != nil }},
	{"opt_out", "its opt-out confirmations and exceptions", func(rf *regionFile) bool { return rf.OptOut != nil }},
	{"content", "its content rules (card numbers, IBANs, phrase lists)", func(rf *regionFile) bool { return rf.Content != nil }},
	{"masking", "how records and logs mask fields and bodies", func(rf *regionFile) bool { return rf.Masking != nil }},
	{"residency", "the destinations other regions serve ({} for none)", func(rf *regionFile) bool { return rf.Residency != nil }},
	{"retention", "how long records are kept", func(rf *regionFile) bool { return rf.Retention != nil }},
}

// checkRequired refuses a region file that lacks a section every region declares, or a content
// section that does not say what a card number or an IBAN in a body gets.
func checkRequired(rf *regionFile, file string, add func(file, key, format string, args ...any)) {
	for _, s := range requiredSections {
		if !s.present(rf) {
			add(file, s.key, "missing: every region declares %s", s.holds)
		}
	}
	if c := rf.Content; c != nil {
		if c.CardNumbers == "" {
			add(file, "content.card_numbers", `missing: say "refuse" or "mask" for a body holding a payment card number`)
		}
		if c.IBANs == "" {
			add(file, "content.ibans", `missing: say "refuse" or "mask" for a body holding an IBAN`)
		}
	}
}

// checkCompliance validates the compliance pack's region data: every reference resolves, every
// category, style and action is one the policies know.
func checkCompliance(rf *regionFile, file string, templateIDs map[string]bool, add func(file, key, format string, args ...any)) {
	for cc, region := range rf.Residency {
		if _, served := rf.Countries[cc]; served {
			add(file, "residency."+cc, "the country is served here; residency names only countries other regions serve")
		}
		if !validName(region) {
			add(file, "residency."+cc, "must name a region, got %q", region)
		}
	}
	for _, id := range rf.GenericSenderIDs {
		if strings.TrimSpace(id) == "" {
			add(file, "generic_sender_ids", "must not hold an empty sender ID")
		}
	}
	var campaigns map[string]campaignSpec
	if d := rf.US10DLC; d != nil {
		campaigns = d.Campaigns
		for id, b := range d.Brands {
			key := "us_10dlc.brands." + id
			if !strings.HasPrefix(id, "B") {
				add(file, key, "TCR brand ids start with B")
			}
			if b.DailyCap <= 0 {
				add(file, key+".daily_cap", "must be positive")
			}
			if b.TrustScore < 0 || b.TrustScore > 100 {
				add(file, key+".trust_score", "must be 0 to 100")
			}
		}
		for uc, cats := range d.UseCases {
			for i, c := range cats {
				if !isCategory(c) {
					add(file, fmt.Sprintf("us_10dlc.use_cases.%s[%d]", uc, i), "%q is not a category", c)
				}
			}
		}
		for id, c := range d.Campaigns {
			key := "us_10dlc.campaigns." + id
			if !strings.HasPrefix(id, "C") {
				add(file, key, "TCR campaign ids start with C")
			}
			if _, ok := d.Brands[c.Brand]; !ok {
				add(file, key+".brand", "brand %q is not under us_10dlc.brands", c.Brand)
			}
			if _, ok := d.UseCases[c.UseCase]; !ok {
				add(file, key+".use_case", "use case %q is not under us_10dlc.use_cases", c.UseCase)
			}
			if c.PerMinute <= 0 {
				add(file, key+".per_minute", "must be positive")
			}
		}
	}
	for cc, senders := range rf.Senders {
		if _, served := rf.Countries[cc]; !served {
			add(file, "senders."+cc, "the country is not under countries")
		}
		for id, s := range senders {
			key := "senders." + cc + "." + id
			if len(s.Apps) == 0 {
				add(file, key+".apps", "a sender must be assigned to at least one app")
			}
			if s.Campaign != "" {
				if _, ok := campaigns[s.Campaign]; !ok {
					add(file, key+".campaign", "campaign %q is not under us_10dlc.campaigns", s.Campaign)
				}
			}
			for i, c := range s.Categories {
				if !isCategory(c) {
					add(file, fmt.Sprintf("%s.categories[%d]", key, i), "%q is not a category", c)
				}
			}
		}
	}
	if o := rf.OptOut; o != nil {
		for i, id := range o.ConfirmationTemplates {
			if !templateIDs[id] {
				add(file, fmt.Sprintf("opt_out.confirmation_templates[%d]", i), "template %q is not in templates.yaml", id)
			}
		}
		for c, why := range o.Exceptions {
			if !isCategory(c) {
				add(file, "opt_out.exceptions."+c, "not a category")
			}
			if strings.TrimSpace(why) == "" {
				add(file, "opt_out.exceptions."+c, "needs a sentence saying why the category reaches opted-out recipients")
			}
		}
	}
	if g := rf.GDPR; g != nil {
		for i, c := range g.ExemptCategories {
			if !isCategory(c) {
				add(file, fmt.Sprintf("gdpr.exempt_categories[%d]", i), "%q is not a category", c)
			}
		}
		for c, bases := range g.Bases {
			if !isCategory(c) {
				add(file, "gdpr.bases."+c, "not a category")
			}
			for i, b := range bases {
				if !lawfulBases[b] {
					add(file, fmt.Sprintf("gdpr.bases.%s[%d]", c, i), "%q is not consent, contract, legal_obligation or legitimate_interest", b)
				}
			}
		}
	}
	if c := rf.Content; c != nil {
		for name, l := range c.Lists {
			key := "content.lists." + name
			if !validName(name) {
				add(file, key, "list names are lower-case letters, digits, - and _")
			}
			if !contentAction[l.Action] {
				add(file, key+".action", `must be "refuse" or "mask", got %q`, l.Action)
			}
			if strings.TrimSpace(l.Description) == "" {
				add(file, key+".description", "needs a sentence a support agent can read")
			}
			for i, p := range l.Phrases {
				if strings.TrimSpace(p) == "" {
					add(file, fmt.Sprintf("%s.phrases[%d]", key, i), "must not be empty")
				}
			}
		}
		for k, v := range map[string]string{"content.card_numbers": c.CardNumbers, "content.ibans": c.IBANs} {
			if v != "" && !contentAction[v] {
				add(file, k, `must be "refuse" or "mask", got %q`, v)
			}
		}
	}
	if m := rf.Masking; m != nil {
		for c, style := range m.Body {
			if !isCategory(c) {
				add(file, "masking.body."+c, "not a category")
			}
			if !maskStyles[style] {
				add(file, "masking.body."+c, "style must be none, phone, last4 or full, got %q", style)
			}
		}
		for f, style := range m.Fields {
			if !maskStyles[style] {
				add(file, "masking.fields."+f, "style must be none, phone, last4 or full, got %q", style)
			}
		}
	}
}
