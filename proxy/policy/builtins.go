package policy

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // local_time must know every zone even on hosts without a zone database
	"unicode"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
	"golang.org/x/text/unicode/norm"
)

// The custom built-in functions policies may call. They are registered globally when this package is
// loaded, so they work in Compile, in a bundle's Rego tests and in Eval alike. Each one does in Go what
// would cost a loop over large data in Rego; the work that depends only on data (a phrase list, the
// templates) is done once per data value and cached.
const (
	// BuiltinPhrasesMatch is smsproxy.phrases_match(text, phrases): the phrases of the list that occur in
	// text as whole words, compared case-, accent-, punctuation- and spacing-insensitively; sorted.
	BuiltinPhrasesMatch = "smsproxy.phrases_match"
	// BuiltinCardNumber is smsproxy.has_card_number(text): true when text holds a 13-19 digit number
	// (digits optionally grouped by single spaces or dashes) that passes the Luhn check.
	BuiltinCardNumber = "smsproxy.has_card_number"
	// BuiltinIBAN is smsproxy.has_iban(text): true when text holds an IBAN with a valid check sum.
	BuiltinIBAN = "smsproxy.has_iban"
	// BuiltinLocalTime is smsproxy.local_time(zone, unix_seconds): {"hour": 0-23, "weekday": 0-6 (Sunday 0)}
	// in the IANA time zone; an unknown zone is an error.
	BuiltinLocalTime = "smsproxy.local_time"
	// BuiltinTemplateMatch is smsproxy.template_match(body, category, templates): the id of the first
	// template (by id order) of that category whose text in some locale the body is a rendering of, or "".
	// templates is shaped like data.region.templates: {id: {"category": c, "locales": {locale: text}}}.
	BuiltinTemplateMatch = "smsproxy.template_match"
	// BuiltinContentScan is smsproxy.content_scan(text, lists): everything the content rules need from one
	// read of the body. lists is shaped like data.region.content.lists ({name: {"phrases": [...], …}}); the
	// result is {"phrases": {name: [phrases found, sorted]} (only lists with a hit), "card_number": bool,
	// "iban": bool}, with phrases matched as by smsproxy.phrases_match and numbers as by
	// smsproxy.has_card_number and smsproxy.has_iban.
	BuiltinContentScan = "smsproxy.content_scan"
	// BuiltinMasks is smsproxy.masks(fields, body_style): the object {field: style} as the array
	// [{"field": f, "style": s}, …] in key order, leaving out "body", followed by {"field": "body",
	// "style": body_style}: the whole masks list of a decision in one call, computed once per data
	// value and style.
	BuiltinMasks = "smsproxy.masks"
	// BuiltinLimitFor is smsproxy.limit_for(value, limits, limit): the limit {"key", "rate", "period",
	// "burst", "code", "message"} a rule declares, for a limit {"limit": name, "code": c, "key": k,
	// "message": m}. limits is data.region.limits, whose entry name gives {"rate": n, "period": p} and
	// an optional "burst" (0 when absent) and "window" (copied as "window": true only when true); k and m hold the message's value (an app, a number, …) where
	// they say "{value}", and m the entry's rate and period where it says "{rate}" and "{period}". The
	// limit is a constant in the policy, so the rule builds nothing of its own: the sentence is split at
	// its placeholders once per policy, not once per message. It is undefined when limits has no entry
	// name or the entry no rate or no period, as a rule reading them would be, and an error when the
	// rate is not a whole number or the period not a string.
	BuiltinLimitFor = "smsproxy.limit_for"
)

