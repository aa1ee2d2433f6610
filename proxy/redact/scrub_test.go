package redact

import (
	"strings"
	"testing"
)

func TestScrubRemovesLeaks(t *testing.T) {
	tests := []struct {
		in string
		// secret must not appear in the output; want, when set, is the exact output.
		secret, want string
	}{
		{in: "+6591234567", secret: "91234567", want: Mask},
		{in: "send to +6591234567 failed", secret: "91234567", want: "send to " + Mask + " failed"},
		{in: "send to +65 9123 4567 failed", secret: "9123 4567"},
		{in: "number +1 (555) 123-4567.", secret: "123-4567", want: "number " + Mask + "."},
		{in: "(555) 123-4567", secret: "123-4567"},
		{in: "call 0171 1234567", secret: "1234567"},
		{in: "call 555-1234 now", secret: "555-1234"},
		{in: "fr: 06.12.34.56.78", secret: "34.56.78"},
		{in: "us: 555.123.4567", secret: "123.4567"},
		{in: "id +62-812-3456-7890", secret: "3456-7890"},
		{in: "msisdn 6591234567,6598765432", secret: "6598765432"},
		{in: "card 4111 1111 1111 1111 declined", secret: "1111 1111 1111"},
		{in: "card 4111-1111-1111-1111", secret: "1111-1111"},
		{in: "pan=4111111111111111", secret: "4111111111111111"},
		{in: "account 0012345678901 blocked", secret: "12345678901"},
		{in: "Your code is 123456", secret: "123456", want: "Your code is " + Mask},
		{in: "OTP: 4821", secret: "4821"},
		{in: "PIN 9876 expires", secret: "9876"},
		{in: `Post "https://api.example.com/send?To=%2B6591234567&Body=Your+code+is+123456&From=PAYLINK88": EOF`, secret: "91234567"},
		{in: `https://api.example.com/send?to=%2B6591234567`, secret: "91234567"},
		{in: `GET /v1/numbers/%2B6591234567`, secret: "91234567"},
		{in: `decode {"to":"+6591234567","body":"Your transfer PL20241208009 has arrived."}`, secret: "transfer"},
		{in: `decode {"to":"+6591234567","body":"Your transfer PL20241208009 has arrived."}`, secret: "PL20241208009"},
		{in: `{"code": 482193, "status": "ok"}`, secret: "482193"},
		{in: `{"otp":"48 21 93"}`, secret: "48 21 93"},
		{in: "api_key=sk_live_abcdef123", secret: "sk_live_abcdef123", want: "api_key=" + Mask},
		{in: "apiKey: sk_live_abcdef123 rejected", secret: "sk_live"},
		{in: "password=hunter2&user=bob", secret: "hunter2", want: "password=" + Mask + "&user=bob"},
		{in: "Authorization: Bearer smsproxy-dev-key", secret: "smsproxy-dev-key"},
		{in: "bad header authorization=Basic dXNlcjpwYXNz", secret: "dXNlcjpwYXNz"},
		{in: "token rejected: Bearer eyJhbGciOi.eyJzdWIi.sig", secret: "eyJhbGciOi"},
		{in: "secret: s3cr3t-value", secret: "s3cr3t"},
		{in: `text="Your code is 1234"`, secret: "1234"},
		{in: "phone_number=+6591234567", secret: "91234567"},
	}
	for _, tt := range tests {
		got := Scrub(tt.in)
		if strings.Contains(got, tt.secret) {
			t.Errorf("Scrub(%q) = %q still contains %q", tt.in, got, tt.secret)
		}
		if tt.want != "" && got != tt.want {
			t.Errorf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestScrubKeepsBenignValues(t *testing.T) {
	for _, in := range []string{
		"msg_01a21d47edb824e99584bf858ec9",
		"msg_0123456789abcdef01234567",
		"policy revision 0443c8ba8d72 swapped",
		"rev 1234567abcdef0",
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"123e4567-e89b-12d3-a456-426614174000",
		"12345678-1234-5678-9abc-def012345678",
		"took 1.234567891s",
		"took 12.3456789ms",
		"p99 5.1ms, 52.5k req/s",
		"latency 12.3456789",
		"2026-11-27T10:15:30.123456789Z",
		"2026-11-27 10:15:30.123456 +0000 UTC",
		"2026-11-27",
		"listening on 127.0.0.1:8080",
		"10.100.200.150:9090",
		"[::1]:8080",
		"http://localhost:8080/v1/messages",
		"provider simulator failed: unavailable",
		"country SG, segments 2, encoding GSM-7",
		"sent 42 messages in 3 batches of 16",
		"retry 3 of 5 after 250ms",
		"opa v1.22.3, go1.26.8",
		"code=otp_resend_too_soon",
		`{"code":"country_not_served","rule":"smsproxy.sg.sender"}`,
		"error_code=21610",
		"status_code: 429",
		"transfer PL20241208009 has arrived",
		"sender PAYLINK88",
		"queue depth 123456",
		"version 1.2.3.4",
		"batch of 1024 in 0.35 ms",
		"",
	} {
		if got := Scrub(in); got != in {
			t.Errorf("Scrub(%q) = %q, want it unchanged", in, got)
		}
	}
}

func TestSensitiveKey(t *testing.T) {
	for key, want := range map[string]bool{
		"to": true, "To": true, "number": true, "phone": true, "msisdn": true, "body": true, "text": true,
		"code": true, "otp": true, "key": true, "secret": true, "token": true, "password": true,
		"authorization": true, "Authorization": true, "params": true, "api_key": true, "apiKey": true,
		"X-Api-Key": true, "phone_number": true, "phoneNumber": true, "reply_to": true, "message_text": true,
		"otp_code": true, "verification_code": true, "otp_len": true, "client_secret": true, "access_token": true,
		"recipient": true, "card_number": true, "request_body": true,
		"message_id": false, "id": false, "app": false, "provider": false, "country": false, "segments": false,
		"error_code": false, "status_code": false, "country_code": false, "reasonCode": false, "seq_number": false,
		"context": false, "proto": false, "keyword": false, "duration": false, "revision": false, "rule": false,
		"err": false, "error": false, "count": false, "body_len": false, "key_id": false, "": false,
	} {
		if got := SensitiveKey(key); got != want {
			t.Errorf("SensitiveKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestScrubDoesNotAllocateWhenClean(t *testing.T) {
	s := "policy swapped old_revision=0443c8ba8d72 new_revision=9f1c2ab3 tests=41 on 127.0.0.1:8080"
	if n := testing.AllocsPerRun(100, func() { Scrub(s) }); n != 0 {
		t.Fatalf("Scrub allocates %v times on a clean string", n)
	}
}
