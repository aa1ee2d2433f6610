# Who a message may appear to come from. Alphanumeric sender IDs (e.g. "ACMEPAY") are
# not accepted everywhere and must follow the GSM format rules.
package smsproxy.sender

import data.smsproxy.destination

# alphanumeric is true when the app asked for an alphanumeric sender ID.
alphanumeric if input.message.sender_kind == "alphanumeric"

# Refuse alphanumeric senders where the country's data says they are not allowed.
deny contains {
	"code": "sender_type_not_allowed",
	"message": sprintf("Alphanumeric sender IDs are not allowed for messages to %s.", [destination.country_label]),
	"rule": "smsproxy.sender.sender_type_not_allowed",
} if {
	alphanumeric
	destination.country_data.alphanumeric == false
}

# Refuse alphanumeric senders that handsets and carriers would reject or mangle.
deny contains {
	"code": "sender_malformed",
	"message": "An alphanumeric sender ID must be 3 to 11 characters of letters, digits, spaces or . & _ - and must not start or end with a space.",
	"rule": "smsproxy.sender.sender_malformed",
} if {
	alphanumeric
	malformed
}

# well_formed is the format rule in one pattern, so it costs one check per message:
#   - first and last character: a letter, a digit or one of . & _ -   (no leading or trailing space)
#   - in between: 1 to 9 letters, digits, spaces or . & _ -           (3 to 11 characters in all)
well_formed_pattern := `^[A-Za-z0-9.&_-][A-Za-z0-9 .&_-]{1,9}[A-Za-z0-9.&_-]$`

default from := ""

from := input.message.from

# malformed holds when the sender ID is missing or does not match the pattern.
malformed if not regex.match(well_formed_pattern, from)
