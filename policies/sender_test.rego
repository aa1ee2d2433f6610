package smsproxy.sender

import data.smsproxy.fixtures

test_alphanumeric_allowed_where_country_allows_it if {
	count(deny) == 0 with input as fixtures.input_with({"country": "SG"}) with data.region as fixtures.region
}

test_alphanumeric_refused_where_country_forbids_it if {
	some r in deny with input as fixtures.input_with({"country": "US"}) with data.region as fixtures.region
	r.code == "sender_type_not_allowed"
	r.message == "Alphanumeric sender IDs are not allowed for messages to US."
}

test_long_code_allowed_where_alphanumeric_is_forbidden if {
	count(deny) == 0 with input as fixtures.input_with({"country": "US", "sender_kind": "long_code", "from": "+15550000001"})
		with data.region as fixtures.region
}

test_well_formed_senders_are_accepted if {
	every from in ["ABC", "ACME PAY", "A.B&C_D-E", "Bank12345AB"] {
		count(deny) == 0 with input as fixtures.input_with({"from": from}) with data.region as fixtures.region
	}
}

test_malformed_senders_are_refused if {
	every from in ["AB", "", "ACMEPAYMENTS", "ACME!", "ÄCME", " ACME", "ACME ", "AC\nME"] {
		fixtures.codes(deny) == {"sender_malformed"} with input as fixtures.input_with({"from": from})
			with data.region as fixtures.region
	}
}

test_missing_alphanumeric_sender_is_malformed if {
	fixtures.codes(deny) == {"sender_malformed"} with input as fixtures.input_without(["from"])
		with data.region as fixtures.region
}

test_format_rules_apply_only_to_alphanumeric_senders if {
	count(deny) == 0 with input as fixtures.input_with({"sender_kind": "short_code", "from": "72"})
		with data.region as fixtures.region
}

test_malformed_and_forbidden_are_both_reported if {
	fixtures.codes(deny) == {"sender_malformed", "sender_type_not_allowed"} with input as fixtures.input_with({"country": "US", "from": "X"})
		with data.region as fixtures.region
}
