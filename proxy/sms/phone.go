package sms

import (
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// maxE164Digits is the most digits an E.164 number has after the "+".
const maxE164Digits = 15

// numberTypes maps libphonenumber's number types to the strings in Phone.Type.
var numberTypes = map[phonenumbers.PhoneNumberType]string{
	phonenumbers.FIXED_LINE:           "fixed_line",
	phonenumbers.MOBILE:               "mobile",
	phonenumbers.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
	phonenumbers.TOLL_FREE:            "toll_free",
	phonenumbers.PREMIUM_RATE:         "premium_rate",
	phonenumbers.SHARED_COST:          "shared_cost",
	phonenumbers.VOIP:                 "voip",
	phonenumbers.PERSONAL_NUMBER:      "personal_number",
	phonenumbers.PAGER:                "pager",
	phonenumbers.UAN:                  "uan",
	phonenumbers.VOICEMAIL:            "voicemail",
	phonenumbers.UNKNOWN:              "unknown",
}

// ParsePhone parses a destination number given in E.164 form: "+" then the digits, country
// code first. Spaces, dashes, dots and parentheses between the digits are dropped; a missing
// "+", any other character, more than 15 digits, a country code starting with 0, or a number
// libphonenumber does not consider valid for a country is an *Error with code "invalid_phone".
// Numbers of non-geographic entities (+800, +882, ...) are refused because they have no country.
// Valid numbers are remembered in a small bounded cache, so a number seen recently costs
// about a hundred nanoseconds instead of several microseconds.
func ParsePhone(s string) (Phone, error) {
	e164, ok := stripE164(s)
	if !ok {
		return Phone{}, errorf(CodeInvalidPhone, "to", "the number must be \"+\" followed by the country code and at most 15 digits")
	}
	if p, ok := phones.get(e164); ok {
		return p, nil
	}
	p, err := parseE164(e164)
	if err == nil {
		phones.put(e164, p)
	}
	return p, err
}

// parseE164 is ParsePhone without the cache, for a string stripE164 accepted.
func parseE164(e164 string) (Phone, error) {
	var num phonenumbers.PhoneNumber
	info, ok := lookupNumber(e164, &num)
	if !ok || info.typ == phonenumbers.UNKNOWN || !validRegion(info.region) || len(info.e164) > 1+maxE164Digits {
		return Phone{}, errorf(CodeInvalidPhone, "to", "the number is not a valid phone number of any country")
	}
	return Phone{E164: info.e164, Country: info.region, CallingCode: info.callingCode, Type: numberTypes[info.typ]}, nil
}

// numberInfo is what libphonenumber says about a number.
type numberInfo struct {
	e164        string
	region      string // "" or "001" when the number belongs to no country
	callingCode int
	typ         phonenumbers.PhoneNumberType // UNKNOWN when the number is not valid
}

// lookupNumber asks libphonenumber about an already well-formed "+digits" string; ok is false
// when libphonenumber cannot parse it at all. num is scratch space the caller provides, left
// holding the parsed number.
//
// phonenumbers.Parse spends most of its time on regexps for input we have already cleaned
// (extensions, punctuation, international prefixes). So the number is first built directly,
// country code and national significant number split as Parse splits them, and only when
// that is not a valid number does the full Parse run, which also removes a national prefix
// written after the country code ("+44 (0)20 ...") and so may still find a valid number.
// TestLookupNumberMatchesParse checks that both ways agree.
func lookupNumber(e164 string, num *phonenumbers.PhoneNumber) (numberInfo, bool) {
	if fastNumber(e164, num) {
		info := describe(num)
		if info.typ != phonenumbers.UNKNOWN && validRegion(info.region) {
			info.e164 = e164
			return info, true
		}
	}
	num.Reset()
	if err := phonenumbers.ParseToNumber(e164, "ZZ", num); err != nil {
		return numberInfo{}, false
	}
	info := describe(num)
	info.e164 = phonenumbers.Format(num, phonenumbers.E164)
	return info, true
}

// describe returns the region, calling code and type of num.
func describe(num *phonenumbers.PhoneNumber) numberInfo {
	return numberInfo{
		region:      phonenumbers.GetRegionCodeForNumber(num),
		callingCode: int(num.GetCountryCode()),
		// GetNumberType is UNKNOWN exactly when IsValidNumber is false (both run the same
		// pattern match for the number's own region); calling only one halves the cost.
		typ: phonenumbers.GetNumberType(num),
	}
}

// validRegion reports whether region is a country ("" is an unknown calling code and "001"
// a non-geographic entity such as +800).
func validRegion(region string) bool {
	return len(region) == 2 && region != "ZZ"
}

// fastNumber fills num from a "+digits" string the way phonenumbers.Parse does when there is
// no national prefix to remove, and reports whether the country code is known.
func fastNumber(e164 string, num *phonenumbers.PhoneNumber) bool {
	digits := e164[1:]
	ccLen := callingCodeLen(digits)
	nsn := digits[ccLen:]
	if ccLen == 0 || len(nsn) < 2 || len(nsn) > 17 {
		return false
	}
	cc, _ := strconv.Atoi(digits[:ccLen])
	national, err := strconv.ParseUint(nsn, 10, 64)
	if err != nil {
		return false
	}
	num.Reset()
	cc32 := int32(cc)
	num.CountryCode = &cc32
	num.NationalNumber = &national
	if nsn[0] == '0' {
		italian := true
		num.ItalianLeadingZero = &italian
		zeros := 1
		for zeros < len(nsn)-1 && nsn[zeros] == '0' {
			zeros++
		}
		if zeros != 1 {
			n := int32(zeros)
			num.NumberOfLeadingZeros = &n
		}
	}
	return true
}

// stripE164 drops the separators people write inside numbers and checks the E.164 shape:
// "+", a first digit other than 0, and at most 15 digits in all, or 16 when a national prefix is
// written as "(0)" (+49 (0)30 …), which libphonenumber removes; parseE164 checks the result.
func stripE164(s string) (string, bool) {
	if len(s) < 2 || s[0] != '+' || len(s) > 64 {
		return "", false
	}
	var buf [2 + maxE164Digits]byte
	buf[0] = '+'
	limit := 1 + maxE164Digits
	if strings.Contains(s, "(0)") {
		limit++
	}
	n := 1
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if n == limit {
				return "", false
			}
			buf[n] = c
			n++
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	if n < 2 || buf[1] == '0' {
		return "", false
	}
	if n == len(s) {
		return s, true // Nothing stripped: keep the caller's string, no allocation.
	}
	return string(buf[:n]), true
}
