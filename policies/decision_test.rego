package smsproxy

import data.smsproxy.fixtures

test_clean_message_is_allowed_with_its_limits_route_and_masks if {
	d := decision with input as fixtures.input_with({}) with data.region as fixtures.region
	d.allow == true
	d.reasons == []
	count(d.limits) == 3
	d.route == {"providers": ["simulator", "backup"]}
	d.masks == [{"field": "to", "style": "phone"}, {"field": "body", "style": "full"}]
	d.obligations == []
}

test_any_refusal_denies if {
	d := decision with input as fixtures.input_with({"country": "FR"}) with data.region as fixtures.region
	d.allow == false
	fixtures.codes(d.reasons) == {"country_not_served"}
	d.limits == []
}

test_refusals_from_several_packages_are_all_reported if {
	d := decision with input as fixtures.input_with({"country": "US", "from": "X"}) with data.region as fixtures.region
	d.allow == false
	count(d.reasons) == 2
	fixtures.codes(d.reasons) == {"sender_malformed", "sender_type_not_allowed"}
}

test_missing_message_is_refused if {
	d := decision with input as {"app": "payments"} with data.region as fixtures.region
	d.allow == false
	"country_not_served" in fixtures.codes(d.reasons)
}

test_missing_input_is_refused if {
	d := decision with data.region as fixtures.region
	d.allow == false
}

test_us_long_code_carries_footer_obligation if {
	d := decision with input as fixtures.input_with({"country": "US", "sender_kind": "long_code", "from": "+15550000001", "category": "transaction", "body": "Paid"})
		with data.region as fixtures.region
	d.allow == true
	d.obligations == [{"kind": "append_footer", "value": "Txt STOP to opt out."}]
}
