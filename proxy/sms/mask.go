package sms

import (
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// maskRune replaces every hidden character.
const maskRune = "*"

// minMaskedNational is the shortest national part MaskPhone shows the tail of.
const minMaskedNational = 6

// MaskPhone hides an E.164 number for logs and records, keeping the "+", the country calling
// code and the last two digits: "+6591234567" becomes "+65******67". Every hidden digit
// becomes one "*". A string that is not "+" and digits with a known country code is masked
// entirely, as is a number whose national part has fewer than 6 digits, so that most of a
// number always stays hidden.
func MaskPhone(e164 string) string {
	if len(e164) < 2 || e164[0] != '+' || !allDigits(e164[1:]) {
		return MaskAll(e164)
	}
	cc := callingCodeLen(e164[1:])
	if cc == 0 || len(e164)-1-cc < minMaskedNational {
		return MaskAll(e164)
	}
	keep := 1 + cc
	return e164[:keep] + strings.Repeat(maskRune, len(e164)-keep-2) + e164[len(e164)-2:]
}

// callingCodeLen returns how many leading digits of digits are a country calling code, or 0.
// Country calling codes are a prefix code, so at most one length matches.
func callingCodeLen(digits string) int {
	cc := 0
	for i := 0; i < 3 && i < len(digits); i++ {
		cc = cc*10 + int(digits[i]-'0')
		if cc != 0 && phonenumbers.GetRegionCodeForCountryCode(cc) != "ZZ" {
			return i + 1
		}
	}
	return 0
}

// MaskAll hides all of s: one "*" for every character, so a reader still sees that there was
// a value and roughly how long.
func MaskAll(s string) string {
	return strings.Repeat(maskRune, utf8.RuneCountInString(s))
}

// MaskKeepLast hides all but the last n characters of s: MaskKeepLast("PL20241208009", 4) is
// "*********8009". When s has n characters or fewer, all of it is hidden, so a short secret
// is never shown whole.
func MaskKeepLast(s string, n int) string {
	count := utf8.RuneCountInString(s)
	if n <= 0 || count <= n {
		return MaskAll(s)
	}
	cut := len(s)
	for range n {
		_, size := utf8.DecodeLastRuneInString(s[:cut])
		cut -= size
	}
	return strings.Repeat(maskRune, count-n) + s[cut:]
}
