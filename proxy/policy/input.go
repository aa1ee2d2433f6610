package policy

import (
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/smsproxy/smsproxy/proxy/sms"
)

// Input is what the policy sees of one message, as the Rego document input.
type Input struct {
	// App is the name of the sending app.
	App string
	// Message is the normalised message.
	Message MessageInput
	// Now is the decision time; it is given to Rego as input.now in Unix seconds and left out when zero.
	Now time.Time
	// Facts are what the proxy knows about the recipient before the decision (input.facts).
	Facts Facts
}

// Facts are the recipient state the proxy gathers before asking the policy (input.facts): opt-out,
// consent records and the recipient's local time. The zero value means "not opted out, no consent
// records, local midnight on a Sunday in an unknown zone".
type Facts struct {
	// OptedOut is true when the recipient opted out of this app (or of every app).
	OptedOut bool
	// Consents holds the recorded lawful basis per category; only categories with a record are present.
	Consents map[string]Consent
	// LocalHour is the hour of day (0-23) in the recipient's time zone.
	LocalHour int
	// LocalWeekday is the day of the week in the recipient's time zone, 0 for Sunday.
	LocalWeekday int
	// TimeZone is the IANA name of the recipient's time zone, e.g. "Asia/Singapore"; "" when unknown.
	TimeZone string
	// LocalHours are the hours of day in every time zone the number may be in, when those zones
	// disagree (TimeZone is then ""): an area code across two zones, such as Idaho's. A rule on the
	// local time holds only if it holds at each of them. Empty when the zone is known or unknown.
	LocalHours []int
}

// Consent is one recorded lawful basis for sending a category to a recipient.
type Consent struct {
	// Basis is "consent", "contract", "legal_obligation" or "legitimate_interest".
	Basis string
	// GrantedAt is when the basis was recorded; given to Rego in Unix seconds.
	GrantedAt time.Time
	// Withdrawn is true when the recipient withdrew it.
	Withdrawn bool
}

// MessageInput is the normalised message as the policy sees it (input.message).
type MessageInput struct {
	To             string
	Country        string
	CallingCode    int
	NumberType     string
	From           string
	SenderKind     string
	Category       string
	Body           string
	Encoding       string
	Segments       int
	TemplateID     string
	TemplateLocale string
	DeviceID       string
}

// NewInput describes a normalised message for the policy.
func NewInput(m *sms.Message, now time.Time) *Input {
	in := &Input{
		App: m.App,
		Now: now,
		Message: MessageInput{
			To:          m.To.E164,
			Country:     m.To.Country,
			CallingCode: m.To.CallingCode,
			NumberType:  m.To.Type,
			From:        m.From.ID,
			SenderKind:  string(m.From.Kind),
			Category:    string(m.Category),
			Body:        m.Body,
			Encoding:    string(m.Encoding),
			Segments:    m.Segments,
			DeviceID:    m.DeviceID,
		},
	}
	if m.Template != nil {
		in.Message.TemplateID = m.Template.ID
		in.Message.TemplateLocale = m.Template.Locale
	}
	return in
}

// Interned keys of the input document.
var (
	keyApp         = ast.InternedTerm("app")
	keyNow         = ast.InternedTerm("now")
	keyMessage     = ast.InternedTerm("message")
	keyTo          = ast.InternedTerm("to")
	keyCountry     = ast.InternedTerm("country")
	keyCallingCode = ast.InternedTerm("calling_code")
	keyNumberType  = ast.InternedTerm("number_type")
	keyFrom        = ast.InternedTerm("from")
	keySenderKind  = ast.InternedTerm("sender_kind")
	keyCategory    = ast.InternedTerm("category")
	keyBody        = ast.InternedTerm("body")
	keyEncoding    = ast.InternedTerm("encoding")
	keySegments    = ast.InternedTerm("segments")
	keyTemplate    = ast.InternedTerm("template")
	keyID          = ast.InternedTerm("id")
	keyLocale      = ast.InternedTerm("locale")
	keyDeviceID    = ast.InternedTerm("device_id")
	keyFacts       = ast.InternedTerm("facts")
	keyClass       = ast.InternedTerm("class")
	keyOptedOut    = ast.InternedTerm("opted_out")
	keyConsents    = ast.InternedTerm("consents")
	keyLocalHour   = ast.InternedTerm("local_hour")
	keyLocalWday   = ast.InternedTerm("local_weekday")
	keyTimeZone    = ast.InternedTerm("time_zone")
	keyLocalHours  = ast.InternedTerm("local_hours")
	keyBasis       = ast.InternedTerm("basis")
	keyGrantedAt   = ast.InternedTerm("granted_at")
	keyWithdrawn   = ast.InternedTerm("withdrawn")
)

// str returns a string term, sharing the interned term for common values such as "" or "otp".
func str(s string) *ast.Term {
	return ast.InternedTerm(s)
}

