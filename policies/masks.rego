# How personal fields are masked in the message record, the audit trail and logs.
# The phone number keeps only its country code and last digits; the body of a
# one-time password or security message is hidden entirely.
package smsproxy.masks

masks := [
	{"field": "to", "style": "phone"},
	{"field": "body", "style": body_style},
]

# body_styles names the categories whose body is hidden; any other category keeps it.
body_styles := {"otp": "full", "security": "full"}

default body_style := "none"

body_style := body_styles[input.message.category]
