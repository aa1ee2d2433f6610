# Who a message may appear to come from.
#
# - Alphanumeric sender IDs are not accepted everywhere, must follow the GSM format rules and must
#   not be generic ("OTP", "BANK", …: data.region.generic_sender_ids).
# - Senders are registered per country in data.region.senders[country][sender], each assigned to the
#   apps that may use it. A country's sender_registration says per sender kind whether registration
#   is "required" (the default, the stricter setting: e.g. Singapore's SSIR) or "optional".
# - US: a 10-digit long code sends only for a registered brand and campaign, and only the campaign's
#   use case (data.region.us_10dlc); a toll-free number must be verified; a short code only sends the
#   categories of its approved program (any country: the sender's categories).
#
# Rules that apply to one sender kind or one country test input.message first, so OPA's rule index
# skips them without evaluating them for other messages.
package smsproxy

# registered is the registry entry of the sender for the destination country; undefined when none.
registered := data.region.senders[input.message.country][input.message.from]

registration_required if {
	object.get(country_data, ["sender_registration", kind], "required") == "required"
}

# Refuse alphanumeric senders where the country's data says they are not allowed.
class_deny contains {
	"code": "sender_type_not_allowed",
	"message": sprintf("Alphanumeric sender IDs are not allowed for messages to %s.", [country_label]),
	"rule": "smsproxy.sender.sender_type_not_allowed",
} if {
	input.message.sender_kind == "alphanumeric"
	country_data.alphanumeric == false
}

# Refuse alphanumeric senders that handsets and carriers would reject or mangle.
class_deny contains {
	"code": "sender_malformed",
	"message": "An alphanumeric sender ID must be 3 to 11 characters of letters, digits, spaces or . & _ - and must not start or end with a space.",
	"rule": "smsproxy.sender.sender_malformed",
} if {
	input.message.sender_kind == "alphanumeric"
	not regex.match(well_formed_pattern, from)
}

# well_formed_pattern is the format rule in one pattern, so it costs one check per message:
#   - first and last character: a letter, a digit or one of . & _ -   (no leading or trailing space)
#   - in between: 1 to 9 letters, digits, spaces or . & _ -           (3 to 11 characters in all)
well_formed_pattern := `^[A-Za-z0-9.&_-][A-Za-z0-9 .&_-]{1,9}[A-Za-z0-9.&_-]$`

# Refuse generic alphanumeric sender IDs, which recipients cannot tell apart from scams.
class_deny contains {
	"code": "sender_generic",
	"message": sprintf("The sender ID %q is generic; use the brand's own registered sender ID.", [from]),
	"rule": "smsproxy.sender.sender_generic",
} if {
	input.message.sender_kind == "alphanumeric"
	data.region.generic_sender_ids[upper(input.message.from)]
}

# Refuse unregistered senders where the country requires registration.
class_deny contains {
	"code": "sender_not_registered",
	"message": sprintf("The sender %q is not registered for messages to %s.", [from, country_label]),
	"rule": "smsproxy.sender.sender_not_registered",
} if {
	not registered
	registration_required
	not malformed
	not type_forbidden
}

# type_forbidden and malformed repeat the tests of sender_type_not_allowed and sender_malformed, the
# refusals an unregistered sender gets instead of sender_not_registered. (The refusals test inline
# rather than through these rules: a rule reference costs more than the test.)
type_forbidden if {
	input.message.sender_kind == "alphanumeric"
	country_data.alphanumeric == false
}

malformed if {
	input.message.sender_kind == "alphanumeric"
	not regex.match(well_formed_pattern, from)
}

# An app may use only the senders assigned to it.
class_deny contains {
	"code": "sender_not_assigned",
	"message": sprintf("The sender %q is not assigned to app %q.", [from, input.app]),
	"rule": "smsproxy.sender.sender_not_assigned",
} if {
	apps := registered.apps
	not input.app in apps
}

# A sender with an approved list of categories (e.g. a short code program) sends only those.
class_deny contains {
	"code": "sender_category_not_approved",
	"message": sprintf("The sender %q is not approved for %q messages.", [from, category]),
	"rule": "smsproxy.sender.sender_category_not_approved",
} if {
	approved := registered.categories
	not category in approved
}

# campaign and brand are the 10DLC registry entries of a US long code; undefined when none.
campaign := data.region.us_10dlc.campaigns[registered.campaign]

brand := data.region.us_10dlc.brands[campaign.brand]

# A US long code needs a registered campaign of a registered brand.
class_deny contains {
	"code": "us_10dlc_not_registered",
	"message": sprintf("The long code %q has no registered 10DLC brand and campaign.", [from]),
	"rule": "smsproxy.sender.us_10dlc_not_registered",
} if {
	input.message.country == "US"
	input.message.sender_kind == "long_code"
	registered
	not brand
}

# A US long code sends only its campaign's use case.
class_deny contains {
	"code": "us_10dlc_use_case_mismatch",
	"message": sprintf("Campaign %s is registered for the use case %s, which does not cover %q messages.", [registered.campaign, campaign.use_case, category]),
	"rule": "smsproxy.sender.us_10dlc_use_case_mismatch",
} if {
	input.message.country == "US"
	input.message.sender_kind == "long_code"
	brand
	not category in object.get(data.region.us_10dlc.use_cases, campaign.use_case, [])
}

# A US toll-free number must have passed toll-free verification.
class_deny contains {
	"code": "us_toll_free_unverified",
	"message": sprintf("The toll-free number %q has not passed toll-free verification.", [from]),
	"rule": "smsproxy.sender.us_toll_free_unverified",
} if {
	input.message.country == "US"
	input.message.sender_kind == "toll_free"
	registered
	not registered.verified
}
