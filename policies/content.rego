# What a message may say.
#
# - Phrase lists (data.region.content.lists): each has an action, "refuse" or "mask". Matching
#   ignores case, accents, punctuation and spacing and is done by the Go built-in
#   smsproxy.phrases_match in one pass however long the list is.
# - A body that holds a payment card number (Luhn-checked) or an IBAN (check sum) is refused or
#   masked per data.region.content.card_numbers / ibans.
# - Templates: a category the country lists under templates_required must use a registered template
#   of that category, by id or by a body that renders one (smsproxy.template_match).
package smsproxy.content

import data.smsproxy.destination

default body := ""

body := input.message.body if is_string(input.message.body)

default lists := {}

lists := data.region.content.lists

# hits maps a list name to the phrases of it found in the body.
hits[name] := found if {
	some name, list in lists
	found := smsproxy.phrases_match(body, list.phrases)
	count(found) > 0
}

deny contains {
	"code": "content_phrase_refused",
	"message": sprintf("The message contains %s, which the %q list does not allow: %s", [concat(", ", [sprintf("%q", [p]) | some p in found]), name, lists[name].description]),
	"rule": "smsproxy.content.content_phrase_refused",
} if {
	some name, found in hits
	lists[name].action == "refuse"
}

has_card if smsproxy.has_card_number(body)

has_iban if smsproxy.has_iban(body)

deny contains {
	"code": "content_card_number",
	"message": "The message appears to contain a full payment card number; send at most its last four digits.",
	"rule": "smsproxy.content.content_card_number",
} if {
	data.region.content.card_numbers == "refuse"
	has_card
}

deny contains {
	"code": "content_account_number",
	"message": "The message appears to contain a full bank account number (IBAN); send at most its last four characters.",
	"rule": "smsproxy.content.content_account_number",
} if {
	data.region.content.ibans == "refuse"
	has_iban
}

# mask_body is true when the body must be hidden in records and logs.
mask_body if {
	some name, _ in hits
	lists[name].action == "mask"
}

mask_body if {
	data.region.content.card_numbers == "mask"
	has_card
}

mask_body if {
	data.region.content.ibans == "mask"
	has_iban
}

template_required if destination.category in destination.country_data.templates_required

template_ok if data.region.templates[input.message.template.id].category == destination.category

template_ok if smsproxy.template_match(body, destination.category, data.region.templates) != ""

deny contains {
	"code": "template_not_registered",
	"message": sprintf("Messages of category %q to %s must use a registered template, and this one matches none.", [destination.category, destination.country]),
	"rule": "smsproxy.content.template_not_registered",
} if {
	template_required
	not template_ok
}
