package sms

import (
	"regexp"
	"slices"
	"strings"
)

// Template is a registered message text with placeholders, in one or more locales.
type Template struct {
	// ID names the template; apps refer to it in TemplateRef.ID.
	ID string
	// Category is the only category the template may be sent under.
	Category Category
	// Locales maps a locale ("en", "ms-MY", "de") to the text, with placeholders written
	// {{name}} (spaces inside the braces are allowed; a name is a letter or "_" followed by
	// letters, digits or "_"). Every locale must use the same set of placeholders. There is
	// no escape for a literal "{{" or "}}".
	Locales map[string]string
}

// Templates is a validated, compiled set of templates. It is safe for concurrent use and
// never changes after NewTemplates; build a new one to change the set.
type Templates struct {
	byID          map[string]*compiledTemplate
	order         []*compiledTemplate
	defaultLocale string
}

// compiledTemplate is one Template prepared for rendering and matching.
type compiledTemplate struct {
	t       Template
	params  []string // in order of first use
	locales map[string]*compiledText
	sorted  []*compiledText // by locale, for a deterministic Match
}

// compiledText is the text of one locale cut into literals and placeholders.
type compiledText struct {
	locale string // as registered
	pieces []piece
	size   int // bytes of literal text
	re     *regexp.Regexp
	prefix string // literal text before the first placeholder
	suffix string // literal text after the last placeholder
}

// piece is a literal run of text, or a placeholder when param is true (text is then its name).
type piece struct {
	text  string
	param bool
}

// NewTemplates validates ts and compiles them. defaultLocale is the last locale tried when a
// template has no text for the requested one. Any problem is an *Error with code
// "invalid_template" naming the template: an empty id, a duplicate id, an unknown category,
// no locales, an empty locale or text, two keys for the same locale, an unclosed or
// malformed placeholder, or locales that disagree on the set of placeholders.
func NewTemplates(ts []Template, defaultLocale string) (*Templates, error) {
	if !validLocale(defaultLocale) {
		return nil, errorf(CodeInvalidTemplate, "templates", "the default locale %q is not a locale", defaultLocale)
	}
	set := &Templates{
		byID:          make(map[string]*compiledTemplate, len(ts)),
		order:         make([]*compiledTemplate, 0, len(ts)),
		defaultLocale: canonicalLocale(defaultLocale),
	}
	for i, t := range ts {
		if t.ID == "" {
			return nil, errorf(CodeInvalidTemplate, "templates", "template #%d has no id", i+1)
		}
		if _, dup := set.byID[t.ID]; dup {
			return nil, errorf(CodeInvalidTemplate, "templates", "template %q is defined twice", t.ID)
		}
		c, err := compileTemplate(t)
		if err != nil {
			return nil, err
		}
		set.byID[t.ID] = c
		set.order = append(set.order, c)
	}
	return set, nil
}

