package smsproxy.routing

import data.smsproxy.fixtures

test_route_is_the_country_provider_list_in_order if {
	route == {"providers": ["simulator", "backup"]} with input as fixtures.input_with({}) with data.region as fixtures.region
}

test_unserved_country_has_an_empty_route if {
	route == {"providers": []} with input as fixtures.input_with({"country": "FR"}) with data.region as fixtures.region
}

test_country_without_providers_has_an_empty_route if {
	route == {"providers": []} with input as fixtures.input_with({}) with data.region as {"countries": {"SG": {}}}
}
