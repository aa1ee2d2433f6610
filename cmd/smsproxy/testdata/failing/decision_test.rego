package smsproxy_test

import data.smsproxy

test_wrongly_expects_refusal if {
	not smsproxy.decision.allow with input as {"message": {"category": "otp"}, "facts": {"opted_out": false, "local_hour": 1, "time_zone": ""}}
}
