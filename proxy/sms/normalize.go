package sms

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits Normalize enforces.
const (
	// MaxSegments is the most segments one message may take.
	MaxSegments = 10
	// MaxDeviceIDChars is the longest device id.
	MaxDeviceIDChars = 128
	// MaxIdempotencyKeyChars is the longest idempotency key.
	MaxIdempotencyKeyChars = 128
	// MaxMetadataKeys is the most metadata entries a message may carry.
	MaxMetadataKeys = 16
	// MaxMetadataKeyChars and MaxMetadataValueChars bound one metadata entry.
	MaxMetadataKeyChars   = 64
	MaxMetadataValueChars = 512
)

// Draft is a message as an app submitted it, before validation.
type Draft struct {
	App            string
	To             string
	From           string
	Body           string
	Template       *TemplateRef
	Category       string
	DeviceID       string
	IdempotencyKey string
	Metadata       map[string]string
}

// Normalize validates d and turns it into a Message: the destination parsed to E.164 with its
// country, the sender classified, the template (if any) rendered with t, and the encoding and
// segment count computed. Exactly one of Body and Template must be given. With a template,
// an empty Category takes the template's category, and a different one is an error. The
// Message's Template is a copy of the reference with Locale set to the locale actually used.
// ID and CreatedAt are left empty for the caller. The first problem found is returned as an
// *Error; the codes are listed in the package documentation.
func Normalize(d Draft, t *Templates) (Message, error) {
	to, err := ParsePhone(d.To)
	if err != nil {
		return Message{}, err
	}
	from, err := ClassifySender(d.From)
	if err != nil {
		return Message{}, err
	}
	var cat Category
	if d.Category != "" || d.Template == nil {
		if cat, err = ParseCategory(d.Category); err != nil {
			return Message{}, err
		}
	}
	m := Message{
		App:            d.App,
		To:             to,
		From:           from,
		Category:       cat,
		DeviceID:       d.DeviceID,
		IdempotencyKey: d.IdempotencyKey,
	}
	switch {
	case d.Body != "" && d.Template != nil:
		return Message{}, errorf(CodeBodyOrTemplate, "body", "give either a body or a template, not both")
	case d.Body == "" && d.Template == nil:
		return Message{}, errorf(CodeBodyOrTemplate, "body", "give a body or a template")
	case d.Template != nil:
		body, tpl, locale, err := t.render(*d.Template)
		if err != nil {
			return Message{}, err
		}
		if m.Category == "" {
			m.Category = tpl.Category
		} else if m.Category != tpl.Category {
			return Message{}, errorf(CodeTemplateCategoryMismatch, "category", "template %q is for category %q, not %q", tpl.ID, tpl.Category, m.Category)
		}
		ref := TemplateRef{ID: d.Template.ID, Locale: locale}
		if len(d.Template.Params) > 0 {
			ref.Params = make(map[string]string, len(d.Template.Params))
			for k, v := range d.Template.Params {
				ref.Params[k] = v
			}
		}
		m.Template, m.Body = &ref, body
	default:
		m.Body = d.Body
	}
	// Composed form (NFC): "e" + a combining accent becomes "é", which GSM-7 has, rather than
	// two characters that force UCS-2 and halve what a segment holds.
	m.Body = norm.NFC.String(m.Body)
	if err := checkBody(m.Body); err != nil {
		return Message{}, err
	}
	seg := Encode(m.Body)
	if seg.Segments > MaxSegments {
		return Message{}, errorf(CodeBodyTooLong, "body", "the body takes %d segments; at most %d are allowed", seg.Segments, MaxSegments)
	}
	m.Encoding, m.Segments = seg.Encoding, seg.Segments
	if !checkText(d.DeviceID, MaxDeviceIDChars) {
		return Message{}, errorf(CodeInvalidDeviceID, "device_id", "the device id must be at most %d printable characters", MaxDeviceIDChars)
	}
	if err := CheckIdempotencyKey(d.IdempotencyKey); err != nil {
		return Message{}, err
	}
	if m.Metadata, err = copyMetadata(d.Metadata); err != nil {
		return Message{}, err
	}
	return m, nil
}

// checkBody refuses invalid UTF-8, control characters other than \n and \r, and blank bodies.
func checkBody(body string) error {
	if !utf8.ValidString(body) {
		return errorf(CodeInvalidBody, "body", "the body is not valid UTF-8")
	}
	for _, r := range body {
		if r != '\n' && r != '\r' && isControl(r) {
			return errorf(CodeInvalidBody, "body", "the body contains the control character U+%04X", r)
		}
	}
	if strings.TrimFunc(body, invisible) == "" {
		return errorf(CodeInvalidBody, "body", "the body is blank")
	}
	return nil
}

// CheckIdempotencyKey refuses a key of more than MaxIdempotencyKeyChars characters or with control
// characters. Normalize checks it too; a caller that looks the key up first checks it before.
func CheckIdempotencyKey(key string) error {
	if !checkText(key, MaxIdempotencyKeyChars) {
		return errorf(CodeInvalidIdempotencyKey, "idempotency_key", "the idempotency key must be at most %d printable characters", MaxIdempotencyKeyChars)
	}
	return nil
}

// invisible reports whether r shows nothing: white space or a format character (zero-width space,
// byte order mark, word joiner).
func invisible(r rune) bool {
	return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r)
}

// isControl reports whether r is a C0 or C1 control character or DEL.
func isControl(r rune) bool {
	return r < 0x20 || (r >= 0x7F && r <= 0x9F)
}

// checkText accepts valid UTF-8 of at most max characters with no control characters.
func checkText(s string, max int) bool {
	if len(s) > max*utf8.UTFMax || !utf8.ValidString(s) {
		return false
	}
	n := 0
	for _, r := range s {
		if isControl(r) {
			return false
		}
		n++
	}
	return n <= max
}

// copyMetadata validates md and returns a copy the caller cannot change; nil when empty.
func copyMetadata(md map[string]string) (map[string]string, error) {
	if len(md) == 0 {
		return nil, nil
	}
	if len(md) > MaxMetadataKeys {
		return nil, errorf(CodeInvalidMetadata, "metadata", "at most %d metadata keys are allowed", MaxMetadataKeys)
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		if k == "" || !checkText(k, MaxMetadataKeyChars) {
			return nil, errorf(CodeInvalidMetadata, "metadata", "a metadata key must be 1 to %d printable characters", MaxMetadataKeyChars)
		}
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > MaxMetadataValueChars {
			return nil, errorf(CodeInvalidMetadata, "metadata", "the value of metadata key %q must be valid UTF-8 of at most %d characters", k, MaxMetadataValueChars)
		}
		out[k] = v
	}
	return out, nil
}