func init() {
	stringList := types.NewArray(nil, types.S)
	rego.RegisterBuiltin2(&rego.Function{
		Name:        BuiltinPhrasesMatch,
		Description: "Phrases of the list found in the text as whole words, ignoring case, accents, punctuation and spacing.",
		Decl:        types.NewFunction(types.Args(types.S, stringList), stringList),
	}, phrasesMatchBuiltin)
	rego.RegisterBuiltin1(&rego.Function{
		Name:        BuiltinCardNumber,
		Description: "True when the text holds a payment card number that passes the Luhn check.",
		Decl:        types.NewFunction(types.Args(types.S), types.B),
	}, func(_ rego.BuiltinContext, t *ast.Term) (*ast.Term, error) {
		s, err := stringOperand(t, BuiltinCardNumber)
		if err != nil {
			return nil, err
		}
		return ast.InternedTerm(HasCardNumber(s)), nil
	})
	rego.RegisterBuiltin1(&rego.Function{
		Name:        BuiltinIBAN,
		Description: "True when the text holds an IBAN with a valid check sum.",
		Decl:        types.NewFunction(types.Args(types.S), types.B),
	}, func(_ rego.BuiltinContext, t *ast.Term) (*ast.Term, error) {
		s, err := stringOperand(t, BuiltinIBAN)
		if err != nil {
			return nil, err
		}
		return ast.InternedTerm(HasIBAN(s)), nil
	})
	rego.RegisterBuiltin2(&rego.Function{
		Name:        BuiltinLocalTime,
		Description: "The hour (0-23) and weekday (0 = Sunday) of a Unix time in an IANA time zone.",
		Decl: types.NewFunction(types.Args(types.S, types.N),
			types.NewObject(nil, types.NewDynamicProperty(types.S, types.N))),
	}, localTimeBuiltin)
	rego.RegisterBuiltin3(&rego.Function{
		Name:        BuiltinTemplateMatch,
		Description: "The id of the registered template of the category that the body renders, or \"\".",
		Decl: types.NewFunction(types.Args(types.S, types.S,
			types.NewObject(nil, types.NewDynamicProperty(types.S, types.A))), types.S),
	}, templateMatchBuiltin)
	rego.RegisterBuiltin2(&rego.Function{
		Name:        BuiltinContentScan,
		Description: "Phrase-list hits, card numbers and IBANs in the text, in one pass per list.",
		Decl: types.NewFunction(types.Args(types.S, types.NewObject(nil, types.NewDynamicProperty(types.S, types.A))),
			types.NewObject(nil, types.NewDynamicProperty(types.S, types.A))),
	}, contentScanBuiltin)
	rego.RegisterBuiltin2(&rego.Function{
		Name:        BuiltinMasks,
		Description: "The decision's masks: the {field: style} object as a list in key order without body, then the body's style.",
		Decl: types.NewFunction(types.Args(types.NewObject(nil, types.NewDynamicProperty(types.S, types.A)), types.S),
			types.NewArray(nil, types.NewObject(nil, types.NewDynamicProperty(types.S, types.A)))),
	}, masksBuiltin)
	anyObject := types.NewObject(nil, types.NewDynamicProperty(types.S, types.A))
	rego.RegisterBuiltin3(&rego.Function{
		Name:        BuiltinLimitFor,
		Description: "A declared limit for a value of the message: the named region limit's rate, period and burst with the rule's code, key and sentence.",
		Decl:        types.NewFunction(types.Args(types.S, anyObject, anyObject), anyObject),
	}, limitForBuiltin)
}

func stringOperand(t *ast.Term, fn string) (string, error) {
	s, ok := t.Value.(ast.String)
	if !ok {
		return "", fmt.Errorf("%s: operand must be a string, got %s", fn, ast.ValueName(t.Value))
	}
	return string(s), nil
}

// dataCache keeps what was compiled from a data value, keyed by the value's identity. Data values of a
// loaded bundle live as long as its store, so each is compiled once; values built during evaluation
// (e.g. by `with` in tests) are compiled on use. The cache is copy-on-write so reads take no lock, and
// it is emptied when full so old revisions do not pile up.
type dataCache[T any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[any]T]
}

const dataCacheSize = 16

func (c *dataCache[T]) get(v ast.Value, build func() (T, error)) (T, error) {
	if reflect.ValueOf(v).Kind() != reflect.Pointer {
		return build() // not identifiable; never expected for arrays and objects
	}
	if m := c.m.Load(); m != nil {
		if t, ok := (*m)[v]; ok {
			return t, nil
		}
	}
	t, err := build()
	if err != nil {
		return t, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := map[any]T{}
	if m := c.m.Load(); m != nil && len(*m) < dataCacheSize {
		for k, x := range *m {
			next[k] = x
		}
	}
	next[v] = t
	c.m.Store(&next)
	return t, nil
}

var phraseCache dataCache[*PhraseMatcher]

func phrasesMatchBuiltin(_ rego.BuiltinContext, text, list *ast.Term) (*ast.Term, error) {
	s, err := stringOperand(text, BuiltinPhrasesMatch)
	if err != nil {
		return nil, err
	}
	arr, ok := list.Value.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("%s: phrases must be an array of strings, got %s", BuiltinPhrasesMatch, ast.ValueName(list.Value))
	}
	m, err := phraseCache.get(arr, func() (*PhraseMatcher, error) {
		phrases := make([]string, 0, arr.Len())
		var bad error
		arr.Foreach(func(t *ast.Term) {
			p, ok := t.Value.(ast.String)
			if !ok && bad == nil {
				bad = fmt.Errorf("%s: phrases must be an array of strings, found %s", BuiltinPhrasesMatch, ast.ValueName(t.Value))
			}
			phrases = append(phrases, string(p))
		})
		if bad != nil {
			return nil, bad
		}
		return NewPhraseMatcher(phrases), nil
	})
	if err != nil {
		return nil, err
	}
	found := m.Match(s)
	terms := make([]*ast.Term, len(found))
	for i, p := range found {
		terms[i] = ast.StringTerm(p)
	}
	return ast.ArrayTerm(terms...), nil
}

