# The message class: what the decision makes of a message's app, destination country, sender and
# category alone, whatever its recipient, body or time.
#
# The proxy evaluates data.smsproxy.class with an input that holds only those fields
#   {"app": ..., "message": {"country": ..., "from": ..., "sender_kind": ..., "category": ...}}
# once per class and policy revision, keeps the result, and gives it to every message of the class
# as input.class. The proxy refuses a bundle in which a rule that class depends on reads any other
# part of input or calls a built-in whose answer can change (time, randomness, HTTP): the kept class
# must be the one a fresh evaluation would give.
#
# Put a rule here (through class_deny, class_limits or a field below) when it tests the class only:
# it then costs nothing per message. A rule that reads the recipient, the body, the facts or the time
# belongs to the decision (decision.rego).
package smsproxy

class := {
	"deny": sort(class_deny),
	"limits": sort(class_limits),
	"providers": providers,
	"masks": smsproxy.masks(mask_fields, class_body_style),
	"masks_full": smsproxy.masks(mask_fields, "full"),
	"footer": footer,
	"gdpr": gdpr_applies,
	"templates_required": templates_required,
	"prefix_len": prefix_len,
	"region_limits": object.get(data.region, "limits", {}),
	"card_numbers": content_action("card_numbers"),
	"ibans": content_action("ibans"),
}

# content_action is what a body holding a card number or an IBAN gets: "mask" only when the region data
# says so, "refuse" otherwise. The default fails safe: region data that gives no action (the key or the
# whole content section missing, or empty) refuses such a body rather than letting it through unmasked.
content_action(kind) := "mask" if {
	object.get(data.region, ["content", kind], "") == "mask"
} else := "refuse"
