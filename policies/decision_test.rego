package smsproxy

import data.smsproxy.fixtures

# decide is the decision for an input, reached the way the proxy reaches it: the class is evaluated
# on the class fields alone ("" for a missing one) and given to the decision as input.class.
decide(msg) := d if {
	d := decide_in_region(msg) with data.region as fixtures.region
}

# decide_in_region is decide with whatever data.region the caller sets.
decide_in_region(msg) := d if {
	fields := class_fields(msg)
	c := class with input as fields
	d := decision with input as object.union(object.union(msg, fields), {"class": c})
}

class_fields(msg) := {
	"app": object.get(msg, "app", ""),
	"message": {k: object.get(msg, ["message", k], "") | some k in ["country", "from", "sender_kind", "category"]},
}

test_no_decision_without_a_class if {
	not decision with input as fixtures.input_with({}) with data.region as fixtures.region
}

test_class_ignores_everything_but_the_class_fields if {
	a := class with input as class_fields(fixtures.input_with({"body": "Card 4111 1111 1111 1111"}))
		with data.region as fixtures.region
	b := class with input as fixtures.input_with({}) with data.region as fixtures.region
	a == b
}

refused(msg, want) if {
	d := decide(msg)
	d.allow == false
	fixtures.codes(d.reasons) == want
	d.limits == []
}

test_base_otp_is_allowed_with_limits if {
	d := decide(fixtures.input_with({}))
	d.allow
	d.reasons == []
	{l.code | some l in d.limits} == {
		"app_rate_exceeded", "otp_device_daily_limit", "otp_resend_too_soon",
		"velocity_country_exceeded", "velocity_prefix_exceeded",
	}
	d.route == {"providers": ["simulator", "backup"]}
	d.obligations == []
}

test_prefix_limit_keeps_only_the_prefix if {
	d := decide(fixtures.input_with({}))
	some l in d.limits
	l.code == "velocity_prefix_exceeded"
	l.key == "velocity:prefix:+6580"
}

test_country_not_served_names_the_region_that_serves_it if {
	d := decide(fixtures.input_with({"country": "DE"}))
	fixtures.codes(d.reasons) == {"country_not_served"}
	d.reasons[0].message == `Messages to DE are served by region "eu", not by region "test"; send them through that region.`
}

test_country_not_served_elsewhere_either if {
	d := decide(fixtures.input_with({"country": "FR"}))
	d.reasons[0].message == "Messages to FR are not served in this region."
	refused(fixtures.input_without(["country"]), {"country_not_served"})
}

test_category_not_allowed if {
	refused(fixtures.input_with({"country": "GB", "category": "alert"}), {"category_not_allowed", "gdpr_no_lawful_basis"})
}

test_sender_rules if {
	refused(fixtures.input_with({"from": "AB"}), {"sender_malformed"})
	refused(fixtures.input_with({"from": "ACME!"}), {"sender_malformed"})
	refused(fixtures.input_without(["from"]), {"sender_malformed"})
	refused(fixtures.input_with({"from": "otp"}), {"sender_generic", "sender_not_registered"})
	refused(fixtures.input_with({"from": "UNKNOWN"}), {"sender_not_registered"})
	refused(fixtures.input_with({"from": "OTHERCO"}), {"sender_not_assigned"})
	refused(fixtures.input_with({"country": "US", "from": "ACMEPAY"}), {"sender_type_not_allowed"})
}

test_unregistered_long_code_allowed_where_optional if {
	decide(fixtures.input_with({"sender_kind": "long_code", "from": "+6590000000"})).allow
}

test_unregistered_alphanumeric_allowed_where_optional if {
	decide(fixtures.input_with({"country": "GB", "from": "SOMEBRAND"})).allow
}

test_short_code_program_categories if {
	decide(fixtures.input_with({"sender_kind": "short_code", "from": "72345"})).allow
	refused(fixtures.input_with({"sender_kind": "short_code", "from": "72345", "category": "transaction", "body": "Paid."}), {"sender_category_not_approved"})
}

us(changes) := fixtures.input_with(object.union(
	{"country": "US", "to": "+12125550100", "sender_kind": "long_code", "from": "+15550000001", "category": "transaction", "body": "Paid $5."},
	changes,
))

test_us_10dlc_campaign if {
	d := decide(us({}))
	d.allow
	d.obligations == [{"kind": "append_footer", "value": "Txt STOP to opt out."}]
	some l in d.limits
	l == {"key": "10dlc:campaign:C1", "rate": 240, "period": "1m", "burst": 0, "code": "us_10dlc_campaign_rate", "message": "Campaign C1 has reached its carrier cap of 240 messages per minute."}
	some b in d.limits
	b.key == "10dlc:brand:B1"
	b.rate == 2000
}

test_us_10dlc_refusals if {
	refused(us({"category": "otp"}), {"us_10dlc_use_case_mismatch"})
	refused(us({"from": "+15550000002"}), {"us_10dlc_not_registered"})
	refused(us({"from": "+15550000009"}), {"sender_not_registered"})
}

