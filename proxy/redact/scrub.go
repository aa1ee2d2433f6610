package redact

import "strings"

// Mask replaces whatever the package removes.
const Mask = "[redacted]"

// Scrub returns s with personal data and secrets replaced by Mask; use it on error messages, metric
// label values and any text headed for a log. It removes:
//
//   - phone numbers: a run of 7 or more digits, optionally after "+" or "(", with single spaces,
//     dashes, dots or parentheses between groups ("+65 9123 4567", "(555) 123-4567", "06.12.34.56.78");
//     card and account numbers (12-19 digits) are such runs too;
//   - one-time codes: 4-8 digits shortly after a word such as code, OTP, PIN or passcode;
//   - values of sensitive keys in key=value, key: value and "key":"value" forms (to=…, "body":"…",
//     api_key=…, password: …), and the credential after "Bearer" or "Basic".
//
// Digits that are part of a word or identifier (msg_01a21d47edb8…, PL20241208009, 0443c8ba8d72),
// timestamps, times and fractions (2026-11-27T10:15:30.123456Z), IPv4 addresses and ports
// (127.0.0.1:8080), decimal numbers (12.3456789) and shorter numbers stay. A bare count of 7 or more
// digits in text is removed: it cannot be told from a national phone number. Scrub does not allocate
// when s has nothing to remove.
func Scrub(s string) string {
	out, _ := scrub(s)
	return out
}

// scrub returns the scrubbed string and whether it differs from s.
func scrub(s string) (string, bool) {
	var b []byte // nil until the first change
	last := 0    // s[last:i] is not yet copied to b
	mask := func(from, to int) {
		if b == nil {
			b = make([]byte, 0, len(s)+len(Mask))
		}
		b = append(b, s[last:from]...)
		b = append(b, Mask...)
		last = to
	}
	for i := 0; i < len(s); {
		for i < len(s) && !trigger[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		switch {
		case isDigit(c) || (c == '+' || c == '(') && i+1 < len(s) && isDigit(s[i+1]):
			end, secret := digitSpan(s, i)
			if secret {
				mask(i, end)
			}
			i = end
			continue
		case c == '=' || c == ':':
			if from, to, ok := keyValue(s, i); ok {
				mask(from, to)
				i = to
				continue
			}
		case c == 'B' || c == 'b':
			if from, to, ok := authScheme(s, i); ok {
				mask(from, to)
				i = to
				continue
			}
		}
		i++
	}
	if b == nil {
		return s, false
	}
	b = append(b, s[last:]...)
	return string(b), true
}

// trigger marks the bytes where something to remove can start.
var trigger = func() (t [256]bool) {
	for _, c := range []byte("0123456789+(=:Bb") {
		t[c] = true
	}
	return t
}()

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 }
func isHex(c byte) bool    { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
func isWordByte(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '_'
}

// digitSpan reads the number starting at i (a digit, or "+" or "(" before one) and returns where it
// ends and whether it must be masked.
func digitSpan(s string, i int) (end int, secret bool) {
	start := i
	if s[i] == '+' || s[i] == '(' {
		i++
	}
	digits, groups, dots, others, group, maxGroup := 0, 1, 0, 0, 0, 0
	end = i
	for i < len(s) {
		c := s[i]
		if isDigit(c) {
			digits++
			group++
			i++
			end = i
			continue
		}
		// One or two separators between digit groups: "-", " ", ".", "(", ")", "/" ("(555) 123").
		j := i
		for j < len(s) && j-i < 2 && strings.IndexByte(" -.()/", s[j]) >= 0 {
			j++
		}
		if j == i || j >= len(s) || !isDigit(s[j]) {
			break
		}
		if sep := s[i:j]; sep == "." {
			dots++
		} else {
			others++
		}
		maxGroup = max(maxGroup, group)
		group = 0
		groups++
		i = j
	}
	maxGroup = max(maxGroup, group)
	if glued(s, start, end) {
		return end, false
	}
	if others == 0 && dots > 0 {
		switch {
		case dots == 1:
			return end, false // a decimal number
		case dots == 3 && maxGroup <= 3:
			return end, false // an IPv4 address
		}
	}
	if digits >= 7 && !isDate(s[start:end]) {
		return end, true
	}
	if digits >= 4 && digits <= 8 && groups == 1 && afterCodeWord(s, start) {
		return end, true
	}
	return end, false
}

// glued reports whether the number s[start:end] is part of something larger that is not a number by
// itself: an identifier (letters or "_" touching it, except a %XX escape before it), a UUID group, a
// time of day or port (":" touching digits), a file suffix.
func glued(s string, start, end int) bool {
	if start > 0 {
		c := s[start-1]
		if isWordByte(c) && !(start >= 3 && s[start-3] == '%' && isHex(s[start-2]) && isHex(c)) {
			return true
		}
		if start >= 2 {
			p := s[start-2]
			switch {
			case c == ':' && isDigit(p): // 10:15:30, :8080 after an address
				return true
			case c == '.' && isWordByte(p): // v1.2345678, file.1234567
				return true
			case c == '-' && isLetter(p): // a UUID group, msg-1234567
				return true
			}
		}
	}
	if end < len(s) {
		c := s[end]
		if isWordByte(c) {
			return true
		}
		if end+1 < len(s) {
			n := s[end+1]
			if (c == '-' || c == '.') && isLetter(n) || c == ':' && isDigit(n) {
				return true
			}
		}
	}
	return false
}

// codeWords are words after which a short number is a one-time code.
var codeWords = []string{"code", "otp", "pin", "passcode", "password", "kode", "código", "codigo", "tac"}

// afterCodeWord reports whether one of codeWords, as a whole word, ends within 16 bytes before i.
func afterCodeWord(s string, i int) bool {
	from := max(0, i-16)
	w := s[from:i]
	for _, cw := range codeWords {
		for off := 0; off+len(cw) <= len(w); {
			j := indexFold(w[off:], cw)
			if j < 0 {
				break
			}
			at := from + off + j
			end := at + len(cw)
			if (at == 0 || !isWordByte(s[at-1])) && (end >= len(s) || !isLetter(s[end])) {
				return true
			}
			off += j + 1
		}
	}
	return false
}

// indexFold is a case-insensitive strings.Index for an ASCII, lower-case needle.
func indexFold(s, needle string) int {
	for i := 0; i+len(needle) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(needle)], needle) {
			return i
		}
	}
	return -1
}

