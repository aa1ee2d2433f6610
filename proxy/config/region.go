package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

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
}

type limitSpec struct {
	Rate   int    `yaml:"rate" json:"rate"`
	Period string `yaml:"period" json:"period"`
	Burst  int    `yaml:"burst,omitempty" json:"burst,omitempty"`
}

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
	for lname, l := range rf.Limits {
		key := "limits." + lname
		if l.Rate <= 0 {
			add(regionPath, key+".rate", "must be positive")
		}
		if d, err := time.ParseDuration(l.Period); err != nil || d <= 0 {
			add(regionPath, key+".period", "must be a positive duration such as 60s, got %q", l.Period)
		}
		if l.Burst < 0 {
			add(regionPath, key+".burst", "must not be negative")
		}
	}
	for i, t := range tf.Templates {
		cat, err := sms.ParseCategory(t.Category)
		if err != nil {
			add(tplPath, fmt.Sprintf("templates[%d].category", i), "%q is not a category", t.Category)
		}
		reg.Templates = append(reg.Templates, sms.Template{ID: t.ID, Category: cat, Locales: t.Locales})
	}
	if len(errs) == 0 {
		if _, err := sms.NewTemplates(reg.Templates, reg.DefaultLocale); err != nil {
			add(tplPath, "templates", "%v", err)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	data, err := jsonData(map[string]any{
		"region":         rf.Region,
		"default_locale": rf.DefaultLocale,
		"countries":      rf.Countries,
		"limits":         rf.Limits,
		"providers":      providerNames(rf.Providers),
	})
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