// listMatcher is one phrase list of data.region.content.lists compiled for content_scan.
type listMatcher struct {
	name *ast.Term
	m    *PhraseMatcher
}

var listsCache dataCache[[]listMatcher]

var (
	keyPhrases    = ast.InternedTerm("phrases")
	keyCardNumber = ast.InternedTerm("card_number")
	keyIBAN       = ast.InternedTerm("iban")
	// noHits is the result for a body with no hit at all, the common case; it is shared, never changed.
	noHits = ast.ObjectTerm(
		[2]*ast.Term{keyPhrases, ast.ObjectTerm()},
		[2]*ast.Term{keyCardNumber, ast.InternedTerm(false)},
		[2]*ast.Term{keyIBAN, ast.InternedTerm(false)},
	)
)

func contentScanBuiltin(_ rego.BuiltinContext, text, lists *ast.Term) (*ast.Term, error) {
	s, err := stringOperand(text, BuiltinContentScan)
	if err != nil {
		return nil, err
	}
	obj, ok := lists.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s: lists must be an object, got %s", BuiltinContentScan, ast.ValueName(lists.Value))
	}
	ms, err := listsCache.get(obj, func() ([]listMatcher, error) {
		var out []listMatcher
		var bad error
		obj.Foreach(func(k, v *ast.Term) {
			lo, ok := v.Value.(ast.Object)
			if !ok {
				bad = fmt.Errorf("%s: list %v must be an object", BuiltinContentScan, k)
				return
			}
			var phrases []string
			if pt := lo.Get(keyPhrases); pt != nil {
				arr, ok := pt.Value.(*ast.Array)
				if !ok {
					bad = fmt.Errorf("%s: phrases of list %v must be an array of strings", BuiltinContentScan, k)
					return
				}
				arr.Foreach(func(t *ast.Term) {
					if p, ok := t.Value.(ast.String); ok {
						phrases = append(phrases, string(p))
					} else {
						bad = fmt.Errorf("%s: phrases of list %v must be an array of strings", BuiltinContentScan, k)
					}
				})
			}
			out = append(out, listMatcher{name: k, m: NewPhraseMatcher(phrases)})
		})
		return out, bad
	})
	if err != nil {
		return nil, err
	}
	var hits [][2]*ast.Term
	norm := ""
	if len(ms) > 0 {
		norm = NormalizeText(s) // once for every list
	}
	for _, l := range ms {
		found := l.m.matchNormalized(norm)
		if len(found) == 0 {
			continue
		}
		terms := make([]*ast.Term, len(found))
		for i, p := range found {
			terms[i] = ast.StringTerm(p)
		}
		hits = append(hits, [2]*ast.Term{l.name, ast.ArrayTerm(terms...)})
	}
	card, iban := HasCardNumber(s), HasIBAN(s)
	if len(hits) == 0 && !card && !iban {
		return noHits, nil
	}
	return ast.ObjectTerm(
		[2]*ast.Term{keyPhrases, ast.ObjectTerm(hits...)},
		[2]*ast.Term{keyCardNumber, ast.InternedTerm(card)},
		[2]*ast.Term{keyIBAN, ast.InternedTerm(iban)},
	), nil
}

var fieldMasksCache dataCache[*ast.Term]

func fieldMasks(fields *ast.Term) (*ast.Term, error) {
	obj, ok := fields.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s: fields must be an object, got %s", BuiltinMasks, ast.ValueName(fields.Value))
	}
	return fieldMasksCache.get(obj, func() (*ast.Term, error) {
		var masks []*ast.Term
		for _, k := range obj.Keys() { // sorted
			if k.Equal(keyBody) {
				continue
			}
			masks = append(masks, ast.ObjectTerm([2]*ast.Term{keyField, k}, [2]*ast.Term{keyStyle, obj.Get(k)}))
		}
		return ast.ArrayTerm(masks...), nil
	})
}

// bodyMasks are the masks lists of one fields object, one per body style.
type bodyMasks struct {
	fields []*ast.Term // the field masks, without body
	mu     sync.Mutex
	styles atomic.Pointer[map[string]*ast.Term]
}

