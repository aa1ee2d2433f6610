package load

import (
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// checkNumber fails t unless e164 is a valid mobile number of country per libphonenumber.
func checkNumber(t *testing.T, country, e164 string) {
	t.Helper()
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		t.Fatalf("%s: %q does not parse: %v", country, e164, err)
	}
	if !phonenumbers.IsValidNumberForRegion(num, country) {
		t.Fatalf("%s: %q is not valid for the country", country, e164)
	}
	switch typ := phonenumbers.GetNumberType(num); typ {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		t.Fatalf("%s: %q has type %v, want mobile", country, e164, typ)
	}
}

func TestEveryRangeBoundaryIsValid(t *testing.T) {
	for country, spec := range mobileRanges {
		for _, r := range spec.ranges {
			for _, v := range []uint64{0, pow10(r.free) / 2, pow10(r.free) - 1} {
				e164 := string(appendDigits([]byte("+"+spec.callingCode+r.prefix), v, r.free))
				checkNumber(t, country, e164)
			}
		}
	}
}

func TestGeneratedNumbersAreValidAndDistinct(t *testing.T) {
	// libphonenumber is slow under -race, so validity is checked on a sample of the walk and
	// distinctness on a longer stretch of it; TestEveryRangeBoundaryIsValid covers each block's edges.
	const checked, distinct = 400, 50000
	for _, country := range SupportedCountries() {
		t.Run(country, func(t *testing.T) {
			for _, seed := range []uint64{1, 1 << 40} {
				s, err := newNumberSpace(country, seed)
				if err != nil {
					t.Fatal(err)
				}
				seen := make(map[string]bool, distinct)
				var buf []byte
				for n := range uint64(distinct) {
					buf = s.appendNumber(buf[:0], n)
					e164 := string(buf)
					if n < checked {
						checkNumber(t, country, e164)
					}
					if seen[e164] {
						t.Fatalf("seed %d: %s repeated within the first %d numbers", seed, e164, n)
					}
					seen[e164] = true
				}
			}
		})
	}
}

func TestNumberSpaceIsABijection(t *testing.T) {
	// A small space proves the affine walk visits every number exactly once.
	s := &numberSpace{cc: "65", ranges: []numberRange{{"9", 2}, {"8", 1}}, ends: []uint64{100, 110}, size: 110, mul: 7, add: 13}
	seen := make(map[string]bool)
	for n := range s.size {
		seen[string(s.appendNumber(nil, n))] = true
	}
	if len(seen) != int(s.size) {
		t.Fatalf("walk visited %d distinct numbers, want %d", len(seen), s.size)
	}
}

func TestUnknownCountry(t *testing.T) {
	if _, err := newNumberSpace("XX", 1); err == nil {
		t.Fatal("newNumberSpace(XX) succeeded, want unknown_country error")
	}
	if _, err := newNumberSpace("sg", 1); err != nil {
		t.Fatalf("lower-case country rejected: %v", err)
	}
}

func TestMulmod(t *testing.T) {
	tests := []struct{ a, b, m, want uint64 }{
		{7, 8, 5, 1},
		{1 << 62, 4, 1<<62 + 1, 4 * (1<<62 + 1 - 1) % (1<<62 + 1)},
		{0, 9, 7, 0},
	}
	for _, tt := range tests {
		if got := mulmod(tt.a, tt.b, tt.m); got != tt.want {
			t.Errorf("mulmod(%d,%d,%d) = %d, want %d", tt.a, tt.b, tt.m, got, tt.want)
		}
	}
}
