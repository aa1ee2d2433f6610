package sms

import (
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	ts := mustTemplates(t)
	tests := []struct {
		name  string
		draft Draft
		want  Message
	}{
		{
			name: "body to singapore from registered sender",
			draft: Draft{App: "payments", To: "+65 9123 4567", From: "PAYLINK88", Body: "Your code is 7296", Category: "otp",
				DeviceID: "dev-1", IdempotencyKey: "k1", Metadata: map[string]string{"order": "42"}},
			want: Message{App: "payments", To: Phone{"+6591234567", "SG", 65, "mobile"}, From: Sender{"PAYLINK88", SenderAlphanumeric},
				Body: "Your code is 7296", Category: CategoryOTP, DeviceID: "dev-1", IdempotencyKey: "k1",
				Metadata: map[string]string{"order": "42"}, Encoding: EncodingGSM7, Segments: 1},
		},
		{
			name: "us otp template takes the template's category and is two segments",
			draft: Draft{App: "payments", To: "+14155552671", From: "+1 (800) 555-0100",
				Template: &TemplateRef{ID: "otp_us", Locale: "en-US", Params: map[string]string{"code": "7296", "minutes": "5"}}},
			want: Message{App: "payments", To: Phone{"+14155552671", "US", 1, "fixed_line_or_mobile"}, From: Sender{"+18005550100", SenderTollFree},
				Body: usOTPText, Category: CategoryOTP, Encoding: EncodingGSM7, Segments: 2,
				Template: &TemplateRef{ID: "otp_us", Locale: "en", Params: map[string]string{"code": "7296", "minutes": "5"}}},
		},
		{
			name: "german template with matching category stays GSM-7",
			draft: Draft{To: "+4915112345678", From: "PayLink", Category: "transaction",
				Template: &TemplateRef{ID: "transfer_done", Locale: "de-DE", Params: map[string]string{"amount": "5000", "currency": "Euro", "payee": "XY", "txid": "PL20241208009", "rate": "1 EUR = 7.82 CNY"}}},
			want: Message{To: Phone{"+4915112345678", "DE", 49, "mobile"}, From: Sender{"PayLink", SenderAlphanumeric},
				Body: deTransText, Category: CategoryTransaction, Encoding: EncodingGSM7, Segments: 1,
				Template: &TemplateRef{ID: "transfer_done", Locale: "de", Params: map[string]string{"amount": "5000", "currency": "Euro", "payee": "XY", "txid": "PL20241208009", "rate": "1 EUR = 7.82 CNY"}}},
		},
		{
			name:  "chinese body is UCS-2 from a short code",
			draft: Draft{To: "+60123456789", From: "72345", Body: "您的验证码是7296", Category: "otp"},
			want: Message{To: Phone{"+60123456789", "MY", 60, "mobile"}, From: Sender{"72345", SenderShortCode},
				Body: "您的验证码是7296", Category: CategoryOTP, Encoding: EncodingUCS2, Segments: 1},
		},
		{
			name:  "ten segments is the most",
			draft: Draft{To: "+447400123456", From: "447400000000", Body: strings.Repeat("a", 1530), Category: "marketing"},
			want: Message{To: Phone{"+447400123456", "GB", 44, "mobile"}, From: Sender{"+447400000000", SenderLongCode},
				Body: strings.Repeat("a", 1530), Category: CategoryMarketing, Encoding: EncodingGSM7, Segments: 10},
		},
		{
			name:  "newlines and carriage returns are allowed",
			draft: Draft{To: "+6281234567890", From: "BANK", Body: "Line 1\r\nLine 2\n", Category: "alert"},
			want: Message{To: Phone{"+6281234567890", "ID", 62, "mobile"}, From: Sender{"BANK", SenderAlphanumeric},
				Body: "Line 1\r\nLine 2\n", Category: CategoryAlert, Encoding: EncodingGSM7, Segments: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.draft, ts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Normalize =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestNormalizeErrors(t *testing.T) {
	ts := mustTemplates(t)
	base := Draft{To: "+6591234567", From: "PAYLINK88", Body: "hello", Category: "otp"}
	with := func(f func(*Draft)) Draft {
		d := base
		f(&d)
		return d
	}
	otp := &TemplateRef{ID: "otp_us", Params: map[string]string{"code": "1", "minutes": "5"}}
	bigMeta := map[string]string{}
	for i := range 17 {
		bigMeta["k"+strconv.Itoa(i)] = "v"
	}
	tests := []struct {
		name        string
		draft       Draft
		code, field string
	}{
		{"bad to", with(func(d *Draft) { d.To = "6591234567" }), "invalid_phone", "to"},
		{"bad from", with(func(d *Draft) { d.From = "TOOLONGSENDERID" }), "invalid_sender", "from"},
		{"no category", with(func(d *Draft) { d.Category = "" }), "invalid_category", "category"},
		{"bad category", with(func(d *Draft) { d.Category = "promo" }), "invalid_category", "category"},
		{"neither body nor template", with(func(d *Draft) { d.Body = "" }), "body_or_template", "body"},
		{"both body and template", with(func(d *Draft) { d.Template = otp }), "body_or_template", "body"},
		{"template category mismatch", with(func(d *Draft) { d.Body, d.Category, d.Template = "", "marketing", otp }), "template_category_mismatch", "category"},
		{"unknown template", with(func(d *Draft) { d.Body, d.Template = "", &TemplateRef{ID: "x"} }), "unknown_template", "template"},
		{"template param missing", with(func(d *Draft) { d.Body, d.Template = "", &TemplateRef{ID: "otp_us"} }), "template_param_missing", "template"},
		{"NUL in body", with(func(d *Draft) { d.Body = "code\x001234" }), "invalid_body", "body"},
		{"escape in body", with(func(d *Draft) { d.Body = "code \x1b[31m" }), "invalid_body", "body"},
		{"tab in body", with(func(d *Draft) { d.Body = "a\tb" }), "invalid_body", "body"},
		{"form feed in body", with(func(d *Draft) { d.Body = "a\fb" }), "invalid_body", "body"},
		{"C1 control in body", with(func(d *Draft) { d.Body = "a\u0085b" }), "invalid_body", "body"},
		{"DEL in body", with(func(d *Draft) { d.Body = "a\x7fb" }), "invalid_body", "body"},
		{"invalid UTF-8 body", with(func(d *Draft) { d.Body = "a\xffb" }), "invalid_body", "body"},
		{"blank body", with(func(d *Draft) { d.Body = " \n " }), "invalid_body", "body"},
		{"invisible body", with(func(d *Draft) { d.Body = "\u200b\ufeff \u2060" }), "invalid_body", "body"},
		{"control char injected by a param", with(func(d *Draft) {
			d.Body, d.Template = "", &TemplateRef{ID: "otp_us", Params: map[string]string{"code": "1\x00", "minutes": "5"}}
		}), "invalid_body", "body"},
		{"eleven segments", with(func(d *Draft) { d.Body = strings.Repeat("a", 1531) }), "body_too_long", "body"},
		{"eleven UCS-2 segments", with(func(d *Draft) { d.Body = strings.Repeat("中", 671) }), "body_too_long", "body"},
		{"long device id", with(func(d *Draft) { d.DeviceID = strings.Repeat("d", 129) }), "invalid_device_id", "device_id"},
		{"control in device id", with(func(d *Draft) { d.DeviceID = "a\nb" }), "invalid_device_id", "device_id"},
		{"long idempotency key", with(func(d *Draft) { d.IdempotencyKey = strings.Repeat("k", 129) }), "invalid_idempotency_key", "idempotency_key"},
		{"17 metadata keys", with(func(d *Draft) { d.Metadata = bigMeta }), "invalid_metadata", "metadata"},
		{"empty metadata key", with(func(d *Draft) { d.Metadata = map[string]string{"": "v"} }), "invalid_metadata", "metadata"},
		{"long metadata key", with(func(d *Draft) { d.Metadata = map[string]string{strings.Repeat("k", 65): "v"} }), "invalid_metadata", "metadata"},
		{"long metadata value", with(func(d *Draft) { d.Metadata = map[string]string{"k": strings.Repeat("v", 513)} }), "invalid_metadata", "metadata"},
		{"invalid UTF-8 metadata value", with(func(d *Draft) { d.Metadata = map[string]string{"k": "\xff"} }), "invalid_metadata", "metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Normalize(tt.draft, ts)
			wantCode(t, err, tt.code, tt.field)
			if !reflect.DeepEqual(m, Message{}) {
				t.Fatal("got a message with the error")
			}
		})
	}
}

func TestNormalizeLimitsAreInclusive(t *testing.T) {
	md := map[string]string{}
	for i := range 16 {
		md[strconv.Itoa(i)+strings.Repeat("k", 62)] = strings.Repeat("é", 512)
	}
	d := Draft{To: "+6591234567", From: "PAYLINK88", Body: strings.Repeat("中", 670), Category: "otp",
		DeviceID: strings.Repeat("é", 128), IdempotencyKey: strings.Repeat("k", 128), Metadata: md}
	m, err := Normalize(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Segments != 10 || m.Encoding != EncodingUCS2 {
		t.Fatalf("got %d %s segments", m.Segments, m.Encoding)
	}
}

func TestNormalizeCopiesCallerMaps(t *testing.T) {
	ts := mustTemplates(t)
	md := map[string]string{"a": "1"}
	params := map[string]string{"code": "7296", "minutes": "5"}
	d := Draft{To: "+6591234567", From: "PAYLINK88", Metadata: md, Template: &TemplateRef{ID: "otp_us", Params: params}}
	m, err := Normalize(d, ts)
	if err != nil {
		t.Fatal(err)
	}
	md["a"], params["code"] = "changed", "0000"
	if m.Metadata["a"] != "1" || m.Template.Params["code"] != "7296" {
		t.Fatal("the message shares maps with the draft")
	}
	if m.Template == d.Template {
		t.Fatal("the message shares the template ref with the draft")
	}
	if d.Template.Locale != "" {
		t.Fatal("Normalize changed the draft's template ref")
	}
	if !maps.Equal(d.Template.Params, params) {
		t.Fatal("Normalize changed the draft's params")
	}
}

func BenchmarkNormalize(b *testing.B) {
	ts := mustTemplates(b)
	for _, bc := range []struct {
		name string
		d    Draft
	}{
		{"body-sg", Draft{App: "payments", To: "+6591234567", From: "PAYLINK88", Body: "Your code is 7296. Valid for 5 mins.", Category: "otp", DeviceID: "dev-1"}},
		{"template-us", Draft{App: "payments", To: "+14155552671", From: "+18005550100",
			Template: &TemplateRef{ID: "otp_us", Params: map[string]string{"code": "7296", "minutes": "5"}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Normalize(bc.d, ts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestNormalizeComposesTheBody: a body in decomposed form (e + combining acute) is sent composed,
// which GSM-7 can carry, instead of as UCS-2 at half the characters per segment.
func TestNormalizeComposesTheBody(t *testing.T) {
	ts := mustTemplates(t)
	m, err := Normalize(Draft{App: "payments", To: "+6591234567", From: "PAYLINK88", Category: "transaction",
		Body: "Cafe\u0301 paid"}, ts)
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != "Caf\u00e9 paid" || m.Encoding != EncodingGSM7 || m.Segments != 1 {
		t.Errorf("Normalize = %q %s %d, want %q GSM-7 1", m.Body, m.Encoding, m.Segments, "Caf\u00e9 paid")
	}
}
