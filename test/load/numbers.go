package load

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// numberRange is a block of numbers: a national prefix followed by free digits.
type numberRange struct {
	prefix string
	free   int
}

// countryNumbers describes the mobile numbers the generator draws from for one country.
type countryNumbers struct {
	callingCode string
	ranges      []numberRange
}

// mobileRanges holds, per supported country, number blocks that libphonenumber classifies as valid
// mobile (or, for NANP, fixed-line-or-mobile) numbers. numbers_test.go checks every block.
var mobileRanges = map[string]countryNumbers{
	// Singapore: 8 digits starting 8 or 9.
	"SG": {"65", []numberRange{{"81", 6}, {"82", 6}, {"83", 6}, {"84", 6}, {"85", 6}, {"86", 6}, {"87", 6}, {"88", 6},
		{"90", 6}, {"91", 6}, {"92", 6}, {"93", 6}, {"94", 6}, {"95", 6}, {"96", 6}, {"97", 6}, {"98", 6}}},
	// United States: real area codes (New York, San Francisco, Los Angeles, Chicago, Miami, Seattle,
	// Boston) with exchanges 200-999; NANP numbers are valid as fixed line or mobile.
	"US": {"1", usRanges([]string{"212", "646", "917", "415", "628", "310", "213", "312", "305", "206", "617"})},
	// United Kingdom: 07xxx mobile blocks. Ofcom's drama range 07700 900xxx is not valid per libphonenumber.
	"GB": {"44", []numberRange{{"7400", 6}, {"7401", 6}, {"7411", 6}, {"7500", 6}, {"7712", 6}, {"7824", 6},
		{"7910", 6}, {"7956", 6}, {"7984", 6}}},
	// Germany: 015x with 8 and 016x/017x with 7 subscriber digits.
	"DE": {"49", []numberRange{{"151", 8}, {"152", 8}, {"157", 8}, {"160", 7}, {"170", 7}, {"171", 7}, {"172", 7},
		{"173", 7}, {"174", 7}, {"175", 7}, {"176", 8}, {"177", 7}, {"178", 7}, {"179", 7}}},
	// Indonesia: 08xx cellular prefixes with 8 subscriber digits.
	"ID": {"62", []numberRange{{"811", 8}, {"812", 8}, {"813", 8}, {"821", 8}, {"822", 8}, {"852", 8}, {"853", 8},
		{"855", 8}, {"856", 8}, {"857", 8}, {"858", 8}, {"878", 8}}},
	// Malaysia: 01x mobile prefixes. 011-1 to 011-5 carry 8 subscriber digits; 013 and 017 are valid
	// only with a non-zero next digit.
	"MY": {"60", []numberRange{{"111", 7}, {"112", 7}, {"113", 7}, {"114", 7}, {"115", 7}, {"12", 7}, {"132", 6},
		{"133", 6}, {"137", 6}, {"142", 6}, {"16", 7}, {"172", 6}, {"176", 6}, {"19", 7}}},
}

// usRanges returns one block per area code and leading exchange digit 2-9.
func usRanges(areas []string) []numberRange {
	var r []numberRange
	for _, a := range areas {
		for d := '2'; d <= '9'; d++ {
			r = append(r, numberRange{a + string(d), 6})
		}
	}
	return r
}

// SupportedCountries returns the ISO 3166-1 alpha-2 codes the number generator knows, sorted.
func SupportedCountries() []string {
	var c []string
	for k := range mobileRanges {
		c = append(c, k)
	}
	slices.Sort(c)
	return c
}

// numberSpace is the ordered set of numbers of one country and a bijection that walks it in a
// scattered order.
type numberSpace struct {
	country string
	cc      string
	ranges  []numberRange
	ends    []uint64 // ends[i] is the cumulative size of ranges[:i+1]
	size    uint64
	mul     uint64 // coprime to size
	add     uint64
}

func newNumberSpace(country string, seed uint64) (*numberSpace, error) {
	spec, ok := mobileRanges[strings.ToUpper(country)]
	if !ok {
		return nil, fmt.Errorf("unknown_country: no number ranges for %q (supported: %s)", country, strings.Join(SupportedCountries(), ","))
	}
	s := &numberSpace{country: strings.ToUpper(country), cc: spec.callingCode, ranges: spec.ranges}
	for _, r := range spec.ranges {
		s.size += pow10(r.free)
		s.ends = append(s.ends, s.size)
	}
	// An affine map x -> (mul*x + add) mod size is a bijection when gcd(mul, size) == 1, so the first
	// size sequence numbers give distinct recipients: no two requests of a run hit the same number's
	// resend limits by accident, while consecutive requests still land far apart.
	s.mul = (seed*0x9E3779B97F4A7C15 | 1) % s.size
	for gcd(s.mul, s.size) != 1 {
		s.mul = (s.mul + 1) % s.size
	}
	s.add = (seed * 0xBF58476D1CE4E5B9) % s.size
	return s, nil
}

// appendNumber appends the E.164 form of the n-th number of the walk to dst.
func (s *numberSpace) appendNumber(dst []byte, n uint64) []byte {
	x := mulmod(s.mul, n%s.size, s.size)
	x = (x + s.add) % s.size
	i, _ := slices.BinarySearch(s.ends, x+1)
	r := s.ranges[i]
	if i > 0 {
		x -= s.ends[i-1]
	}
	dst = append(dst, '+')
	dst = append(dst, s.cc...)
	dst = append(dst, r.prefix...)
	return appendDigits(dst, x, r.free)
}

// appendDigits appends v as exactly width decimal digits, zero-padded.
func appendDigits(dst []byte, v uint64, width int) []byte {
	start := len(dst)
	for range width {
		dst = append(dst, '0')
	}
	for i := len(dst) - 1; i >= start; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
	return dst
}

func pow10(n int) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// mulmod returns a*b mod m.
func mulmod(a, b, m uint64) uint64 {
	hi, lo := bits.Mul64(a%m, b%m)
	return bits.Rem64(hi, lo, m)
}
