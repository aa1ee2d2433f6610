package smsproxy.destination

import data.smsproxy.fixtures

test_served_country_is_not_refused if {
	count(deny) == 0 with input as fixtures.input_with({}) with data.region as fixtures.region
}

test_unserved_country_is_refused_by_name if {
	some r in deny with input as fixtures.input_with({"country": "FR"}) with data.region as fixtures.region
	r.code == "country_not_served"
	r.message == "Messages to FR are not served in this region."
	r.rule == "smsproxy.destination.country_not_served"
}

test_missing_country_is_refused if {
	some r in deny with input as fixtures.input_without(["country"]) with data.region as fixtures.region
	r.code == "country_not_served"
	contains(r.message, "an unknown country")
}

test_region_without_countries_refuses_everything if {
	fixtures.codes(deny) == {"country_not_served"} with input as fixtures.input_with({}) with data.region as {}
}

test_listed_category_is_allowed if {
	count(deny) == 0 with input as fixtures.input_with({"country": "GB", "category": "transaction"})
		with data.region as fixtures.region
}

test_unlisted_category_is_refused if {
	some r in deny with input as fixtures.input_with({"country": "GB", "category": "marketing"})
		with data.region as fixtures.region
	r.code == "category_not_allowed"
	r.message == `Messages of category "marketing" may not be sent to GB.`
}

test_missing_category_is_refused_where_categories_are_listed if {
	fixtures.codes(deny) == {"category_not_allowed"} with input as fixtures.input_without(["category"])
		with input.message.country as "GB"
		with data.region as fixtures.region
}

test_country_without_category_list_accepts_any_category if {
	count(deny) == 0 with input as fixtures.input_with({"category": "marketing"}) with data.region as fixtures.region
}