var masksCache dataCache[*bodyMasks]

func masksBuiltin(_ rego.BuiltinContext, fields, style *ast.Term) (*ast.Term, error) {
	obj, ok := fields.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s: fields must be an object, got %s", BuiltinMasks, ast.ValueName(fields.Value))
	}
	s, err := stringOperand(style, BuiltinMasks)
	if err != nil {
		return nil, err
	}
	bm, err := masksCache.get(obj, func() (*bodyMasks, error) {
		fm, err := fieldMasks(fields)
		if err != nil {
			return nil, err
		}
		bm := &bodyMasks{}
		fm.Value.(*ast.Array).Foreach(func(t *ast.Term) { bm.fields = append(bm.fields, t) })
		return bm, nil
	})
	if err != nil {
		return nil, err
	}
	return bm.with(s), nil
}

// with returns the masks list ending with the body's style; lists are kept per style (a region uses a
// handful), so deciding a message allocates none.
func (bm *bodyMasks) with(style string) *ast.Term {
	if m := bm.styles.Load(); m != nil {
		if t, ok := (*m)[style]; ok {
			return t
		}
	}
	terms := make([]*ast.Term, 0, len(bm.fields)+1)
	terms = append(terms, bm.fields...)
	terms = append(terms, ast.ObjectTerm([2]*ast.Term{keyField, keyBody}, [2]*ast.Term{keyStyle, ast.StringTerm(style)}))
	t := ast.ArrayTerm(terms...)
	bm.mu.Lock()
	defer bm.mu.Unlock()
	next := map[string]*ast.Term{}
	if m := bm.styles.Load(); m != nil && len(*m) < dataCacheSize {
		for k, x := range *m {
			next[k] = x
		}
	}
	next[style] = t
	bm.styles.Store(&next)
	return t
}

// limitTemplate is a limit of smsproxy.limit_for split at its placeholders, once per policy.
type limitTemplate struct {
	name     *ast.Term
	code     *ast.Term
	key      []templatePart
	message  []templatePart
	constKey *ast.Term // the key when it holds no {value}
}

// templatePart is literal text followed by a placeholder (one of the limitValue… constants, or none).
type templatePart struct {
	text string
	then int
}

const (
	limitNone = iota
	limitValue
	limitRate
	limitPeriod
)

var (
	keyLimit        = ast.InternedTerm("limit")
	limitTemplates  dataCache[*limitTemplate]
	placeholderKind = map[string]int{"{value}": limitValue, "{rate}": limitRate, "{period}": limitPeriod}
)