test_us_footer_not_added_when_body_mentions_stop if {
	decide(us({"body": "Paid. Reply stop to end."})).obligations == []
}

test_us_toll_free if {
	decide(us({"sender_kind": "toll_free", "from": "+18005550000"})).allow
	refused(us({"sender_kind": "toll_free", "from": "+18005550001"}), {"us_toll_free_unverified"})
}

test_opt_out if {
	refused(fixtures.input_facts({"category": "transaction", "body": "Paid."}, {"opted_out": true}), {"recipient_opted_out"})
	decide(fixtures.input_facts({"category": "transaction", "body": "You are unsubscribed.", "template": {"id": "stop_confirmation", "locale": "en"}}, {"opted_out": true})).allow
}

test_opt_out_exception_is_noted if {
	d := decide(fixtures.input_facts({"category": "alert", "body": "Card used abroad."}, {"opted_out": true}))
	d.allow
	fixtures.codes(d.reasons) == {"opt_out_exception_used"}
}

gb(changes, consents) := fixtures.input_facts(
	object.union({"country": "GB", "to": "+447700900123", "category": "marketing", "body": "New offers."}, changes),
	{"consents": consents, "local_hour": 12, "time_zone": "Europe/London"},
)

test_gdpr if {
	refused(gb({}, {}), {"gdpr_no_lawful_basis"})
	refused(gb({}, {"marketing": {"basis": "consent", "granted_at": 1, "withdrawn": true}}), {"gdpr_consent_withdrawn"})
	refused(gb({}, {"marketing": {"basis": "legitimate_interest", "granted_at": 1, "withdrawn": false}}), {"gdpr_basis_not_accepted"})
	decide(gb({}, {"marketing": {"basis": "consent", "granted_at": 1, "withdrawn": false}})).allow
	decide(gb({"category": "transaction"}, {"transaction": {"basis": "contract", "granted_at": 1, "withdrawn": false}})).allow
	decide(gb({"category": "security"}, {})).allow
}

test_content if {
	refused(fixtures.input_with({"category": "transaction", "body": "Please send your C.V.V now"}), {"content_phrase_refused"})
	refused(fixtures.input_with({"category": "transaction", "body": "Deine GEHEIMZAHL bitte"}), {"content_phrase_refused"})
	refused(fixtures.input_with({"category": "transaction", "body": "Card 4111 1111 1111 1111 charged"}), {"content_card_number"})
	decide(fixtures.input_with({"category": "transaction", "body": "Transfer PL20241208009 done"})).allow
}

test_content_masks if {
	d := decide(fixtures.input_with({"category": "transaction", "body": "Your salary arrived"}))
	d.allow
	{"field": "body", "style": "full"} in d.masks
	e := decide(fixtures.input_with({"category": "transaction", "body": "Sent to GB82 WEST 1234 5698 7654 32"}))
	e.allow
	{"field": "body", "style": "full"} in e.masks
	f := decide(fixtures.input_with({"category": "transaction", "body": "Paid."}))
	f.masks == [{"field": "template.params.code", "style": "full"}, {"field": "to", "style": "phone"}, {"field": "body", "style": "none"}]
}

test_templates if {
	refused(fixtures.input_with({"body": "Code 123456"}), {"template_not_registered"})
	decide(fixtures.input_with({"body": "Code 123456", "template": {"id": "otp_login", "locale": "en"}})).allow
}

test_quiet_hours if {
	refused(fixtures.input_facts({"category": "marketing", "body": "Sale"}, {"local_hour": 22}), {"quiet_hours"})
	refused(fixtures.input_facts({"category": "marketing", "body": "Sale"}, {"local_hour": 7}), {"quiet_hours"})
	decide(fixtures.input_facts({"category": "marketing", "body": "Sale"}, {"local_hour": 8})).allow
	d := decide(fixtures.input_facts({"category": "marketing", "body": "Sale"}, {"local_hour": 22}))
	d.reasons[0].message == "Marketing messages may not reach SG between 21:00 and 08:00 local time."
}

test_quiet_hours_from_country_zone_when_facts_lack_it if {
	# 1767225600 is 2026-01-01 00:00 UTC: 08:00 in Singapore (allowed), 19:00 the day before in New York.
	decide(fixtures.input_facts({"category": "marketing", "body": "Sale"}, {"time_zone": ""})).allow
	d := decide_in_region(fixtures.input_facts({"category": "marketing", "body": "Sale"}, {"time_zone": ""}))
		with data.region as fixtures.region
		with data.region.countries.SG.quiet_hours as {"start": 8, "end": 9}
	fixtures.codes(d.reasons) == {"quiet_hours"}
}

test_quiet_hours_in_any_zone_of_the_number if {
	# The country's zone (08:00 in Singapore at this now) says day; one of the number's zones says 05:00.
	facts := {"time_zone": "", "local_hours": [12, 5]}
	refused(fixtures.input_facts({"category": "marketing", "body": "Sale"}, facts), {"quiet_hours"})
	decide(fixtures.input_facts({"category": "marketing", "body": "Sale"}, {"time_zone": "", "local_hours": [12, 9]})).allow
}

