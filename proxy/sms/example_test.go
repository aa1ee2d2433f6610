package sms_test

import (
	"fmt"

	"github.com/smsproxy/smsproxy/proxy/sms"
)

func ExampleEncode() {
	fmt.Println(sms.Encode("Ihr Geldtransfer an Empfänger XY wurde überwiesen."))
	fmt.Println(sms.Encode("您的验证码是 7296"))
	// Output:
	// {GSM-7 50 1}
	// {UCS-2 11 1}
}

func ExampleMaskPhone() {
	fmt.Println(sms.MaskPhone("+6591234567"))
	// Output: +65******67
}

func ExampleNormalize() {
	ts, err := sms.NewTemplates([]sms.Template{{
		ID:       "otp",
		Category: sms.CategoryOTP,
		Locales:  map[string]string{"en": "Your code is {{code}}. Do not share it."},
	}}, "en")
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := sms.Normalize(sms.Draft{
		To:       "+65 9123 4567",
		From:     "PAYLINK88",
		Template: &sms.TemplateRef{ID: "otp", Locale: "en-SG", Params: map[string]string{"code": "7296"}},
	}, ts)
	fmt.Println(m.To.Country, m.To.Type, m.From.Kind, m.Category, m.Encoding, m.Segments, m.Template.Locale, err)
	// Output: SG mobile alphanumeric otp GSM-7 1 en <nil>
}