// splitTemplate splits text at the placeholders it may hold.
func splitTemplate(text string, allowed ...int) []templatePart {
	var parts []templatePart
	for {
		i := strings.IndexByte(text, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(text[i:], '}')
		if j < 0 {
			break
		}
		kind := placeholderKind[text[i:i+j+1]]
		if kind == limitNone || !slices.Contains(allowed, kind) {
			// not a placeholder: keep the brace as text and look further
			parts = append(parts, templatePart{text: text[:i+1]})
			text = text[i+1:]
			continue
		}
		parts = append(parts, templatePart{text: text[:i], then: kind})
		text = text[i+j+1:]
	}
	return append(parts, templatePart{text: text})
}

func newLimitTemplate(spec ast.Object) (*limitTemplate, error) {
	name, code, key, msg := spec.Get(keyLimit), spec.Get(keyCode), spec.Get(keyKey), spec.Get(keyMessage)
	if name == nil || code == nil || key == nil || msg == nil {
		return nil, fmt.Errorf("%s: the limit needs a limit name, a code, a key and a message", BuiltinLimitFor)
	}
	k, ok := key.Value.(ast.String)
	if !ok {
		return nil, fmt.Errorf("%s: the key must be a string, got %s", BuiltinLimitFor, ast.ValueName(key.Value))
	}
	m, ok := msg.Value.(ast.String)
	if !ok {
		return nil, fmt.Errorf("%s: the message must be a string, got %s", BuiltinLimitFor, ast.ValueName(msg.Value))
	}
	t := &limitTemplate{name: name, code: code, key: splitTemplate(string(k), limitValue), message: splitTemplate(string(m), limitValue, limitRate, limitPeriod)}
	if len(t.key) == 1 {
		t.constKey = key
	}
	return t, nil
}

// fill writes parts with the placeholders' values.
func fill(parts []templatePart, values *[4]string) string {
	if len(parts) == 1 {
		return parts[0].text
	}
	n := 0
	for _, p := range parts {
		n += len(p.text) + len(values[p.then])
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range parts {
		b.WriteString(p.text)
		b.WriteString(values[p.then])
	}
	return b.String()
}

func limitForBuiltin(_ rego.BuiltinContext, valueTerm, limitsTerm, specTerm *ast.Term) (*ast.Term, error) {
	value, err := stringOperand(valueTerm, BuiltinLimitFor)
	if err != nil {
		return nil, err
	}
	limits, ok := limitsTerm.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s: the limits must be an object, got %s", BuiltinLimitFor, ast.ValueName(limitsTerm.Value))
	}
	spec, ok := specTerm.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s: the limit must be an object, got %s", BuiltinLimitFor, ast.ValueName(specTerm.Value))
	}
	t, err := limitTemplates.get(spec, func() (*limitTemplate, error) { return newLimitTemplate(spec) })
	if err != nil {
		return nil, err
	}
	cfgTerm := limits.Get(t.name)
	if cfgTerm == nil {
		return nil, nil // as undefined as data.region.limits[name]
	}
	cfg, ok := cfgTerm.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s: the limit's data must be an object, got %s", BuiltinLimitFor, ast.ValueName(cfgTerm.Value))
	}
	rateTerm, period := cfg.Get(keyRate), cfg.Get(keyPeriod)
	if rateTerm == nil || period == nil {
		return nil, nil // as undefined as cfg.rate or cfg.period
	}
	rate, ok := rateTerm.Value.(ast.Number)
	if !ok {
		return nil, fmt.Errorf("%s: rate must be a number, got %s", BuiltinLimitFor, ast.ValueName(rateTerm.Value))
	}
	rateText, ok := wholeNumber(rate)
	if !ok {
		return nil, fmt.Errorf("%s: rate must be a whole number, got %v", BuiltinLimitFor, rate)
	}
	periodText, ok := period.Value.(ast.String)
	if !ok {
		return nil, fmt.Errorf("%s: period must be a string, got %s", BuiltinLimitFor, ast.ValueName(period.Value))
	}
	burst := cfg.Get(keyBurst)
	if burst == nil {
		burst = ast.InternedTerm(0)
	}
	values := [4]string{limitValue: value, limitRate: rateText, limitPeriod: string(periodText)}
	key := t.constKey
	if key == nil {
		key = ast.StringTerm(fill(t.key, &values))
	}
	fields := [][2]*ast.Term{
		{keyLimit, t.name},
		{keyKey, key},
		{keyRate, rateTerm},
		{keyPeriod, period},
		{keyBurst, burst},
		{keyCode, t.code},
		{keyMessage, ast.StringTerm(fill(t.message, &values))},
	}
	// window is copied only when true, so a GCRA limit's object is as before.
	if w := cfg.Get(keyWindow); w != nil {
		if b, ok := w.Value.(ast.Boolean); ok && bool(b) {
			fields = append(fields, [2]*ast.Term{keyWindow, ast.InternedTerm(true)})
		} else if !ok {
			return nil, fmt.Errorf("%s: window must be a boolean, got %s", BuiltinLimitFor, ast.ValueName(w.Value))
		}
	}
	return ast.ObjectTerm(fields...), nil
}

// wholeNumber returns n as format_int(n, 10) writes it, if n is a whole number.
func wholeNumber(n ast.Number) (string, bool) {
	if i, ok := n.Int64(); ok {
		return strconv.FormatInt(i, 10), true
	}
	return "", false
}

var (
	zoneMu    sync.RWMutex
	zoneCache = map[string]*time.Location{}
)

func loadZone(name string) (*time.Location, error) {
	zoneMu.RLock()
	loc, ok := zoneCache[name]
	zoneMu.RUnlock()
	if ok {
		return loc, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" || name == "Local" {
		return nil, fmt.Errorf("%s: unknown time zone %q", BuiltinLocalTime, name)
	}
	zoneMu.Lock()
	if len(zoneCache) < 1024 {
		zoneCache[name] = loc
	}
	zoneMu.Unlock()
	return loc, nil
}

var (
	keyHour    = ast.InternedTerm("hour")
	keyWeekday = ast.InternedTerm("weekday")
)

