# How personal fields are masked in the message record, the audit trail and logs.
# Styles: "phone" keeps the country code and the last digits, "full" hides everything, "last4"
# keeps the last four characters, "none" keeps the value. The fields and styles come from
# data.region.masking (fields: to, device_id, template.params.<name>; body: per category); the body
# is hidden whatever the category when content rules ask for it (a masked phrase list, a card number).
package smsproxy.masks

import data.smsproxy.content
import data.smsproxy.destination

default fields := {"to": "phone"}

fields := data.region.masking.fields

masks := array.concat(
	[{"field": f, "style": s} | some f, s in fields; f != "body"],
	[{"field": "body", "style": body_style}],
)

default category_styles := {"otp": "full", "security": "full"}

category_styles := data.region.masking.body

default body_style := "none"

body_style := "full" if {
	content.mask_body
} else := style if {
	style := category_styles[destination.category]
} else := style if {
	style := fields.body
}
