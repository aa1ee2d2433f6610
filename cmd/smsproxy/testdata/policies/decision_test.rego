package smsproxy_test

import data.smsproxy

test_opted_out_refused if {
	not smsproxy.decision.allow with input as {"message": {"category": "otp"}, "facts": {"opted_out": true, "local_hour": 1, "time_zone": ""}}
}

test_plain_allowed if {
	smsproxy.decision.allow with input as {"message": {"category": "otp"}, "facts": {"opted_out": false, "local_hour": 1, "time_zone": ""}}
}