// value builds the Rego input document directly as an AST value, with no JSON round trip, and
// with input.class set to class unless class is nil.
func (in *Input) value(class *ast.Term) ast.Value {
	m := &in.Message
	msg := make([][2]*ast.Term, 0, 13)
	msg = append(msg,
		[2]*ast.Term{keyTo, str(m.To)},
		[2]*ast.Term{keyCountry, str(m.Country)},
		[2]*ast.Term{keyCallingCode, ast.InternedTerm(m.CallingCode)},
		[2]*ast.Term{keyNumberType, str(m.NumberType)},
		[2]*ast.Term{keyFrom, str(m.From)},
		[2]*ast.Term{keySenderKind, str(m.SenderKind)},
		[2]*ast.Term{keyCategory, str(m.Category)},
		[2]*ast.Term{keyBody, str(m.Body)},
		[2]*ast.Term{keyEncoding, str(m.Encoding)},
		[2]*ast.Term{keySegments, ast.InternedTerm(m.Segments)},
		[2]*ast.Term{keyDeviceID, str(m.DeviceID)},
	)
	if m.TemplateID != "" {
		tpl := ast.NewObject(
			[2]*ast.Term{keyID, str(m.TemplateID)},
			[2]*ast.Term{keyLocale, str(m.TemplateLocale)},
		)
		msg = append(msg, [2]*ast.Term{keyTemplate, ast.NewTerm(tpl)})
	}
	top := make([][2]*ast.Term, 0, 5)
	top = append(top,
		[2]*ast.Term{keyApp, str(in.App)},
		[2]*ast.Term{keyMessage, ast.NewTerm(ast.NewObject(msg...))},
		[2]*ast.Term{keyFacts, ast.NewTerm(in.Facts.value())},
	)
	if !in.Now.IsZero() {
		top = append(top, [2]*ast.Term{keyNow, ast.InternedTerm(in.Now.Unix())})
	}
	if class != nil {
		top = append(top, [2]*ast.Term{keyClass, class})
	}
	return ast.NewObject(top...)
}

// Map returns the input document as Go values, the shape rego.EvalInput and encoding/json take.
func (in *Input) Map() map[string]any {
	m := &in.Message
	msg := map[string]any{
		"to":           m.To,
		"country":      m.Country,
		"calling_code": m.CallingCode,
		"number_type":  m.NumberType,
		"from":         m.From,
		"sender_kind":  m.SenderKind,
		"category":     m.Category,
		"body":         m.Body,
		"encoding":     m.Encoding,
		"segments":     m.Segments,
		"device_id":    m.DeviceID,
	}
	if m.TemplateID != "" {
		msg["template"] = map[string]any{"id": m.TemplateID, "locale": m.TemplateLocale}
	}
	doc := map[string]any{"app": in.App, "message": msg, "facts": in.Facts.goMap()}
	if !in.Now.IsZero() {
		doc["now"] = in.Now.Unix()
	}
	return doc
}

// value builds input.facts as an AST value.
func (f *Facts) value() ast.Value {
	consents := ast.NewObject()
	for cat, c := range f.Consents {
		consents.Insert(str(cat), ast.NewTerm(ast.NewObject(
			[2]*ast.Term{keyBasis, str(c.Basis)},
			[2]*ast.Term{keyGrantedAt, ast.InternedTerm(unixOrZero(c.GrantedAt))},
			[2]*ast.Term{keyWithdrawn, ast.InternedTerm(c.Withdrawn)},
		)))
	}
	obj := ast.NewObject(
		[2]*ast.Term{keyOptedOut, ast.InternedTerm(f.OptedOut)},
		[2]*ast.Term{keyConsents, ast.NewTerm(consents)},
		[2]*ast.Term{keyLocalHour, ast.InternedTerm(f.LocalHour)},
		[2]*ast.Term{keyLocalWday, ast.InternedTerm(f.LocalWeekday)},
		[2]*ast.Term{keyTimeZone, str(f.TimeZone)},
	)
	if len(f.LocalHours) > 0 {
		hours := make([]*ast.Term, len(f.LocalHours))
		for i, h := range f.LocalHours {
			hours[i] = ast.InternedTerm(h)
		}
		obj.Insert(keyLocalHours, ast.ArrayTerm(hours...))
	}
	return obj
}

// goMap returns input.facts as Go values.
func (f *Facts) goMap() map[string]any {
	consents := make(map[string]any, len(f.Consents))
	for cat, c := range f.Consents {
		consents[cat] = map[string]any{"basis": c.Basis, "granted_at": unixOrZero(c.GrantedAt), "withdrawn": c.Withdrawn}
	}
	m := map[string]any{
		"opted_out":     f.OptedOut,
		"consents":      consents,
		"local_hour":    f.LocalHour,
		"local_weekday": f.LocalWeekday,
		"time_zone":     f.TimeZone,
	}
	if len(f.LocalHours) > 0 {
		hours := make([]any, len(f.LocalHours))
		for i, h := range f.LocalHours {
			hours[i] = h
		}
		m["local_hours"] = hours
	}
	return m
}

// unixOrZero returns t in Unix seconds, or 0 for the zero time.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
