package sms

import (
	"fmt"
	"time"
)

// Category is what a message is for; policies decide per category.
type Category string

// The categories an app may send.
const (
	CategoryOTP         Category = "otp"
	CategoryTransaction Category = "transaction"
	CategoryAlert       Category = "alert"
	CategorySecurity    Category = "security"
	CategoryMarketing   Category = "marketing"
)

// Phone is a destination number in E.164 form with the country it belongs to.
type Phone struct {
	// E164 is the number as "+" followed by at most 15 digits.
	E164 string
	// Country is the ISO 3166-1 alpha-2 code of the number's region ("SG", "US", "GB").
	Country string
	// CallingCode is the country calling code (65, 1, 44).
	CallingCode int
	// Type is the number type reported by libphonenumber ("mobile", "fixed_line", "fixed_line_or_mobile", "toll_free", ...).
	Type string
}

// SenderKind tells how a sender ID is shown to the recipient; rules differ per kind.
type SenderKind string

// The kinds of sender ID.
const (
	SenderAlphanumeric SenderKind = "alphanumeric"
	SenderLongCode     SenderKind = "long_code"
	SenderShortCode    SenderKind = "short_code"
	SenderTollFree     SenderKind = "toll_free"
)

// Sender is the "from" of a message, classified.
type Sender struct {
	// ID is the sender as the app gave it, with a number normalised to E.164.
	ID string
	// Kind is the sender's classification.
	Kind SenderKind
}

// Encoding is the data coding of a message on the air interface.
type Encoding string

// The two encodings an SMS body can take.
const (
	EncodingGSM7 Encoding = "GSM-7"
	EncodingUCS2 Encoding = "UCS-2"
)

// TemplateRef names a registered template and the values for its placeholders.
type TemplateRef struct {
	ID     string            `json:"id"`
	Locale string            `json:"locale,omitempty"`
	Params map[string]string `json:"params,omitempty"`
}

// Message is one normalised outbound message as it flows through Submit.
type Message struct {
	ID   string
	App  string
	To   Phone
	From Sender
	Body string
	// Template is the template the body was rendered from, with Locale set to the locale
	// used; nil for a body given as text.
	Template       *TemplateRef
	Category       Category
	DeviceID       string
	Metadata       map[string]string
	IdempotencyKey string
	// Encoding and Segments are computed from Body by Encode.
	Encoding  Encoding
	Segments  int
	CreatedAt time.Time
}

// Error is a validation error with a stable code an app can branch on.
type Error struct {
	// Code is stable across releases, e.g. "invalid_phone".
	Code string
	// Field names the request field at fault, e.g. "to".
	Field string
	// Message is a sentence for a person.
	Message string
}

// Error returns the code, the field and the sentence.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return e.Code + ": " + e.Message
}
