package sms

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The case study's texts, verbatim.
const (
	usOTPText   = "Your Payment Platform verification code for transaction authorization is 7296. Valid for 5 mins. For security, do not share with others. Reply STOP to unsubscribe."
	deTransText = "Ihr Geldtransfer von 5000 Euro wurde erfolgreich an Empfänger XY überwiesen. Transaktions-ID: PL20241208009. Wechselkurs: 1 EUR = 7.82 CNY."
	alertText   = "Alert: An unusual transaction of 1 USD was attempted from Singapore (IP: 202.138.XX.XX) on your platform account. Reply LOCK to freeze account, or VERIFY to confirm."
)

func TestEncode(t *testing.T) {
	a, zh, emoji := "a", "中", "😀"
	r := strings.Repeat
	tests := []struct {
		name  string
		body  string
		want  Segmentation
		parts []int // units per part from Split; nil to skip
	}{
		{"empty", "", Segmentation{EncodingGSM7, 0, 0}, nil},
		{"one char", "a", Segmentation{EncodingGSM7, 1, 1}, []int{1}},
		{"gsm 160 fits one", r(a, 160), Segmentation{EncodingGSM7, 160, 1}, []int{160}},
		{"gsm 161 takes two", r(a, 161), Segmentation{EncodingGSM7, 161, 2}, []int{153, 8}},
		{"gsm 306 takes two", r(a, 306), Segmentation{EncodingGSM7, 306, 2}, []int{153, 153}},
		{"gsm 307 takes three", r(a, 307), Segmentation{EncodingGSM7, 307, 3}, []int{153, 153, 1}},
		{"gsm 1530 takes ten", r(a, 1530), Segmentation{EncodingGSM7, 1530, 10}, nil},
		{"gsm 1531 takes eleven", r(a, 1531), Segmentation{EncodingGSM7, 1531, 11}, nil},
		{"extension chars count two", r("€", 80), Segmentation{EncodingGSM7, 160, 1}, []int{160}},
		{"extension chars 161 septets", r("€", 80) + "a", Segmentation{EncodingGSM7, 161, 2}, []int{152, 9}},
		{"escape never straddles 153", r(a, 152) + "€" + r(a, 152), Segmentation{EncodingGSM7, 306, 3}, []int{152, 153, 1}},
		{"escape ending part exactly", r(a, 151) + "€" + r(a, 10), Segmentation{EncodingGSM7, 163, 2}, []int{153, 10}},
		{"ucs2 70 fits one", r(zh, 70), Segmentation{EncodingUCS2, 70, 1}, []int{70}},
		{"ucs2 71 takes two", r(zh, 71), Segmentation{EncodingUCS2, 71, 2}, []int{67, 4}},
		{"ucs2 134 takes two", r(zh, 134), Segmentation{EncodingUCS2, 134, 2}, []int{67, 67}},
		{"ucs2 135 takes three", r(zh, 135), Segmentation{EncodingUCS2, 135, 3}, []int{67, 67, 1}},
		{"emoji is two units", r(emoji, 35), Segmentation{EncodingUCS2, 70, 1}, []int{70}},
		{"emoji never straddles 67", r(zh, 66) + emoji + r(zh, 66), Segmentation{EncodingUCS2, 134, 3}, []int{66, 67, 1}},
		{"one chinese char switches all to ucs2", r(a, 69) + zh, Segmentation{EncodingUCS2, 70, 1}, []int{70}},
		{"one chinese char makes 100 ascii two segments", r(a, 99) + zh, Segmentation{EncodingUCS2, 100, 2}, []int{67, 33}},
		{"german text stays gsm7", "Grüße aus München: Ärger, Öl, Übel, ß, ñ, é, è, à, ù, ì, ò, Ç, Ø, Å, Æ", Segmentation{EncodingGSM7, 70, 1}, nil},
		{"c cedilla small is not gsm7", "ça va", Segmentation{EncodingUCS2, 5, 1}, nil},
		{"capital c cedilla is gsm7", "Ça va", Segmentation{EncodingGSM7, 5, 1}, nil},
		{"greek capitals are gsm7", "ΔΦΓΛΩΠΨΣΘΞ", Segmentation{EncodingGSM7, 10, 1}, nil},
		{"greek small is not gsm7", "δ", Segmentation{EncodingUCS2, 1, 1}, nil},
		{"backtick is not gsm7", "`", Segmentation{EncodingUCS2, 1, 1}, nil},
		{"curly apostrophe is not gsm7", "don’t", Segmentation{EncodingUCS2, 5, 1}, nil},
		{"no-break space is not gsm7", "a\u00a0b", Segmentation{EncodingUCS2, 3, 1}, nil},
		{"all extension chars", "\f^{}\\[~]|€", Segmentation{EncodingGSM7, 20, 1}, nil},
		{"newlines are basic", "a\r\nb", Segmentation{EncodingGSM7, 4, 1}, nil},
		{"case study us otp is two segments", usOTPText, Segmentation{EncodingGSM7, 163, 2}, []int{153, 10}},
		{"case study german transfer", deTransText, Segmentation{EncodingGSM7, 139, 1}, []int{139}},
		{"case study alert", alertText, Segmentation{EncodingGSM7, 165, 2}, []int{153, 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Encode(tt.body)
			if got != tt.want {
				t.Fatalf("Encode = %+v, want %+v", got, tt.want)
			}
			parts := Split(tt.body)
			if len(parts) != got.Segments {
				t.Fatalf("Split gave %d parts, Encode %d segments", len(parts), got.Segments)
			}
			if strings.Join(parts, "") != tt.body {
				t.Fatal("Split parts do not rejoin to the body")
			}
			if tt.parts != nil {
				for i, p := range parts {
					if u := units(p, got.Encoding); u != tt.parts[i] {
						t.Errorf("part %d has %d units, want %d", i, u, tt.parts[i])
					}
				}
			}
		})
	}
}

