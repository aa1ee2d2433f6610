# Shared fixtures for the policy tests: a small region and a base message that every
# test changes one field at a time. Loaded only when tests run.
package smsproxy.fixtures

region := {
	"region": "test",
	"countries": {
		"SG": {"providers": ["simulator", "backup"], "alphanumeric": true},
		"US": {"providers": ["simulator"], "alphanumeric": false, "opt_out_footer": "Txt STOP to opt out."},
		"GB": {"providers": ["simulator"], "alphanumeric": true, "categories": ["otp", "transaction", "security"]},
	},
	"limits": {
		"app": {"rate": 50, "period": "1s", "burst": 100},
		"otp_per_device": {"rate": 3, "period": "24h"},
		"otp_per_number": {"rate": 1, "period": "60s"},
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
	"body": "Your code is 000000",
	"encoding": "GSM-7",
	"segments": 1,
	"device_id": "dev-1",
}

# input_with is a whole input whose message is the base message with changes applied.
input_with(changes) := {"app": "payments", "now": 1767225600, "message": object.union(message, changes)}

# input_without is a whole input whose message lacks the named fields.
input_without(fields) := {"app": "payments", "now": 1767225600, "message": object.remove(message, fields)}

# codes is the set of reason codes in a collection of reasons.
codes(reasons) := {r.code | some r in reasons}