func localTimeBuiltin(_ rego.BuiltinContext, zone, now *ast.Term) (*ast.Term, error) {
	name, err := stringOperand(zone, BuiltinLocalTime)
	if err != nil {
		return nil, err
	}
	n, ok := now.Value.(ast.Number)
	if !ok {
		return nil, fmt.Errorf("%s: time must be a number of Unix seconds", BuiltinLocalTime)
	}
	secs, ok := n.Int64()
	if !ok {
		return nil, fmt.Errorf("%s: time must be a whole number of Unix seconds", BuiltinLocalTime)
	}
	loc, err := loadZone(name)
	if err != nil {
		return nil, err
	}
	t := time.Unix(secs, 0).In(loc)
	return ast.ObjectTerm(
		[2]*ast.Term{keyHour, ast.InternedTerm(t.Hour())},
		[2]*ast.Term{keyWeekday, ast.InternedTerm(int(t.Weekday()))},
	), nil
}

var templateCache dataCache[*TemplateMatcher]

func templateMatchBuiltin(_ rego.BuiltinContext, body, category, templates *ast.Term) (*ast.Term, error) {
	s, err := stringOperand(body, BuiltinTemplateMatch)
	if err != nil {
		return nil, err
	}
	cat, err := stringOperand(category, BuiltinTemplateMatch)
	if err != nil {
		return nil, err
	}
	obj, ok := templates.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s: templates must be an object", BuiltinTemplateMatch)
	}
	m, err := templateCache.get(obj, func() (*TemplateMatcher, error) {
		var ts []MatchTemplate
		obj.Foreach(func(k, v *ast.Term) {
			id, _ := k.Value.(ast.String)
			tv, _ := v.Value.(ast.Object)
			if tv == nil {
				return
			}
			mt := MatchTemplate{ID: string(id)}
			if c, ok := tv.Get(ast.InternedTerm("category")).Value.(ast.String); ok {
				mt.Category = string(c)
			}
			if ls := tv.Get(ast.InternedTerm("locales")); ls != nil {
				if lo, ok := ls.Value.(ast.Object); ok {
					lo.Foreach(func(_, text *ast.Term) {
						if s, ok := text.Value.(ast.String); ok {
							mt.Texts = append(mt.Texts, string(s))
						}
					})
				}
			}
			ts = append(ts, mt)
		})
		return NewTemplateMatcher(ts), nil
	})
	if err != nil {
		return nil, err
	}
	return ast.StringTerm(m.Match(s, cat)), nil
}

// NormalizeText folds text for phrase matching: lower case, accents removed, every run of characters
// that are not letters or digits turned into one space, and runs of single-character words joined
// ("C.V.V" and "c v v" become "cvv"), with no leading or trailing space.
func NormalizeText(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		s = norm.NFD.String(s)
	}
	// The words' characters, folded, one after the other in buf; ends[i] is where word i ends.
	buf := make([]byte, 0, len(s))
	var endsArray [32]int
	ends := endsArray[:0]
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			c := byte(r)
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
				buf = append(buf, c)
				continue
			case c >= 'A' && c <= 'Z':
				buf = append(buf, c+'a'-'A')
				continue
			}
		case unicode.Is(unicode.Mn, r):
			continue // a combining accent: dropped
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			switch r {
			case 'ß':
				buf = append(buf, "ss"...)
			case 'ı':
				buf = append(buf, 'i')
			default:
				buf = utf8.AppendRune(buf, unicode.ToLower(r))
			}
			continue
		}
		// anything else ends the word, if one was started
		if len(buf) > 0 && (len(ends) == 0 || ends[len(ends)-1] < len(buf)) {
			ends = append(ends, len(buf))
		}
	}
	if len(buf) > 0 && (len(ends) == 0 || ends[len(ends)-1] < len(buf)) {
		ends = append(ends, len(buf))
	}
	start := func(i int) int {
		if i == 0 {
			return 0
		}
		return ends[i-1]
	}
	single := func(i int) bool { return utf8.RuneCount(buf[start(i):ends[i]]) == 1 }
	var out strings.Builder
	out.Grow(len(buf) + len(ends))
	for i := 0; i < len(ends); {
		end := i + 1
		if single(i) {
			// a run of single-character words is written as one word
			for end < len(ends) && single(end) {
				end++
			}
		}
		if out.Len() > 0 {
			out.WriteByte(' ')
		}
		out.Write(buf[start(i):ends[end-1]])
		i = end
	}
	return out.String()
}

// PhraseMatcher finds, in one pass over a text, which phrases of a list it contains as whole words.
// It is an Aho-Corasick automaton over normalised text (see NormalizeText) compiled into a dense
// transition table over the bytes the phrases use. It is safe for concurrent use.
type PhraseMatcher struct {
	phrases []string  // as given
	class   [256]byte // byte → column; 0 for bytes no phrase uses
	cols    int
	delta   []int32 // state*cols + class → next state
	out     []int32 // state → pattern id ending here, or -1
	dict    []int32 // state → next state on its suffix chain with an output, or -1
	patLen  []int32 // pattern id → length in bytes
	patOf   [][]int // pattern id → phrase indexes
}

