package sms

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Sender ID limits.
const (
	// MaxAlphanumericSeptets is the longest alphanumeric sender ID: the TP-Originating-Address
	// holds 10 octets, 11 GSM-7 septets (an extension character counts 2).
	MaxAlphanumericSeptets = 11
	// MinShortCodeDigits and MaxShortCodeDigits bound a short code given as digits without "+".
	MinShortCodeDigits = 3
	MaxShortCodeDigits = 8
)

// ClassifySender tells what kind of sender ID from is and normalises it:
//
//   - "+" and digits (with spaces, dashes, dots or parentheses inside) is a number: toll_free
//     when libphonenumber says so, long_code otherwise, either way in E.164;
//   - 3 to 8 digits without "+" is a short_code, kept as given;
//   - 9 to 15 digits without "+" is an international number written without its "+"
//     (as Vonage and SMPP do) and is classified like one;
//   - anything with a letter is alphanumeric, kept exactly as given, and must be at most
//     11 septets of the GSM-7 alphabet.
//
// Everything else is an *Error with code "invalid_sender": empty, a number that is not E.164
// or whose country code is unknown, or a string with neither letters nor only digits.
// Market rules (registries, generic names, which kinds a country allows) belong to the policy.
func ClassifySender(from string) (Sender, error) {
	if from == "" {
		return Sender{}, errorf(CodeInvalidSender, "from", "the sender is empty")
	}
	if hasLetter(from) {
		septets, ok := gsm7Septets(from)
		switch {
		case strings.ContainsFunc(from, isControl):
			return Sender{}, errorf(CodeInvalidSender, "from", "an alphanumeric sender may not contain control characters")
		case !ok:
			return Sender{}, errorf(CodeInvalidSender, "from", "an alphanumeric sender may only use characters of the GSM-7 alphabet")
		case septets > MaxAlphanumericSeptets:
			return Sender{}, errorf(CodeInvalidSender, "from", "an alphanumeric sender is at most %d characters", MaxAlphanumericSeptets)
		}
		return Sender{ID: from, Kind: SenderAlphanumeric}, nil
	}
	if from[0] != '+' && allDigits(from) {
		switch n := len(from); {
		case n >= MinShortCodeDigits && n <= MaxShortCodeDigits:
			return Sender{ID: from, Kind: SenderShortCode}, nil
		case n > MaxShortCodeDigits && n <= maxE164Digits:
			return classifyNumber("+" + from)
		}
		return Sender{}, errorf(CodeInvalidSender, "from", "a sender of digits only is a short code of %d-%d digits or an international number of at most %d digits",
			MinShortCodeDigits, MaxShortCodeDigits, maxE164Digits)
	}
	return classifyNumber(from)
}

// classifyNumber classifies a sender written as an international number. It requires the
// E.164 shape and a known country and length, but not a number range libphonenumber knows:
// its metadata lags new allocations, and a sender is checked again by the carrier. Valid
// sender numbers are cached like destinations.
func classifyNumber(from string) (Sender, error) {
	e164, ok := stripE164(from)
	if !ok {
		return Sender{}, errorf(CodeInvalidSender, "from", "a sender number must be \"+\" followed by the country code and at most 15 digits")
	}
	if s, ok := senderNumbers.get(e164); ok {
		return s, nil
	}
	var num phonenumbers.PhoneNumber
	info, ok := lookupNumber(e164, &num)
	if !ok || !validRegion(info.region) && info.region != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY ||
		info.typ == phonenumbers.UNKNOWN && !phonenumbers.IsPossibleNumber(&num) {
		return Sender{}, errorf(CodeInvalidSender, "from", "the sender number has an unknown country code or an impossible length")
	}
	kind := SenderLongCode
	if info.typ == phonenumbers.TOLL_FREE {
		kind = SenderTollFree
	}
	s := Sender{ID: info.e164, Kind: kind}
	senderNumbers.put(e164, s)
	return s, nil
}

// hasLetter reports whether s holds at least one letter of any script.
func hasLetter(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			for _, r := range s[i:] {
				if unicode.IsLetter(r) {
					return true
				}
			}
			return false
		}
		if (c|0x20) >= 'a' && (c|0x20) <= 'z' {
			return true
		}
	}
	return false
}

// allDigits reports whether s is made of ASCII digits only.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