func compileTemplate(t Template) (*compiledTemplate, error) {
	if _, err := ParseCategory(string(t.Category)); err != nil {
		return nil, errorf(CodeInvalidTemplate, "templates", "template %q has an unknown category", t.ID)
	}
	if len(t.Locales) == 0 {
		return nil, errorf(CodeInvalidTemplate, "templates", "template %q has no text", t.ID)
	}
	c := &compiledTemplate{
		t:       Template{ID: t.ID, Category: t.Category, Locales: make(map[string]string, len(t.Locales))},
		locales: make(map[string]*compiledText, len(t.Locales)),
	}
	keys := make([]string, 0, len(t.Locales))
	for k := range t.Locales {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var first string // the first locale compiled; its placeholders are the template's
	for _, loc := range keys {
		text := t.Locales[loc]
		if !validLocale(loc) {
			return nil, errorf(CodeInvalidTemplate, "templates", "template %q has a bad locale %q", t.ID, loc)
		}
		canon := canonicalLocale(loc)
		if prev, dup := c.locales[canon]; dup {
			return nil, errorf(CodeInvalidTemplate, "templates", "template %q has locales %q and %q for the same language", t.ID, prev.locale, loc)
		}
		if strings.TrimSpace(text) == "" {
			return nil, errorf(CodeInvalidTemplate, "templates", "template %q has no text for locale %q", t.ID, loc)
		}
		ct, params, err := compileText(text)
		if err != nil {
			return nil, errorf(CodeInvalidTemplate, "templates", "template %q, locale %q: %s", t.ID, loc, err.Message)
		}
		if first == "" {
			c.params, first = params, loc
		} else if !sameSet(c.params, params) {
			return nil, errorf(CodeInvalidTemplate, "templates", "template %q: locales %q and %q use different placeholders", t.ID, first, loc)
		}
		ct.locale = loc
		c.locales[canon] = ct
		c.sorted = append(c.sorted, ct)
		c.t.Locales[loc] = text
	}
	return c, nil
}

// compileText cuts text into pieces, returns the distinct placeholder names in order of first
// use, and builds the regexp that matches any rendering of it.
func compileText(text string) (*compiledText, []string, *Error) {
	ct := &compiledText{}
	var params []string
	var re strings.Builder
	re.WriteString(`(?s)\A`)
	rest := text
	for rest != "" {
		open := strings.Index(rest, "{{")
		lit := rest
		if open >= 0 {
			lit = rest[:open]
		}
		if strings.Contains(lit, "}}") {
			return nil, nil, errorf(CodeInvalidTemplate, "templates", "\"}}\" without \"{{\"")
		}
		if lit != "" {
			ct.pieces = append(ct.pieces, piece{text: lit})
			ct.size += len(lit)
			re.WriteString(regexp.QuoteMeta(lit))
		}
		if open < 0 {
			break
		}
		rest = rest[open+2:]
		end := strings.Index(rest, "}}")
		if end < 0 {
			return nil, nil, errorf(CodeInvalidTemplate, "templates", "unclosed placeholder")
		}
		name := strings.TrimSpace(rest[:end])
		if !validParamName(name) {
			return nil, nil, errorf(CodeInvalidTemplate, "templates", "placeholder %q is not a name", name)
		}
		ct.pieces = append(ct.pieces, piece{text: name, param: true})
		if !slices.Contains(params, name) {
			params = append(params, name)
		}
		re.WriteString(`(.+?)`)
		rest = rest[end+2:]
	}
	re.WriteString(`\z`)
	ct.re = regexp.MustCompile(re.String()) // Only quoted literals and fixed groups: cannot fail.
	if len(ct.pieces) > 0 && !ct.pieces[0].param {
		ct.prefix = ct.pieces[0].text
	}
	if last := len(ct.pieces) - 1; last >= 0 && !ct.pieces[last].param {
		ct.suffix = ct.pieces[last].text
	}
	return ct, params, nil
}

// Render returns the text of the template ref names in the best locale with its placeholders
// filled in, and the template. Locales are tried from the most specific to the least:
// "ms-MY", then "ms", then the default locale and its parents. Values are inserted in one
// pass, so a value that looks like a placeholder stays literal text. Errors are *Error with
// codes "unknown_template", "template_locale_unavailable", "template_param_missing" (also for
// an empty value) and "template_param_unknown"; the message names the parameter, never its value.
func (s *Templates) Render(ref TemplateRef) (string, Template, error) {
	text, t, _, err := s.render(ref)
	return text, t, err
}

// render is Render that also returns the locale used, as registered.
func (s *Templates) render(ref TemplateRef) (string, Template, string, error) {
	var c *compiledTemplate
	if s != nil {
		c = s.byID[ref.ID]
	}
	if c == nil {
		return "", Template{}, "", errorf(CodeUnknownTemplate, "template", "there is no template %q", ref.ID)
	}
	ct := s.pick(c, ref.Locale)
	if ct == nil {
		return "", Template{}, "", errorf(CodeTemplateLocaleUnavailable, "template", "template %q has no text for locale %q or the default locale", ref.ID, ref.Locale)
	}
	for _, name := range c.params {
		if ref.Params[name] == "" {
			return "", Template{}, "", errorf(CodeTemplateParamMissing, "template", "template %q needs a non-empty value for %q", ref.ID, name)
		}
	}
	if len(ref.Params) > len(c.params) {
		var extra []string
		for name := range ref.Params {
			if !slices.Contains(c.params, name) {
				extra = append(extra, name)
			}
		}
		slices.Sort(extra)
		return "", Template{}, "", errorf(CodeTemplateParamUnknown, "template", "template %q has no placeholder %q", ref.ID, extra[0])
	}
	size := ct.size
	for _, name := range c.params {
		size += len(ref.Params[name])
	}
	var b strings.Builder
	b.Grow(size)
	for _, p := range ct.pieces {
		if p.param {
			b.WriteString(ref.Params[p.text])
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String(), c.t, ct.locale, nil
}

// pick returns the text for the best locale, or nil.
func (s *Templates) pick(c *compiledTemplate, locale string) *compiledText {
	if locale != "" {
		if ct := fallback(c, canonicalLocale(locale)); ct != nil {
			return ct
		}
	}
	return fallback(c, s.defaultLocale)
}

// fallback looks up loc, then drops its last subtag until one matches.
func fallback(c *compiledTemplate, loc string) *compiledText {
	for loc != "" {
		if ct := c.locales[loc]; ct != nil {
			return ct
		}
		i := strings.LastIndexByte(loc, '-')
		if i < 0 {
			return nil
		}
		loc = loc[:i]
	}
	return nil
}

// Match reports whether body is a rendering of a registered template, where each placeholder
// stands for any non-empty text, and returns the first template (in registration order) and
// the locale (as registered; locales of one template in sorted order) that match. The returned
// Template shares its Locales map with the set and must not be modified.
func (s *Templates) Match(body string) (Template, string, bool) {
	if s == nil {
		return Template{}, "", false
	}
	for _, c := range s.order {
		for _, ct := range c.sorted {
			if len(body) < len(ct.prefix)+len(ct.suffix) ||
				!strings.HasPrefix(body, ct.prefix) || !strings.HasSuffix(body, ct.suffix) {
				continue
			}
			if ct.re.MatchString(body) {
				return c.t, ct.locale, true
			}
		}
	}
	return Template{}, "", false
}

// Get returns the template with the given id. The Locales map is shared and must not be modified.
func (s *Templates) Get(id string) (Template, bool) {
	if s == nil {
		return Template{}, false
	}
	c, ok := s.byID[id]
	if !ok {
		return Template{}, false
	}
	return c.t, true
}

// canonicalLocale lower-cases a locale and writes "_" as "-", so "ms_MY" and "ms-my" are one.
func canonicalLocale(loc string) string {
	return strings.ReplaceAll(strings.ToLower(loc), "_", "-")
}

// validLocale accepts subtags of ASCII letters and digits joined by "-" or "_".
func validLocale(loc string) bool {
	if loc == "" || len(loc) > 35 {
		return false
	}
	prevSep := true
	for i := 0; i < len(loc); i++ {
		c := loc[i]
		switch {
		case c == '-' || c == '_':
			if prevSep {
				return false
			}
			prevSep = true
		case c >= '0' && c <= '9', (c|0x20) >= 'a' && (c|0x20) <= 'z':
			prevSep = false
		default:
			return false
		}
	}
	return !prevSep
}

// validParamName accepts a letter or "_" followed by ASCII letters, digits or "_".
func validParamName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := (c|0x20) >= 'a' && (c|0x20) <= 'z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// sameSet reports whether a and b hold the same names.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
