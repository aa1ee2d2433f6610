package redact

import (
	"strings"
	"sync"
	"sync/atomic"
)

// exactKeys are sensitive when they are the whole key (separators removed, lower case).
var exactKeys = set("number", "phone", "to", "msisdn", "body", "text", "code", "otp", "key", "secret", "token",
	"password", "authorization", "params", "apikey", "recipient", "pin", "cvv", "passcode", "passwd", "auth",
	"cookie", "dsn", "credentials", "signature", "pan", "iban")

// lastWords are sensitive as the last word of a key: phone_number, api_key, reply_to, message_text.
var lastWords = set("number", "phone", "to", "msisdn", "body", "text", "code", "otp", "key", "secret", "token",
	"password", "authorization", "params", "recipient", "pin", "cvv", "passcode", "passwd", "auth", "cookie",
	"dsn", "credentials", "signature", "iban")

// anyWords are sensitive anywhere in a key: otp_len, password_hash, msisdn_country.
var anyWords = set("otp", "password", "passwd", "passcode", "secret", "msisdn", "cvv", "apikey")

// benignPairs are two-word keys whose last word is on lastWords but whose value is not personal:
// error and status codes, country and language codes, sequence and port numbers.
var benignPairs = set("error code", "status code", "reason code", "country code", "http code", "exit code",
	"currency code", "language code", "lang code", "region code", "response code", "result code", "dial code",
	"calling code", "seq number", "sequence number", "port number", "version number", "segment number",
	"part number", "line number", "page number", "build number", "retry number", "attempt number")

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// keyCache remembers the verdict for attribute keys, which come from code and so are few.
var (
	keyCache     sync.Map
	keyCacheSize atomic.Int32
)

const keyCacheMax = 4096

// cachedSensitive is SensitiveKey with a bounded cache in front.
func cachedSensitive(key string) bool {
	if v, ok := keyCache.Load(key); ok {
		return v.(bool)
	}
	s := SensitiveKey(key)
	if keyCacheSize.Load() < keyCacheMax {
		keyCacheSize.Add(1)
		keyCache.Store(key, s)
	}
	return s
}

// SensitiveKey reports whether values under key are masked entirely. The key is split into lower-case
// words at separators and camel-case humps ("apiKey", "X-Api-Key", "phone_number" → api key, x api
// key, phone number); it is sensitive when the whole key is one of number, phone, to, msisdn, body,
// text, code, otp, key, secret, token, password, authorization, params, api_key (and a few like
// them), when its last word is, unless the pair is benign such as error_code, status_code,
// country_code or seq_number, or when any word is otp, password, secret, msisdn or cvv.
func SensitiveKey(key string) bool {
	var buf [64]byte
	var starts [16]int
	if len(key) == 0 {
		return false
	}
	if len(key) > len(buf) {
		return true // an odd key; masking loses nothing a person needs
	}
	// Lower-case into buf without separators, noting where each word starts.
	n, words := 0, 0
	prevLower := false
	newWord := true
	for i := 0; i < len(key); i++ {
		c := key[i]
		isUpper := c >= 'A' && c <= 'Z'
		isAlnum := isUpper || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !isAlnum {
			newWord = true
			prevLower = false
			continue
		}
		if isUpper && prevLower {
			newWord = true
		}
		if newWord {
			if words == len(starts) {
				return true
			}
			starts[words] = n
			words++
			newWord = false
		}
		if isUpper {
			c += 'a' - 'A'
		}
		prevLower = !isUpper
		buf[n] = c
		n++
	}
	if words == 0 {
		return false
	}
	if exactKeys[string(buf[:n])] {
		return true
	}
	word := func(i int) []byte {
		end := n
		if i+1 < words {
			end = starts[i+1]
		}
		return buf[starts[i]:end]
	}
	for i := 0; i < words; i++ {
		if anyWords[string(word(i))] {
			return true
		}
	}
	last := word(words - 1)
	if !lastWords[string(last)] {
		return false
	}
	if words >= 2 {
		var pair [64]byte
		p := append(append(append(pair[:0], word(words-2)...), ' '), last...)
		if benignPairs[string(p)] {
			return false
		}
	}
	return true
}

// codeKey reports whether key ends in "code" in any case (code, error_code, reasonCode, OTPCode).
func codeKey(key string) bool {
	return len(key) >= 4 && strings.EqualFold(key[len(key)-4:], "code")
}

// looksLikeErrorCode reports whether v is a stable error code such as "otp_resend_too_soon" or
// "provider.timeout": lower-case letters with at least one '_' or '.', and no digits. One-time codes
// never look like that, so such values stay readable under a "code" key.
func looksLikeErrorCode(v string) bool {
	sep := false
	if len(v) < 3 || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 'a' && c <= 'z':
		case c == '_' || c == '.':
			if i == 0 || i == len(v)-1 {
				return false
			}
			sep = true
		default:
			return false
		}
	}
	return sep
}
