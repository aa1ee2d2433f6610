package sms

import (
	"strings"
	"testing"
)

// caseStudyTemplates are the case study's texts as templates, plus a bilingual one for the
// Southeast Asian markets.
func caseStudyTemplates() []Template {
	return []Template{
		{ID: "otp_us", Category: CategoryOTP, Locales: map[string]string{
			"en": "Your Payment Platform verification code for transaction authorization is {{code}}. Valid for {{minutes}} mins. For security, do not share with others. Reply STOP to unsubscribe.",
		}},
		{ID: "transfer_done", Category: CategoryTransaction, Locales: map[string]string{
			"de": "Ihr Geldtransfer von {{amount}} {{currency}} wurde erfolgreich an Empfänger {{payee}} überwiesen. Transaktions-ID: {{txid}}. Wechselkurs: {{rate}}.",
			"en": "Your transfer of {{amount}} {{currency}} to {{payee}} has arrived. Transaction ID: {{txid}}. Rate: {{rate}}.",
		}},
		{ID: "transfer_started", Category: CategoryTransaction, Locales: map[string]string{
			"en":    "Transfer of {{ amount }} started.",
			"ms":    "Pemindahan {{ amount }} telah dimulakan.",
			"id":    "Transfer {{ amount }} telah dimulai.",
			"ms_SG": "Pemindahan {{amount}} dimulakan (SG).",
		}},
		{ID: "lock_alert", Category: CategoryAlert, Locales: map[string]string{
			"en": "Alert: An unusual transaction of {{amount}} was attempted from {{place}} (IP: {{ip}}) on your platform account. Reply LOCK to freeze account, or VERIFY to confirm.",
		}},
	}
}