// NewPhraseMatcher compiles a phrase list. A phrase that normalises to nothing is ignored. A phrase of
// several words also matches with the words run together ("card number" matches "cardnumber").
func NewPhraseMatcher(phrases []string) *PhraseMatcher {
	m := &PhraseMatcher{phrases: phrases}
	patIndex := map[string]int{}
	var pats []string
	addPat := func(p string, phrase int) {
		id, ok := patIndex[p]
		if !ok {
			id = len(pats)
			patIndex[p] = id
			pats = append(pats, p)
			m.patOf = append(m.patOf, nil)
		}
		if !slices.Contains(m.patOf[id], phrase) {
			m.patOf[id] = append(m.patOf[id], phrase)
		}
	}
	for i, ph := range phrases {
		p := NormalizeText(ph)
		if p == "" {
			continue
		}
		addPat(p, i)
		if strings.Contains(p, " ") {
			addPat(strings.ReplaceAll(p, " ", ""), i)
		}
	}
	m.cols = 1
	for _, p := range pats {
		for i := 0; i < len(p); i++ {
			if m.class[p[i]] == 0 {
				m.class[p[i]] = byte(m.cols)
				m.cols++
			}
		}
		if m.cols > 255 {
			break // cannot happen for normalised text with fewer than 255 distinct bytes; stay safe
		}
	}
	// Trie.
	type node struct{ next map[byte]int32 }
	trie := []node{{next: map[byte]int32{}}}
	m.out = []int32{-1}
	for id, p := range pats {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := m.class[p[i]]
			nx, ok := trie[s].next[c]
			if !ok {
				nx = int32(len(trie))
				trie = append(trie, node{next: map[byte]int32{}})
				m.out = append(m.out, -1)
				trie[s].next[c] = nx
			}
			s = nx
		}
		m.out[s] = int32(id)
		m.patLen = append(m.patLen, int32(len(p)))
	}
	// Breadth-first: failure links into a dense DFA.
	n := len(trie)
	m.delta = make([]int32, n*m.cols)
	m.dict = make([]int32, n)
	fail := make([]int32, n)
	queue := make([]int32, 0, n)
	for c := 1; c < m.cols; c++ {
		if nx, ok := trie[0].next[byte(c)]; ok {
			m.delta[c] = nx
			queue = append(queue, nx)
		}
	}
	m.dict[0] = -1
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := fail[s]
		if m.out[f] >= 0 {
			m.dict[s] = f
		} else {
			m.dict[s] = m.dict[f]
		}
		if s == 0 {
			continue
		}
		for c := 1; c < m.cols; c++ {
			if nx, ok := trie[s].next[byte(c)]; ok {
				fail[nx] = m.delta[int(f)*m.cols+c]
				m.delta[int(s)*m.cols+c] = nx
				queue = append(queue, nx)
			} else {
				m.delta[int(s)*m.cols+c] = m.delta[int(f)*m.cols+c]
			}
		}
	}
	// The root's own failure link is itself; its dict must not point at itself.
	m.dict[0] = -1
	return m
}

// Len returns how many phrases the matcher was built from.
func (m *PhraseMatcher) Len() int { return len(m.phrases) }

// Match returns the phrases found in text as whole words, sorted and without duplicates.
func (m *PhraseMatcher) Match(text string) []string {
	if len(m.patLen) == 0 {
		return nil
	}
	return m.matchNormalized(NormalizeText(text))
}

// matchNormalized is Match on a text NormalizeText has already folded.
func (m *PhraseMatcher) matchNormalized(t string) []string {
	if len(m.patLen) == 0 {
		return nil
	}
	var hits []int
	s := int32(0)
	for i := 0; i < len(t); i++ {
		s = m.delta[int(s)*m.cols+int(m.class[t[i]])]
		for o := s; o > 0; o = m.dict[o] {
			id := m.out[o]
			if id < 0 {
				continue
			}
			start := i + 1 - int(m.patLen[id])
			if (start == 0 || t[start-1] == ' ') && (i+1 == len(t) || t[i+1] == ' ') {
				hits = append(hits, m.patOf[id]...)
			}
		}
	}
	if len(hits) == 0 {
		return nil
	}
	found := make([]string, 0, len(hits))
	for _, h := range hits {
		found = append(found, m.phrases[h])
	}
	slices.Sort(found)
	return slices.Compact(found)
}

