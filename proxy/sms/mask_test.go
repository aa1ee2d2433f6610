package sms

import "testing"

func TestMaskPhone(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+6591234567", "+65******67"},
		{"+14155552671", "+1********71"},
		{"+4915112345678", "+49*********78"},
		{"+447400123456", "+44********56"},
		{"+6281234567890", "+62*********90"},
		{"+60123456789", "+60*******89"},
		{"+8613800138000", "+86*********00"},
		{"+3712345678", "+371*****78"},   // Latvia: three-digit country code
		{"+80012345678", "+800******78"}, // non-geographic code is still a code
		{"+65123", "******"},             // too short: the tail would be most of it
		{"+6512345", "********"},
		{"+65123456", "+65****56"},
		{"+9991234567", "***********"}, // unknown country code
		{"6591234567", "**********"},   // not E.164
		{"+65 9123 4567", "*************"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := MaskPhone(tt.in); got != tt.want {
			t.Errorf("MaskPhone(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMaskAll(t *testing.T) {
	for in, want := range map[string]string{"": "", "7296": "****", "Empfänger": "*********", "中文": "**"} {
		if got := MaskAll(in); got != want {
			t.Errorf("MaskAll(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskKeepLast(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"PL20241208009", 4, "*********8009"},
		{"1234567890", 4, "******7890"},
		{"Konto-Müller", 3, "*********ler"},
		{"ab中文", 2, "**中文"},
		{"1234", 4, "****"}, // never shown whole
		{"123", 4, "***"},
		{"secret", 0, "******"},
		{"secret", -1, "******"},
		{"", 4, ""},
	}
	for _, tt := range tests {
		if got := MaskKeepLast(tt.in, tt.n); got != tt.want {
			t.Errorf("MaskKeepLast(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
