// Package sms holds the domain types of one text message and the pure functions that normalise it:
// phone numbers, sender classification, GSM-7/UCS-2 encoding and segment counts, and templates.
// It depends on no other smsproxy package; its only dependency is github.com/nyaruka/phonenumbers.
//
// Every validation failure is an *Error whose Code is stable across releases, so apps and
// policies can branch on it. The codes:
//
//	code                        field       when
//	invalid_phone               to          not "+" and 1-15 digits, country code starting with 0, or not a
//	                                        valid number of a country according to libphonenumber
//	invalid_sender              from        empty, a number that cannot be a sender, alphanumeric ID over
//	                                        11 GSM-7 septets or with characters outside GSM-7, no letter or digit
//	invalid_category            category    not one of otp, transaction, alert, security, marketing
//	body_or_template            body        both a body and a template were given, or neither
//	invalid_body                body        invalid UTF-8, control characters other than \n and \r, or blank
//	body_too_long               body        more than MaxSegments segments
//	unknown_template            template    no template with that id (or no templates configured)
//	template_locale_unavailable template    the template has no text for the locale, its parents or the default
//	template_param_missing      template    a placeholder has no value, or an empty one; the message names it
//	template_param_unknown      template    a value was given for a name the template does not use
//	template_category_mismatch  category    the template's category differs from the message's
//	invalid_template            template    NewTemplates: empty id or text, duplicate id, bad or unclosed
//	                                        placeholder, locales that disagree on placeholders, bad category
//	invalid_device_id           device_id   over 128 characters, invalid UTF-8 or control characters
//	invalid_idempotency_key     idempotency_key  over 128 characters, invalid UTF-8 or control characters
//	invalid_metadata            metadata    over 16 keys, an empty key, a key over 64 or a value over 512
//	                                        characters, invalid UTF-8, or control characters in a key
//
// Lengths are counted in characters (Unicode code points), not bytes.
package sms
