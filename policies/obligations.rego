# Changes the proxy must make before sending.
#
# Where the country's data has an opt-out footer (the US: "Reply STOP to unsubscribe."), a message
# the recipient can reply to (any sender but an alphanumeric ID) carries it, unless the body
# already tells how to opt out (it mentions STOP).
package smsproxy

obligations contains {"kind": "append_footer", "value": input.class.footer} if {
	input.class.footer != ""
	not mentions_stop
}

# footer is the class's footer (input.class.footer), "" when its messages carry none.
default footer := ""

footer := text if {
	input.message.sender_kind != "alphanumeric"
	text := country_data.opt_out_footer
	is_string(text)
}

mentions_stop if contains(upper(input.message.body), "STOP")
