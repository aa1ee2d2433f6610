package smsproxy.obligations

import data.smsproxy.fixtures

us_long_code := {"country": "US", "sender_kind": "long_code", "from": "+15550000001", "body": "Your payment of $5 was received."}

test_us_long_code_gets_the_region_footer if {
	obligations == {{"kind": "append_footer", "value": "Txt STOP to opt out."}} with input as fixtures.input_with(us_long_code)
		with data.region as fixtures.region
}

test_us_toll_free_gets_the_footer if {
	count(obligations) == 1 with input as fixtures.input_with(object.union(us_long_code, {"sender_kind": "toll_free"}))
		with data.region as fixtures.region
}

test_default_footer_when_region_has_none if {
	obligations == {{"kind": "append_footer", "value": "Reply STOP to unsubscribe."}} with input as fixtures.input_with(us_long_code)
		with data.region as {"countries": {"US": {"providers": ["simulator"]}}}
}

test_body_mentioning_stop_in_any_case_gets_no_footer if {
	every body in ["Reply STOP to end", "reply stop to end", "Text Stop"] {
		count(obligations) == 0 with input as fixtures.input_with(object.union(us_long_code, {"body": body}))
			with data.region as fixtures.region
	}
}

test_us_short_code_gets_no_footer if {
	count(obligations) == 0 with input as fixtures.input_with(object.union(us_long_code, {"sender_kind": "short_code", "from": "12345"}))
		with data.region as fixtures.region
}

test_other_countries_get_no_footer if {
	count(obligations) == 0 with input as fixtures.input_with(object.union(us_long_code, {"country": "SG"}))
		with data.region as fixtures.region
}
