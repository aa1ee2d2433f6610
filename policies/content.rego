# What a message may say.
#
# - Phrase lists (data.region.content.lists): each has an action, "refuse" or "mask". Matching
#   ignores case, accents, punctuation and spacing.
# - A body that holds a payment card number (Luhn-checked) or an IBAN (check sum) is refused or
#   masked per data.region.content.card_numbers / ibans (which the class carries, so that the rules
#   test input.class against a constant and the rule index skips the ones that do not apply).
# - Templates: a category the country lists under templates_required must use a registered template
#   of that category, by id or by a body that renders one (smsproxy.template_match).
#
# The Go built-in smsproxy.content_scan reads the body once for all of it, however long the lists:
# {"phrases": {list name: [phrases found]} (only lists with a hit), "card_number": bool, "iban": bool}.
package smsproxy

default content_lists := {}

content_lists := data.region.content.lists

scan := smsproxy.content_scan(input.message.body, content_lists)

deny contains {
	"code": "content_phrase_refused",
	"message": sprintf("The message contains %s, which the %q list does not allow: %s", [concat(", ", [sprintf("%q", [p]) | some p in found]), name, content_lists[name].description]),
	"rule": "smsproxy.content.content_phrase_refused",
} if {
	some name, found in scan.phrases
	content_lists[name].action == "refuse"
}

deny contains {
	"code": "content_card_number",
	"message": "The message appears to contain a full payment card number; send at most its last four digits.",
	"rule": "smsproxy.content.content_card_number",
} if {
	input.class.card_numbers == "refuse"
	scan.card_number
}

deny contains {
	"code": "content_account_number",
	"message": "The message appears to contain a full bank account number (IBAN); send at most its last four characters.",
	"rule": "smsproxy.content.content_account_number",
} if {
	input.class.ibans == "refuse"
	scan.iban
}

# mask_body is true when the body must be hidden in records and logs.
mask_body if {
	some name, _ in scan.phrases
	content_lists[name].action == "mask"
}

mask_body if {
	input.class.card_numbers == "mask"
	scan.card_number
}

mask_body if {
	input.class.ibans == "mask"
	scan.iban
}

template_ok if {
	data.region.templates[input.message.template.id].category == input.message.category
} else if {
	smsproxy.template_match(body, input.message.category, data.region.templates) != ""
}

deny contains {
	"code": "template_not_registered",
	"message": sprintf("Messages of category %q to %s must use a registered template, and this one matches none.", [category, country]),
	"rule": "smsproxy.content.template_not_registered",
} if {
	input.class.templates_required == true
	not template_ok
}

# templates_required is part of the class (input.class.templates_required).
default templates_required := false

templates_required if input.message.category in country_data.templates_required
