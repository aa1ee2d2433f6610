package sms

import "fmt"

// The stable error codes this package returns in Error.Code. The package documentation says when.
const (
	CodeInvalidPhone              = "invalid_phone"
	CodeInvalidSender             = "invalid_sender"
	CodeInvalidCategory           = "invalid_category"
	CodeBodyOrTemplate            = "body_or_template"
	CodeInvalidBody               = "invalid_body"
	CodeBodyTooLong               = "body_too_long"
	CodeUnknownTemplate           = "unknown_template"
	CodeTemplateLocaleUnavailable = "template_locale_unavailable"
	CodeTemplateParamMissing      = "template_param_missing"
	CodeTemplateParamUnknown      = "template_param_unknown"
	CodeTemplateCategoryMismatch  = "template_category_mismatch"
	CodeInvalidTemplate           = "invalid_template"
	CodeInvalidDeviceID           = "invalid_device_id"
	CodeInvalidIdempotencyKey     = "invalid_idempotency_key"
	CodeInvalidMetadata           = "invalid_metadata"
)

// errorf builds an *Error. The sentence must never contain a phone number, a body or a parameter value.
func errorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

var _ error = (*Error)(nil)
