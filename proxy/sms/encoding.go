package sms

import "unicode/utf8"

// Segment capacities from 3GPP TS 23.040: a single SMS carries 140 octets; each part of a
// concatenated message loses 6 octets to the user data header (8-bit reference).
const (
	// GSM7SingleSeptets is how many septets fit one unsegmented GSM-7 message.
	GSM7SingleSeptets = 160
	// GSM7PartSeptets is how many septets fit one part of a concatenated GSM-7 message.
	GSM7PartSeptets = 153
	// UCS2SingleUnits is how many UTF-16 code units fit one unsegmented UCS-2 message.
	UCS2SingleUnits = 70
	// UCS2PartUnits is how many UTF-16 code units fit one part of a concatenated UCS-2 message.
	UCS2PartUnits = 67
)

// Segmentation is how a body travels on the air interface.
type Segmentation struct {
	// Encoding is GSM-7 when every character is in the GSM 03.38 default alphabet or its
	// extension table, UCS-2 otherwise.
	Encoding Encoding
	// Units counts septets for GSM-7 (an extension character counts 2) or UTF-16 code units
	// for UCS-2 (a character outside the BMP counts 2).
	Units int
	// Segments is how many SMS the body takes; 0 for an empty body.
	Segments int
}

// gsm7Basic is the GSM 7-bit default alphabet of 3GPP TS 23.038 §6.2.1, indexed by septet.
// Index 0x1B is the escape to the extension table and is not a character.
var gsm7Basic = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', -1, 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// gsm7Extension maps the characters of the default alphabet extension table of
// 3GPP TS 23.038 §6.2.1.1 to their septet after the escape.
var gsm7Extension = map[rune]byte{
	'\f': 0x0A, '^': 0x14, '{': 0x28, '}': 0x29, '\\': 0x2F,
	'[': 0x3C, '~': 0x3D, ']': 0x3E, '|': 0x40, '€': 0x65,
}

// gsm7ASCII holds the septet cost (1 basic, 2 extension, 0 not encodable) of each ASCII character.
// gsm7Other holds the cost of the non-ASCII characters of both tables.
var (
	gsm7ASCII [utf8.RuneSelf]uint8
	gsm7Other = map[rune]uint8{}
)

func init() {
	for _, r := range gsm7Basic {
		if r < 0 {
			continue
		}
		if r < utf8.RuneSelf {
			gsm7ASCII[r] = 1
		} else {
			gsm7Other[r] = 1
		}
	}
	for r := range gsm7Extension {
		if r < utf8.RuneSelf {
			gsm7ASCII[r] = 2
		} else {
			gsm7Other[r] = 2
		}
	}
}

// gsm7Cost returns the septets r takes in GSM-7, or 0 when GSM-7 cannot carry it.
func gsm7Cost(r rune) int {
	if r < utf8.RuneSelf {
		if r < 0 {
			return 0
		}
		return int(gsm7ASCII[r])
	}
	return int(gsm7Other[r])
}

// ucs2Cost returns the UTF-16 code units r takes.
func ucs2Cost(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// IsGSM7 reports whether every character of s is in the GSM-7 default alphabet or its extension table.
func IsGSM7(s string) bool {
	_, ok := gsm7Septets(s)
	return ok
}

// gsm7Septets counts the septets of s; ok is false when a character is not in GSM-7.
func gsm7Septets(s string) (septets int, ok bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			n := gsm7ASCII[c]
			if n == 0 {
				return 0, false
			}
			septets += int(n)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n := gsm7Other[r] // utf8.RuneError is not in the table, so invalid UTF-8 is not GSM-7.
		if n == 0 {
			return 0, false
		}
		septets += int(n)
		i += size
	}
	return septets, true
}

// Encode returns the encoding, length and segment count of body. Parts of a concatenated
// message are packed greedily so that an escape sequence or a surrogate pair is never split,
// which is why a long body may take one segment more than length divided by part size.
// Encode does not allocate.
func Encode(body string) Segmentation {
	if body == "" {
		return Segmentation{Encoding: EncodingGSM7}
	}
	if septets, parts, ok := scanGSM7(body); ok {
		if septets <= GSM7SingleSeptets {
			parts = 1
		}
		return Segmentation{Encoding: EncodingGSM7, Units: septets, Segments: parts}
	}
	units, parts := scanUCS2(body)
	if units <= UCS2SingleUnits {
		parts = 1
	}
	return Segmentation{Encoding: EncodingUCS2, Units: units, Segments: parts}
}

// scanGSM7 counts the septets of body and the parts of 153 septets it packs into greedily;
// ok is false as soon as a character is not in GSM-7.
func scanGSM7(body string) (septets, parts int, ok bool) {
	parts, used := 1, 0
	for i := 0; i < len(body); {
		var c int
		if b := body[i]; b < utf8.RuneSelf {
			c = int(gsm7ASCII[b])
			i++
		} else {
			r, size := utf8.DecodeRuneInString(body[i:])
			c = int(gsm7Other[r]) // utf8.RuneError is not in the table: invalid UTF-8 is not GSM-7.
			i += size
		}
		if c == 0 {
			return 0, 0, false
		}
		if used+c > GSM7PartSeptets {
			parts++
			used = 0
		}
		used += c
		septets += c
	}
	return septets, parts, true
}

// scanUCS2 counts the UTF-16 code units of body and the parts of 67 units it packs into
// greedily. Each byte of invalid UTF-8 counts as one U+FFFD.
func scanUCS2(body string) (units, parts int) {
	parts, used := 1, 0
	for _, r := range body {
		c := ucs2Cost(r)
		if used+c > UCS2PartUnits {
			parts++
			used = 0
		}
		used += c
		units += c
	}
	return units, parts
}

// Split returns the text of each part body is sent as, by the same rule as Encode: one part
// when it fits a single message, otherwise greedy parts of 153 septets or 67 UTF-16 units
// that never split a character. The parts joined give body back. Split returns nil for an
// empty body.
func Split(body string) []string {
	if body == "" {
		return nil
	}
	seg := Encode(body)
	if seg.Segments == 1 {
		return []string{body}
	}
	capacity, cost := GSM7PartSeptets, gsm7Cost
	if seg.Encoding == EncodingUCS2 {
		capacity, cost = UCS2PartUnits, ucs2Cost
	}
	parts := make([]string, 0, seg.Segments)
	start, used := 0, 0
	for i, r := range body {
		c := cost(r)
		if used+c > capacity {
			parts = append(parts, body[start:i])
			start, used = i, 0
		}
		used += c
	}
	return append(parts, body[start:])
}
