# Shared fixtures for the policy tests: a small region and a base message that every
# test changes one field at a time. Loaded only when tests run.
package smsproxy.fixtures

region := {
	"region": "test",
	"countries": {
		"SG": {
			"providers": ["simulator", "backup"], "alphanumeric": true, "time_zone": "Asia/Singapore",
			"templates_required": ["otp"], "quiet_hours": {"start": 21, "end": 8},
			"sender_registration": {"alphanumeric": "required", "long_code": "optional"},
		},
		"US": {
			"providers": ["simulator"], "alphanumeric": false, "opt_out_footer": "Txt STOP to opt out.",
			"time_zone": "America/New_York", "quiet_hours": {"start": 8, "end": 9},
		},
		"GB": {
			"providers": ["simulator"], "alphanumeric": true, "categories": ["otp", "transaction", "security", "marketing"],
			"gdpr": true, "sender_registration": {"alphanumeric": "optional"},
		},
	},
	"residency": {"DE": "eu"},
	"limits": {
		"app": {"rate": 50, "period": "1s", "burst": 100},
		"otp_per_device": {"rate": 3, "period": "24h"},
		"otp_per_number": {"rate": 1, "period": "60s"},
		"velocity_country": {"rate": 100, "period": "1s"},
		"velocity_prefix": {"rate": 10, "period": "1s", "digits": 4},
	},
	"senders": {
		"SG": {"ACMEPAY": {"apps": ["payments"]}, "OTHERCO": {"apps": ["other"]}, "72345": {"apps": ["payments"], "categories": ["otp"]}},
		"US": {
			"+15550000001": {"apps": ["payments"], "campaign": "C1"},
			"+15550000002": {"apps": ["payments"], "campaign": "CNOPE"},
			"+18005550000": {"apps": ["payments"], "verified": true},
			"+18005550001": {"apps": ["payments"]},
		},
		"GB": {"ACMEPAY": {"apps": ["payments"]}},
	},
	"generic_sender_ids": {"OTP": true, "BANK": true},
	"us_10dlc": {
		"brands": {"B1": {"name": "Acme", "trust_score": 80, "daily_cap": 2000}},
		"campaigns": {"C1": {"brand": "B1", "use_case": "ACCOUNT_NOTIFICATION", "per_minute": 240}},
		"use_cases": {"ACCOUNT_NOTIFICATION": ["transaction", "alert"]},
	},
	"opt_out": {"confirmation_templates": ["stop_confirmation"], "exceptions": {"alert": "fraud alerts reach the account holder."}},
	"gdpr": {"exempt_categories": ["otp", "security"], "bases": {"marketing": ["consent"]}},
	"content": {
		"card_numbers": "refuse", "ibans": "mask",
		"lists": {
			"sensitive": {"action": "refuse", "description": "Never ask for these.", "phrases": ["cvv", "card number", "geheimzahl"]},
			"watch": {"action": "mask", "description": "Hide these.", "phrases": ["salary"]},
		},
	},
	"masking": {"fields": {"to": "phone", "template.params.code": "full"}, "body": {"otp": "full"}},
	"templates": {
		"otp_login": {"category": "otp", "locales": {"en": "Your code is {{code}}. Do not share it."}},
		"stop_confirmation": {"category": "transaction", "locales": {"en": "You are unsubscribed."}},
	},
}

message := {
	"to": "+6580000001",
	"country": "SG",
	"calling_code": 65,
	"number_type": "mobile",
	"from": "ACMEPAY",
	"sender_kind": "alphanumeric",
	"category": "otp",
	"body": "Your code is 000000. Do not share it.",
	"encoding": "GSM-7",
	"segments": 1,
	"device_id": "dev-1",
}

facts := {"opted_out": false, "consents": {}, "local_hour": 12, "local_weekday": 3, "time_zone": "Asia/Singapore"}

# input_with is a whole input whose message is the base message with changes applied.
input_with(changes) := {"app": "payments", "now": 1767225600, "message": object.union(message, changes), "facts": facts}

# input_facts is a whole input with message and facts changes applied.
input_facts(changes, fact_changes) := {
	"app": "payments", "now": 1767225600,
	"message": object.union(message, changes), "facts": object.union(facts, fact_changes),
}

# input_without is a whole input whose message lacks the named fields.
input_without(fields) := {"app": "payments", "now": 1767225600, "message": object.remove(message, fields), "facts": facts}

# codes is the set of reason codes in a collection of reasons.
codes(reasons) := {r.code | some r in reasons}
