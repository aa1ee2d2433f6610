package smsproxy.masks

import data.smsproxy.fixtures

test_otp_and_security_bodies_are_hidden if {
	every category in ["otp", "security"] {
		masks == [{"field": "to", "style": "phone"}, {"field": "body", "style": "full"}] with input as fixtures.input_with({"category": category})
	}
}

test_other_bodies_are_kept if {
	every category in ["transaction", "alert", "marketing"] {
		masks == [{"field": "to", "style": "phone"}, {"field": "body", "style": "none"}] with input as fixtures.input_with({"category": category})
	}
}

test_missing_category_keeps_body_and_masks_phone if {
	masks == [{"field": "to", "style": "phone"}, {"field": "body", "style": "none"}] with input as fixtures.input_without(["category"])
}