// isDate reports whether the number s is a date: YYYY-MM-DD or YYYY/MM/DD with a plausible month and day.
func isDate(s string) bool {
	if len(s) != 10 || s[4] != s[7] || s[4] != '-' && s[4] != '/' {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if !isDigit(s[i]) {
			return false
		}
	}
	m := int(s[5]-'0')*10 + int(s[6]-'0')
	d := int(s[8]-'0')*10 + int(s[9]-'0')
	return (s[:2] == "19" || s[:2] == "20") && m >= 1 && m <= 12 && d >= 1 && d <= 31
}

// keyValue looks at the "=" or ":" at p. When the key before it is sensitive it returns the span of
// the value after it: a quoted string's contents, or a token up to a delimiter.
func keyValue(s string, p int) (from, to int, ok bool) {
	kEnd := p
	quoted := p > 0 && s[p-1] == '"'
	if quoted {
		kEnd--
	}
	kStart := kEnd
	for kStart > 0 {
		c := s[kStart-1]
		if !isWordByte(c) && c != '-' && c != '.' {
			break
		}
		kStart--
	}
	key := s[kStart:kEnd]
	if key == "" || !cachedSensitive(key) {
		return 0, 0, false
	}
	q := p + 1
	if s[p] == ':' {
		for q < len(s) && s[q] == ' ' {
			q++
		}
		if q < len(s) && s[q] == '/' { // a URL scheme such as "pin://", not a value
			return 0, 0, false
		}
	}
	if q < len(s) && s[q] == '"' {
		from = q + 1
		to = from
		for to < len(s) && s[to] != '"' {
			if s[to] == '\\' {
				to++
			}
			to++
		}
		to = min(to, len(s))
	} else {
		from, to = q, token(s, q)
		if v := s[from:to]; strings.EqualFold(v, "bearer") || strings.EqualFold(v, "basic") {
			n := to
			for n < len(s) && s[n] == ' ' {
				n++
			}
			to = token(s, n)
		}
	}
	if to == from {
		return 0, 0, false
	}
	if codeKey(key) && looksLikeErrorCode(s[from:to]) {
		return 0, 0, false
	}
	return from, to, true
}

// token returns the end of the value starting at i: up to whitespace, "&", ",", ";", a quote or a
// closing bracket.
func token(s string, i int) int {
	for i < len(s) && strings.IndexByte(" \t\r\n&,;\"')}]>", s[i]) < 0 {
		i++
	}
	return i
}

// authScheme masks the credential after "Bearer " or "Basic " at i.
func authScheme(s string, i int) (from, to int, ok bool) {
	if i > 0 && isWordByte(s[i-1]) {
		return 0, 0, false
	}
	for _, scheme := range []string{"bearer ", "basic "} {
		if len(s)-i > len(scheme) && strings.EqualFold(s[i:i+len(scheme)], scheme) {
			from = i + len(scheme)
			for from < len(s) && s[from] == ' ' {
				from++
			}
			to = token(s, from)
			return from, to, to > from
		}
	}
	return 0, 0, false
}