func mustTemplates(t testing.TB) *Templates {
	t.Helper()
	ts, err := NewTemplates(caseStudyTemplates(), "en")
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestRender(t *testing.T) {
	ts := mustTemplates(t)
	transfer := map[string]string{"amount": "5000", "currency": "Euro", "payee": "XY", "txid": "PL20241208009", "rate": "1 EUR = 7.82 CNY"}
	tests := []struct {
		name string
		ref  TemplateRef
		want string
	}{
		{"us otp renders the case study text", TemplateRef{ID: "otp_us", Params: map[string]string{"code": "7296", "minutes": "5"}}, usOTPText},
		{"german transfer renders the case study text", TemplateRef{ID: "transfer_done", Locale: "de", Params: transfer}, deTransText},
		{"german region falls back to german", TemplateRef{ID: "transfer_done", Locale: "de-AT", Params: transfer}, deTransText},
		{"unknown locale falls back to default", TemplateRef{ID: "transfer_started", Locale: "fr-FR", Params: map[string]string{"amount": "1"}}, "Transfer of 1 started."},
		{"no locale takes default", TemplateRef{ID: "transfer_started", Params: map[string]string{"amount": "1"}}, "Transfer of 1 started."},
		{"ms-MY falls back to ms", TemplateRef{ID: "transfer_started", Locale: "ms-MY", Params: map[string]string{"amount": "RM 10"}}, "Pemindahan RM 10 telah dimulakan."},
		{"exact locale wins, any case or separator", TemplateRef{ID: "transfer_started", Locale: "MS-sg", Params: map[string]string{"amount": "1"}}, "Pemindahan 1 dimulakan (SG)."},
		{"indonesian", TemplateRef{ID: "transfer_started", Locale: "id_ID", Params: map[string]string{"amount": "Rp 10"}}, "Transfer Rp 10 telah dimulai."},
		{"values are not expanded again", TemplateRef{ID: "transfer_started", Params: map[string]string{"amount": "{{amount}}"}}, "Transfer of {{amount}} started."},
		{"case study alert", TemplateRef{ID: "lock_alert", Params: map[string]string{"amount": "1 USD", "place": "Singapore", "ip": "202.138.XX.XX"}}, alertText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, tpl, err := ts.Render(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Render =\n%q\nwant\n%q", got, tt.want)
			}
			if tpl.ID != tt.ref.ID {
				t.Fatalf("template %q, want %q", tpl.ID, tt.ref.ID)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	ts := mustTemplates(t)
	onlyDE, err := NewTemplates([]Template{{ID: "de_only", Category: CategoryAlert, Locales: map[string]string{"de": "Achtung"}}}, "en")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		set      *Templates
		ref      TemplateRef
		code     string
		mentions string
	}{
		{"unknown id", ts, TemplateRef{ID: "nope"}, "unknown_template", `"nope"`},
		{"nil set", nil, TemplateRef{ID: "otp_us"}, "unknown_template", `"otp_us"`},
		{"missing param", ts, TemplateRef{ID: "otp_us", Params: map[string]string{"code": "7296"}}, "template_param_missing", `"minutes"`},
		{"empty param", ts, TemplateRef{ID: "otp_us", Params: map[string]string{"code": "", "minutes": "5"}}, "template_param_missing", `"code"`},
		{"no params", ts, TemplateRef{ID: "otp_us"}, "template_param_missing", `"code"`},
		{"extra param", ts, TemplateRef{ID: "otp_us", Params: map[string]string{"code": "1", "minutes": "5", "zz": "x", "name": "y"}}, "template_param_unknown", `"name"`},
		{"no locale at all", onlyDE, TemplateRef{ID: "de_only", Locale: "fr"}, "template_locale_unavailable", `"de_only"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.set.Render(tt.ref)
			wantCode(t, err, tt.code, "template")
			if !strings.Contains(err.Error(), tt.mentions) {
				t.Fatalf("error %q does not name %s", err, tt.mentions)
			}
			for _, v := range tt.ref.Params {
				if len(v) > 1 && strings.Contains(err.Error(), v) {
					t.Fatalf("error %q repeats a parameter value", err)
				}
			}
		})
	}
	if _, _, err := onlyDE.Render(TemplateRef{ID: "de_only", Locale: "de-DE"}); err != nil {
		t.Fatalf("de-DE should fall back to de: %v", err)
	}
}

func TestNewTemplatesInvalid(t *testing.T) {
	ok := map[string]string{"en": "Hi {{name}}"}
	tests := []struct {
		name    string
		ts      []Template
		def     string
		mention string
	}{
		{"no id", []Template{{Category: CategoryOTP, Locales: ok}}, "en", "#1"},
		{"duplicate id", []Template{{ID: "a", Category: CategoryOTP, Locales: ok}, {ID: "a", Category: CategoryOTP, Locales: ok}}, "en", `"a"`},
		{"bad category", []Template{{ID: "a", Category: "promo", Locales: ok}}, "en", `"a"`},
		{"no locales", []Template{{ID: "a", Category: CategoryOTP}}, "en", `"a"`},
		{"empty text", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en": " "}}}, "en", `"en"`},
		{"empty locale", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"": "x"}}}, "en", `"a"`},
		{"bad locale", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en-": "x"}}}, "en", `"en-"`},
		{"same locale twice", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"ms_MY": "x", "ms-my": "y"}}}, "en", "same"},
		{"unclosed placeholder", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en": "code {{code"}}}, "en", "unclosed"},
		{"stray closing braces", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en": "code code}}"}}}, "en", `"}}"`},
		{"empty placeholder", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en": "code {{ }}"}}}, "en", "not a name"},
		{"placeholder with space", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en": "code {{a b}}"}}}, "en", "not a name"},
		{"nested placeholder", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en": "code {{a{{b}}}}"}}}, "en", "not a name"},
		{"digit first", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en": "code {{1a}}"}}}, "en", "not a name"},
		{"locales disagree", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en": "Hi {{name}}", "de": "Hallo {{nome}}"}}}, "en", "different"},
		{"locale without placeholder", []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"de": "Hallo", "en": "Hi {{name}}"}}}, "en", "different"},
		{"bad default locale", []Template{{ID: "a", Category: CategoryOTP, Locales: ok}}, "", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := NewTemplates(tt.ts, tt.def)
			wantCode(t, err, "invalid_template", "templates")
			if set != nil {
				t.Fatal("got a set with the error")
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %q does not mention %s", err, tt.mention)
			}
		})
	}
}

func TestNewTemplatesCopiesInput(t *testing.T) {
	in := []Template{{ID: "a", Category: CategoryOTP, Locales: map[string]string{"en": "Code {{code}}"}}}
	ts, err := NewTemplates(in, "en")
	if err != nil {
		t.Fatal(err)
	}
	in[0].Locales["en"] = "changed {{code}}"
	got, _, err := ts.Render(TemplateRef{ID: "a", Params: map[string]string{"code": "1"}})
	if err != nil || got != "Code 1" {
		t.Fatalf("Render after changing the input = %q, %v", got, err)
	}
}

func TestMatch(t *testing.T) {
	ts := mustTemplates(t)
	tests := []struct {
		name   string
		body   string
		id     string
		locale string
	}{
		{"us otp", usOTPText, "otp_us", "en"},
		{"us otp with a longer code", strings.Replace(usOTPText, "7296", "729604", 1), "otp_us", "en"},
		{"german transfer", deTransText, "transfer_done", "de"},
		{"alert", alertText, "lock_alert", "en"},
		{"placeholder text spans a newline", "Transfer of 1\n000 started.", "transfer_started", "en"},
		{"malay", "Pemindahan RM 10 telah dimulakan.", "transfer_started", "ms"},
		{"edited literal", strings.Replace(usOTPText, "do not share", "share", 1), "", ""},
		{"empty placeholder", "Transfer of  started.", "", ""},
		{"extra text after", usOTPText + " Click http://x.example", "", ""},
		{"extra text before", "Hi! " + deTransText, "", ""},
		{"regexp metacharacters are literal", strings.Replace(usOTPText, "7296. Valid", "7296X Valid", 1), "", ""},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, locale, ok := ts.Match(tt.body)
			if ok != (tt.id != "") || tpl.ID != tt.id || locale != tt.locale {
				t.Fatalf("Match = %q, %q, %v; want %q, %q", tpl.ID, locale, ok, tt.id, tt.locale)
			}
		})
	}
	var nilSet *Templates
	if _, _, ok := nilSet.Match(usOTPText); ok {
		t.Fatal("a nil set matched")
	}
}

// TestRenderThenMatch checks that every rendering matches its own template.
func TestRenderThenMatch(t *testing.T) {
	ts := mustTemplates(t)
	for _, tpl := range caseStudyTemplates() {
		for locale, text := range tpl.Locales {
			params := map[string]string{}
			for _, p := range strings.Split(text, "{{")[1:] {
				name, _, _ := strings.Cut(p, "}}")
				params[strings.TrimSpace(name)] = "v(" + name + ")*"
			}
			body, _, err := ts.Render(TemplateRef{ID: tpl.ID, Locale: locale, Params: params})
			if err != nil {
				t.Fatal(err)
			}
			got, gotLocale, ok := ts.Match(body)
			if !ok || got.ID != tpl.ID || gotLocale != locale {
				t.Errorf("%s/%s: Match = %q, %q, %v", tpl.ID, locale, got.ID, gotLocale, ok)
			}
		}
	}
}

func TestGet(t *testing.T) {
	ts := mustTemplates(t)
	if tpl, ok := ts.Get("transfer_done"); !ok || tpl.Category != CategoryTransaction || len(tpl.Locales) != 2 {
		t.Fatalf("Get = %+v, %v", tpl, ok)
	}
	if _, ok := ts.Get("nope"); ok {
		t.Fatal("Get found an unknown id")
	}
}

func BenchmarkRender(b *testing.B) {
	ts := mustTemplates(b)
	ref := TemplateRef{ID: "otp_us", Params: map[string]string{"code": "7296", "minutes": "5"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ts.Render(ref); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	ts := mustTemplates(b)
	for _, bc := range []struct{ name, body string }{{"hit-last", alertText}, {"miss", "Hello there, how are you?"}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ts.Match(bc.body)
			}
		})
	}
}