// units counts p's length in enc, independently of the package's counters.
func units(p string, enc Encoding) int {
	n := 0
	for _, r := range p {
		switch {
		case enc == EncodingUCS2:
			n += len(utf16Units(r))
		case strings.ContainsRune("\f^{}\\[~]|€", r):
			n += 2
		default:
			n++
		}
	}
	return n
}

func utf16Units(r rune) []uint16 {
	if r >= 0x10000 {
		return []uint16{0, 0}
	}
	return []uint16{0}
}

// TestGSM7TableMatchesStandard checks the tables against a transcription of the standard's
// layout in testdata, and that every other character falls back to UCS-2.
func TestGSM7TableMatchesStandard(t *testing.T) {
	names := map[string]rune{"SP": ' ', "LF": '\n', "CR": '\r', "ESC": -1, "FF": '\f'}
	cell := func(s string) rune {
		if r, ok := names[s]; ok {
			return r
		}
		r, size := utf8.DecodeRuneInString(s)
		if size != len(s) {
			t.Fatalf("bad cell %q", s)
		}
		return r
	}
	row := 0
	for _, line := range readLines(t, "testdata/gsm7_default_alphabet.txt") {
		cells := strings.Split(line, "\t")
		if len(cells) != 8 {
			t.Fatalf("row %d has %d cells", row, len(cells))
		}
		for col, c := range cells {
			septet := col<<4 | row
			if want := cell(c); gsm7Basic[septet] != want {
				t.Errorf("septet 0x%02X is %q, want %q", septet, gsm7Basic[septet], want)
			}
		}
		row++
	}
	if row != 16 {
		t.Fatalf("read %d rows, want 16", row)
	}
	ext := map[rune]byte{}
	for _, line := range readLines(t, "testdata/gsm7_extension.txt") {
		hex, c, _ := strings.Cut(line, "\t")
		b, err := strconv.ParseUint(hex, 16, 8)
		if err != nil {
			t.Fatal(err)
		}
		ext[cell(c)] = byte(b)
	}
	if len(ext) != len(gsm7Extension) {
		t.Errorf("extension table has %d entries, want %d", len(gsm7Extension), len(ext))
	}
	for r, b := range ext {
		if got, ok := gsm7Extension[r]; !ok || got != b {
			t.Errorf("extension %q = 0x%02X, %v; want 0x%02X", r, got, ok, b)
		}
	}
	// Every code point of the BMP costs exactly what the two tables say.
	basic := map[rune]bool{}
	for _, r := range gsm7Basic {
		basic[r] = true
	}
	for r := rune(0); r < 0x10000; r++ {
		want := 0
		if basic[r] {
			want = 1
		}
		if _, ok := ext[r]; ok {
			want = 2
		}
		if got := gsm7Cost(r); got != want {
			t.Fatalf("gsm7Cost(%U) = %d, want %d", r, got, want)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "# ") {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	for _, body := range []string{usOTPText, deTransText, strings.Repeat("中😀", 100)} {
		if n := testing.AllocsPerRun(100, func() { Encode(body) }); n != 0 {
			t.Errorf("Encode allocates %v times for a %d-byte body", n, len(body))
		}
	}
}

// FuzzEncodeSplit checks, for any input, that Split's parts rejoin to the body, that each
// part fits its segment, that no character is split, and that the count equals Encode's.
func FuzzEncodeSplit(f *testing.F) {
	for _, s := range []string{
		"", "a", usOTPText, deTransText, alertText,
		strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152),
		strings.Repeat("中", 66) + "😀" + strings.Repeat("中", 66),
		strings.Repeat("€", 81), strings.Repeat("😀", 36), "\xff\xfe" + strings.Repeat("b", 80),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		seg := Encode(body)
		parts := Split(body)
		if len(parts) != seg.Segments {
			t.Fatalf("Split gave %d parts, Encode %d segments", len(parts), seg.Segments)
		}
		if strings.Join(parts, "") != body {
			t.Fatal("parts do not rejoin to the body")
		}
		limit := GSM7PartSeptets
		single := GSM7SingleSeptets
		if seg.Encoding == EncodingUCS2 {
			limit, single = UCS2PartUnits, UCS2SingleUnits
		}
		if len(parts) == 1 {
			limit = single
		}
		total := 0
		for i, p := range parts {
			if p == "" {
				t.Fatalf("part %d is empty", i)
			}
			if utf8.ValidString(body) && !utf8.ValidString(p) {
				t.Fatalf("part %d splits a character", i)
			}
			u := units(p, seg.Encoding)
			if u > limit {
				t.Fatalf("part %d has %d units, limit %d", i, u, limit)
			}
			total += u
		}
		if total != seg.Units {
			t.Fatalf("parts hold %d units, Encode says %d", total, seg.Units)
		}
		if seg.Encoding == EncodingGSM7 != IsGSM7(body) {
			t.Fatalf("Encode says %s but IsGSM7 = %v", seg.Encoding, IsGSM7(body))
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"gsm7-160", strings.Repeat("Your code is 7296. ", 9)[:160]},
		{"gsm7-us-otp-163", usOTPText},
		{"gsm7-german-139", deTransText},
		{"ucs2-70", strings.Repeat("您的验证码是七二九六。", 7)},
		{"gsm7-1530", strings.Repeat("a", 1530)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				Encode(bc.body)
			}
		})
	}
}

func BenchmarkSplit(b *testing.B) {
	body := strings.Repeat("a", 1000)
	b.ReportAllocs()
	for b.Loop() {
		Split(body)
	}
}
