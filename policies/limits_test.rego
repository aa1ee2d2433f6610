package smsproxy.limits

import data.smsproxy.fixtures

test_otp_with_device_declares_all_three_limits if {
	ls := limits with input as fixtures.input_with({}) with data.region as fixtures.region
	ls == {
		{
			"key": "app:payments", "rate": 50, "period": "1s", "burst": 100, "code": "app_rate_exceeded",
			"message": `App "payments" has reached its limit of 50 messages per 1s.`,
		},
		{
			"key": "otp:device:dev-1", "rate": 3, "period": "24h", "burst": 0, "code": "otp_device_daily_limit",
			"message": "This device has already received 3 one-time passwords in the last 24h.",
		},
		{
			"key": "otp:to:+6580000001", "rate": 1, "period": "60s", "burst": 0, "code": "otp_resend_too_soon",
			"message": "A one-time password was sent to this number less than 60s ago; please wait before asking for another.",
		},
	}
}

test_otp_without_device_has_no_device_limit if {
	ls := limits with input as fixtures.input_with({"device_id": ""}) with data.region as fixtures.region
	{l.code | some l in ls} == {"app_rate_exceeded", "otp_resend_too_soon"}
}

test_non_otp_has_only_the_app_limit if {
	ls := limits with input as fixtures.input_with({"category": "transaction"}) with data.region as fixtures.region
	{l.key | some l in ls} == {"app:payments"}
}

test_limits_come_from_region_data if {
	region := object.union(fixtures.region, {"limits": {"otp_per_number": {"rate": 2, "period": "5m", "burst": 2}}})
	ls := limits with input as fixtures.input_with({}) with data.region as region
	some l in ls
	l.code == "otp_resend_too_soon"
	l.rate == 2
	l.period == "5m"
	l.burst == 2
	contains(l.message, "less than 5m ago")
}

test_no_limit_data_declares_no_limits if {
	count(limits) == 0 with input as fixtures.input_with({}) with data.region as object.remove(fixtures.region, ["limits"])
}

test_missing_app_has_no_app_limit if {
	ls := limits with input as object.remove(fixtures.input_with({}), ["app"]) with data.region as fixtures.region
	not "app_rate_exceeded" in {l.code | some l in ls}
}
