# How personal fields are masked in the message record, the audit trail and logs.
# Styles: "phone" keeps the country code and the last digits, "full" hides everything, "last4"
# keeps the last four characters, "none" keeps the value. The fields and styles come from
# data.region.masking (fields: to, device_id, template.params.<name>; body: per category); the body
# is hidden whatever the category when content rules ask for it (a masked phrase list, a card number).
package smsproxy

default mask_fields := {"to": "phone"}

mask_fields := data.region.masking.fields

# masks lists the fields in key order, then the body. smsproxy.masks turns the region's fields
# object and the body's style into that list; the class holds both lists its messages can need
# (input.class.masks with the category's body style, input.class.masks_full with the body hidden),
# so a message only picks one.
masks := input.class.masks_full if {
	mask_body
} else := input.class.masks

default category_styles := {"otp": "full", "security": "full"}

category_styles := data.region.masking.body

# class_body_style is how the body of the class's messages is masked unless content rules ask for
# it to be hidden.
default class_body_style := "none"

class_body_style := style if {
	style := category_styles[input.message.category]
} else := style if {
	style := mask_fields.body
}