test_quiet_hours_in_every_mobile_zone_of_the_country if {
	# At this now (00:00 UTC) the number's own zone says 10:00, outside quiet hours 09-10; Jayapura
	# (UTC+9), one of the country's mobile zones, says 09:00: a mobile is refused, a landline not.
	msg := fixtures.input_facts({"category": "marketing", "body": "Sale"}, {"time_zone": "Asia/Singapore", "local_hour": 10})
	decide_in_region(msg) with data.region as fixtures.region
	d := decide_in_region(msg) with data.region as fixtures.region
		with data.region.countries.SG.mobile_time_zones as ["Asia/Singapore", "Asia/Jayapura"]
		with data.region.countries.SG.quiet_hours as {"start": 9, "end": 10}
	fixtures.codes(d.reasons) == {"quiet_hours"}
	landline := object.union(msg, {"message": object.union(msg.message, {"number_type": "fixed_line"})})
	e := decide_in_region(landline) with data.region as fixtures.region
		with data.region.countries.SG.mobile_time_zones as ["Asia/Singapore", "Asia/Jayapura"]
		with data.region.countries.SG.quiet_hours as {"start": 9, "end": 10}
	e.allow
}

test_quiet_hours_unknown_time_is_quiet if {
	msg := object.remove(fixtures.input_facts({"category": "marketing", "body": "Sale"}, {"time_zone": ""}), ["now"])
	refused(msg, {"quiet_hours"})
}

test_limits_without_device_or_app if {
	d := decide(object.union(fixtures.input_without(["device_id"]), {"app": ""}))
	fixtures.codes(d.reasons) == {"sender_not_assigned"}
}

minimal_region := {
	"region": "min",
	"countries": {"GB": {"providers": ["simulator"], "alphanumeric": true, "gdpr": true, "sender_registration": {"alphanumeric": "optional"}}},
}

test_defaults_when_region_data_is_minimal if {
	msg := object.union(fixtures.input_without(["body", "category"]), {"message": {"country": "GB", "to": "+447700900123"}})
	d := decide_in_region(msg) with data.region as minimal_region
	fixtures.codes(d.reasons) == {"gdpr_no_lawful_basis"}
	d.masks == [{"field": "to", "style": "phone"}, {"field": "body", "style": "none"}]
	sec := decide_in_region(fixtures.input_with({"country": "GB", "category": "security"})) with data.region as minimal_region
	sec.allow
	{"field": "body", "style": "full"} in sec.masks
	mk := decide_in_region(fixtures.input_with({"country": "GB", "category": "marketing"})) with data.region as minimal_region
	fixtures.codes(mk.reasons) == {"gdpr_no_lawful_basis"}
}

test_missing_sender_kind_needs_registration if {
	refused(object.union(fixtures.input_without(["sender_kind"]), {"message": {"from": "UNKNOWN"}}), {"sender_not_registered"})
}

test_content_actions_follow_data if {
	iban := fixtures.input_with({"category": "transaction", "body": "Pay DE89 3704 0044 0532 0130 00 today"})
	d := decide_in_region(iban) with data.region as fixtures.region with data.region.content.ibans as "refuse"
	fixtures.codes(d.reasons) == {"content_account_number"}
	card := fixtures.input_with({"category": "transaction", "body": "Card 4111-1111-1111-1111"})
	e := decide_in_region(card) with data.region as fixtures.region with data.region.content.card_numbers as "mask"
	e.allow
	{"field": "body", "style": "full"} in e.masks
}

# Region data that gives no action for card numbers or IBANs fails safe: such a body is refused.
test_content_actions_default_to_refuse if {
	card := fixtures.input_with({"category": "transaction", "body": "Card 4111 1111 1111 1111 charged"})
	iban := fixtures.input_with({"category": "transaction", "body": "Pay DE89 3704 0044 0532 0130 00 today"})
	no_content := object.remove(fixtures.region, ["content"])
	d1 := decide_in_region(card) with data.region as no_content
	fixtures.codes(d1.reasons) == {"content_card_number"}
	d2 := decide_in_region(iban) with data.region as no_content
	fixtures.codes(d2.reasons) == {"content_account_number"}
	empty := object.union(fixtures.region, {"content": {"card_numbers": "", "ibans": ""}})
	d3 := decide_in_region(card) with data.region as empty
	fixtures.codes(d3.reasons) == {"content_card_number"}
	d4 := decide_in_region(iban) with data.region as empty
	fixtures.codes(d4.reasons) == {"content_account_number"}
}

test_message_without_body_is_checked_as_empty if {
	d := decide(fixtures.input_without(["body"]))
	fixtures.codes(d.reasons) == {"template_not_registered"}
}

test_body_mask_from_fields if {
	d := decide_in_region(fixtures.input_with({"category": "transaction", "body": "Paid."}))
		with data.region as fixtures.region
		with data.region.masking.fields as {"body": "last4"}
	d.masks == [{"field": "body", "style": "last4"}]
}
