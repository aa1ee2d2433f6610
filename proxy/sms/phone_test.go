package sms

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// wantCode fails t unless err is an *Error with the given code and field.
func wantCode(t *testing.T, err error, code, field string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want *Error with code %q", err, code)
	}
	if e.Code != code || e.Field != field {
		t.Fatalf("error = %q/%q (%s), want %q/%q", e.Code, e.Field, e.Message, code, field)
	}
}

func TestParsePhone(t *testing.T) {
	tests := []struct {
		in   string
		want Phone
	}{
		{"+6591234567", Phone{"+6591234567", "SG", 65, "mobile"}},
		{"+65 9123 4567", Phone{"+6591234567", "SG", 65, "mobile"}},
		{"+65-9123-4567", Phone{"+6591234567", "SG", 65, "mobile"}},
		{"+65 6123 4567", Phone{"+6561234567", "SG", 65, "fixed_line"}},
		{"+1 (415) 555.2671", Phone{"+14155552671", "US", 1, "fixed_line_or_mobile"}},
		{"+1 800 555 0100", Phone{"+18005550100", "US", 1, "toll_free"}},
		{"+1 613 555 0123", Phone{"+16135550123", "CA", 1, "fixed_line_or_mobile"}},
		{"+447400123456", Phone{"+447400123456", "GB", 44, "mobile"}},
		{"+44 (0)20 7946 0958", Phone{"+442079460958", "GB", 44, "fixed_line"}},
		{"+49 (0)30 12345678901", Phone{"+493012345678901", "DE", 49, "fixed_line"}}, // 15 digits once the written 0 goes
		{"+4915112345678", Phone{"+4915112345678", "DE", 49, "mobile"}},
		{"+49 89 12345678", Phone{"+498912345678", "DE", 49, "fixed_line"}},
		{"+6281234567890", Phone{"+6281234567890", "ID", 62, "mobile"}},
		{"+60123456789", Phone{"+60123456789", "MY", 60, "mobile"}},
		{"+8613800138000", Phone{"+8613800138000", "CN", 86, "mobile"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePhone(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ParsePhone = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParsePhoneInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"+",
		"6591234567",         // no "+"
		"006591234567",       // international prefix instead of "+"
		"+06591234567",       // country code starting with 0
		"++6591234567",       // two pluses
		"+65912345678901234", // 17 digits
		"+6591234567890123",  // 16 digits
		"+65abc4567",
		"+65 9123 4567\n",
		"+65/91234567",
		"+６５９１２３４５６７",  // full-width digits
		"+659123",      // too short for Singapore
		"+99912345678", // no such country code
		"+80012345678", // international freephone: no country
		"+6500000000",  // no valid Singapore range
		"+65 9123 4567 ext. 8",
		strings.Repeat(" ", 100),
	} {
		t.Run(in, func(t *testing.T) {
			p, err := ParsePhone(in)
			wantCode(t, err, "invalid_phone", "to")
			if p != (Phone{}) {
				t.Fatalf("got %+v with the error", p)
			}
			if strings.Contains(err.Error(), "91234567") {
				t.Fatal("error message repeats the number")
			}
		})
	}
}

// TestParsePhoneAgreesWithIsValidNumber guards the shortcut that takes GetNumberType != UNKNOWN
// as IsValidNumber.
func TestParsePhoneAgreesWithIsValidNumber(t *testing.T) {
	for _, in := range []string{
		"+6591234567", "+6511234567", "+6561234567", "+6581234567", "+14155552671", "+12125550000",
		"+11234567890", "+18005550100", "+19005550100", "+447400123456", "+441234567", "+4915112345678",
		"+49123", "+6281234567890", "+62812", "+60123456789", "+6012", "+3906698", "+390669812345",
		"+5215512345678", "+97150123456", "+8613800138000", "+861380013800",
	} {
		num, err := phonenumbers.Parse(in, "ZZ")
		if err != nil {
			t.Fatal(err)
		}
		_, perr := ParsePhone(in)
		if valid := phonenumbers.IsValidNumber(num); valid != (perr == nil) {
			t.Errorf("%s: IsValidNumber = %v but ParsePhone error = %v", in, valid, perr)
		}
	}
}

func TestParseCategory(t *testing.T) {
	for _, c := range Categories {
		got, err := ParseCategory(string(c))
		if err != nil || got != c {
			t.Errorf("ParseCategory(%q) = %q, %v", c, got, err)
		}
	}
	for _, in := range []string{"", "OTP", " otp", "promo", "transactional"} {
		_, err := ParseCategory(in)
		wantCode(t, err, "invalid_category", "category")
	}
}

func TestClassifySender(t *testing.T) {
	tests := []struct {
		in   string
		want Sender
	}{
		{"PAYLINK88", Sender{"PAYLINK88", SenderAlphanumeric}},
		{"PayLink", Sender{"PayLink", SenderAlphanumeric}},
		{"PAY LINK", Sender{"PAY LINK", SenderAlphanumeric}},
		{"ABCDEFGHIJK", Sender{"ABCDEFGHIJK", SenderAlphanumeric}}, // 11
		{"ABCDEFGHI€", Sender{"ABCDEFGHI€", SenderAlphanumeric}},   // 9 + 2 septets
		{"Zahlüng", Sender{"Zahlüng", SenderAlphanumeric}},
		{"1Bank", Sender{"1Bank", SenderAlphanumeric}},
		{"72345", Sender{"72345", SenderShortCode}},
		{"12345", Sender{"12345", SenderShortCode}},
		{"123", Sender{"123", SenderShortCode}},
		{"12345678", Sender{"12345678", SenderShortCode}},
		{"+14155552671", Sender{"+14155552671", SenderLongCode}},
		{"+1 (415) 555-2671", Sender{"+14155552671", SenderLongCode}},
		{"+6591234567", Sender{"+6591234567", SenderLongCode}},
		{"6591234567", Sender{"+6591234567", SenderLongCode}},
		{"+447400123456", Sender{"+447400123456", SenderLongCode}},
		{"+1 800 555 0100", Sender{"+18005550100", SenderTollFree}},
		{"+18335550100", Sender{"+18335550100", SenderTollFree}},
		{"+18445550100", Sender{"+18445550100", SenderTollFree}},
		{"+18555550100", Sender{"+18555550100", SenderTollFree}},
		{"+18665550100", Sender{"+18665550100", SenderTollFree}},
		{"+18775550100", Sender{"+18775550100", SenderTollFree}},
		{"18885550100", Sender{"+18885550100", SenderTollFree}},
		{"+448001234567", Sender{"+448001234567", SenderTollFree}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			for range 2 { // the second time from the cache
				got, err := ClassifySender(tt.in)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Fatalf("ClassifySender = %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestClassifySenderInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"ABCDEFGHIJKL", // 12 characters
		"ABCDEFGHIJ€",  // 10 + 2 = 12 septets
		"支付宝",
		"Pay`Link",
		"Pay\u00a0Link",
		"12",
		"1234567890123456", // 16 digits
		"123456789",        // "+123456789" is too short for +1
		"0123456789",       // national number: country code cannot start with 0
		"!!!",
		"+",
		"+65",
		"+99912345678",
		"+65 9123 4567 #",
		"\xffAB",
		"Bank\nX", // control characters are GSM-7 but not a sender's
		"Bank\r",
		"A\fB",
	} {
		t.Run(in, func(t *testing.T) {
			_, err := ClassifySender(in)
			wantCode(t, err, "invalid_sender", "from")
		})
	}
}

func BenchmarkParsePhone(b *testing.B) {
	for _, in := range []string{"+6591234567", "+14155552671", "+4915112345678", "+447400123456", "+16135550123"} {
		b.Run("uncached/"+in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseE164(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("cached/+44 7400 123456", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParsePhone("+44 7400 123456"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("phonenumbers.Parse+IsValidNumber+GetNumberType/+447400123456", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			num, err := phonenumbers.Parse("+447400123456", "ZZ")
			if err != nil || !phonenumbers.IsValidNumber(num) {
				b.Fatal(err)
			}
			phonenumbers.GetRegionCodeForNumber(num)
			phonenumbers.GetNumberType(num)
		}
	})
}

func BenchmarkClassifySender(b *testing.B) {
	for _, in := range []string{"PAYLINK88", "72345", "+18005550100"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ClassifySender(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLookupNumberMatchesParse checks that the fast path of lookupNumber gives what
// phonenumbers.Parse gives, over libphonenumber's example numbers of every region and type,
// the same with a "0" or "1" after the country code, and pseudo-random digit strings.
func TestLookupNumberMatchesParse(t *testing.T) {
	var inputs []string
	types := []phonenumbers.PhoneNumberType{
		phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE, phonenumbers.PREMIUM_RATE,
		phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER,
		phonenumbers.UAN, phonenumbers.VOICEMAIL,
	}
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range types {
			num := phonenumbers.GetExampleNumberForType(region, typ)
			if num == nil {
				continue
			}
			e164 := phonenumbers.Format(num, phonenumbers.E164)
			cc := strconv.Itoa(int(num.GetCountryCode()))
			inputs = append(inputs, e164, "+"+cc+"0"+e164[1+len(cc):], "+"+cc+"1"+e164[1+len(cc):])
		}
	}
	seed := uint64(1)
	for range 1000 {
		seed = seed*6364136223846793005 + 1442695040888963407
		inputs = append(inputs, "+"+strconv.FormatUint(seed>>20|1<<43, 10)[:6+seed%8])
	}
	if len(inputs) < 3000 {
		t.Fatalf("only %d inputs", len(inputs))
	}
	for _, in := range inputs {
		e164, ok := stripE164(in)
		if !ok {
			continue
		}
		var num phonenumbers.PhoneNumber
		got, gotOK := lookupNumber(e164, &num)
		ref, err := phonenumbers.Parse(e164, "ZZ")
		if (err == nil) != gotOK {
			t.Errorf("%s: Parse error %v, lookupNumber ok %v", in, err, gotOK)
			continue
		}
		if err != nil {
			continue
		}
		want := numberInfo{
			e164:        phonenumbers.Format(ref, phonenumbers.E164),
			region:      phonenumbers.GetRegionCodeForNumber(ref),
			callingCode: int(ref.GetCountryCode()),
			typ:         phonenumbers.GetNumberType(ref),
		}
		if got != want {
			t.Errorf("%s: lookupNumber = %+v, Parse = %+v", in, got, want)
		}
		if valid := phonenumbers.IsValidNumber(ref); valid != (got.typ != phonenumbers.UNKNOWN) {
			t.Errorf("%s: IsValidNumber = %v, type %v", in, valid, got.typ)
		}
		if phonenumbers.IsPossibleNumber(ref) != phonenumbers.IsPossibleNumber(&num) {
			t.Errorf("%s: IsPossibleNumber differs", in)
		}
	}
}

func TestParsePhoneCache(t *testing.T) {
	c := newPhoneCache[Phone]()
	for i := range 3 * phoneCacheGeneration {
		c.put(strconv.Itoa(i), Phone{E164: strconv.Itoa(i)})
	}
	if n := c.len(); n > 2*phoneCacheGeneration {
		t.Fatalf("cache holds %d numbers, bound is %d", n, 2*phoneCacheGeneration)
	}
	last := strconv.Itoa(3*phoneCacheGeneration - 1)
	if p, ok := c.get(last); !ok || p.E164 != last {
		t.Fatal("the newest number was dropped")
	}
	if _, ok := c.get("0"); ok {
		t.Fatal("the oldest number is still cached")
	}
	// A number in the old generation survives the next turnover once it was used.
	old := strconv.Itoa(2*phoneCacheGeneration + 1)
	c.get(old)
	for i := range phoneCacheGeneration {
		c.put("x"+strconv.Itoa(i), Phone{})
	}
	if _, ok := c.get(old); !ok {
		t.Fatal("a recently used number was dropped")
	}

	// Through ParsePhone: spelled two ways, both hit the same valid entry, and an invalid
	// number is never cached.
	for range 2 {
		for _, in := range []string{"+65 9123 4567", "+6591234567"} {
			p, err := ParsePhone(in)
			if err != nil || p != (Phone{"+6591234567", "SG", 65, "mobile"}) {
				t.Fatalf("ParsePhone(%q) = %+v, %v", in, p, err)
			}
		}
		if _, err := ParsePhone("+6500000000"); err == nil {
			t.Fatal("an invalid number was accepted")
		}
	}
	if _, ok := phones.get("+6500000000"); ok {
		t.Fatal("an invalid number was cached")
	}
}

func TestParsePhoneConcurrent(t *testing.T) {
	done := make(chan error)
	for g := range 4 {
		go func() {
			var err error
			for i := range 200 {
				in := "+659123" + strconv.Itoa(4000+(i*7+g)%1000)
				p, perr := ParsePhone(in)
				if perr != nil || p.E164 != in {
					err = perr
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