// HasCardNumber reports whether text holds a payment card number: 13 to 19 digits, optionally grouped
// by single spaces or dashes, passing the Luhn check. A longer run of digits is not a card number.
func HasCardNumber(text string) bool {
	var digits [19]byte
	n, over := 0, false
	end := func() bool {
		ok := !over && n >= 13 && luhn(digits[:n])
		n, over = 0, false
		return ok
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c >= '0' && c <= '9':
			if n < len(digits) {
				digits[n] = c - '0'
				n++
			} else {
				over = true
			}
		case (c == ' ' || c == '-') && n > 0 && i+1 < len(text) && text[i+1] >= '0' && text[i+1] <= '9':
			// a group separator inside the number
		default:
			if end() {
				return true
			}
		}
	}
	return end()
}

func luhn(d []byte) bool {
	sum := 0
	for i := range d {
		v := int(d[len(d)-1-i])
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// HasIBAN reports whether text holds an International Bank Account Number (two letters, two check
// digits and 11 to 30 letters or digits, optionally in groups separated by single spaces) whose
// ISO 13616 check sum is valid.
func HasIBAN(text string) bool {
	for i := 0; i+4 <= len(text); i++ {
		if i > 0 && isAlnum(text[i-1]) {
			continue
		}
		if !isUpper(text[i]) || !isUpper(text[i+1]) || !isDigit(text[i+2]) || !isDigit(text[i+3]) {
			continue
		}
		var buf [34]byte
		n := 0
		for j := i; j < len(text) && n < len(buf); j++ {
			c := text[j]
			if c == ' ' && n > 0 && j+1 < len(text) && isAlnum(text[j+1]) {
				continue
			}
			if !isAlnum(c) {
				break
			}
			if c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			buf[n] = c
			n++
		}
		for l := n; l >= 15; l-- {
			if ibanValid(buf[:l]) {
				return true
			}
		}
	}
	return false
}

func ibanValid(s []byte) bool {
	rem := 0
	add := func(c byte) {
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			v := int(c-'A') + 10
			rem = (rem*100 + v) % 97
		}
	}
	for _, c := range s[4:] {
		add(c)
	}
	for _, c := range s[:4] {
		add(c)
	}
	return rem == 1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isUpper(c) || (c >= 'a' && c <= 'z') }

// MatchTemplate is one registered template as the template matcher sees it.
type MatchTemplate struct {
	ID       string
	Category string
	// Texts are the template's texts in every locale, with {{name}} placeholders.
	Texts []string
}

// TemplateMatcher tells whether a body is a rendering of a registered template: the literal parts of
// one of its texts, in order, with something in each placeholder.
type TemplateMatcher struct {
	byCategory map[string][]compiledTemplate
}

type compiledTemplate struct {
	id    string
	parts []string // literal parts around the placeholders; len = placeholders + 1
}

// NewTemplateMatcher compiles templates; they are tried in id order.
func NewTemplateMatcher(ts []MatchTemplate) *TemplateMatcher {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b MatchTemplate) int { return strings.Compare(a.ID, b.ID) })
	m := &TemplateMatcher{byCategory: map[string][]compiledTemplate{}}
	for _, t := range ts {
		texts := slices.Clone(t.Texts)
		slices.Sort(texts)
		for _, text := range texts {
			m.byCategory[t.Category] = append(m.byCategory[t.Category], compiledTemplate{id: t.ID, parts: splitPlaceholders(text)})
		}
	}
	return m
}

func splitPlaceholders(text string) []string {
	var parts []string
	for {
		i := strings.Index(text, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(text[i:], "}}")
		if j < 0 {
			break
		}
		parts = append(parts, text[:i])
		text = text[i+j+2:]
	}
	return append(parts, text)
}

// Match returns the id of the first template of the category that body renders, or "".
func (m *TemplateMatcher) Match(body, category string) string {
	for _, t := range m.byCategory[category] {
		if t.matches(body) {
			return t.id
		}
	}
	return ""
}

func (t compiledTemplate) matches(body string) bool {
	if len(t.parts) == 1 {
		return body == t.parts[0]
	}
	first, last := t.parts[0], t.parts[len(t.parts)-1]
	if !strings.HasPrefix(body, first) || !strings.HasSuffix(body, last) || len(body) < len(first)+len(last) {
		return false
	}
	rest := body[len(first) : len(body)-len(last)]
	for _, p := range t.parts[1 : len(t.parts)-1] {
		// each placeholder takes at least one character before the next literal part
		if len(rest) == 0 {
			return false
		}
		k := strings.Index(rest[1:], p)
		if k < 0 {
			return false
		}
		rest = rest[1+k+len(p):]
	}
	return len(rest) > 0
}
