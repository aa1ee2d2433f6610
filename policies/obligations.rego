# Changes the proxy must make before sending.
#
# US carriers require messages from long codes and toll-free numbers to tell the recipient
# how to opt out, so an opt-out footer is appended unless the body already mentions STOP.
package smsproxy.obligations

default us_footer := "Reply STOP to unsubscribe."

us_footer := f if {
	f := data.region.countries.US.opt_out_footer
	is_string(f)
	f != ""
}

footer_sender_kinds := {"long_code", "toll_free"}

obligations contains {"kind": "append_footer", "value": us_footer} if {
	input.message.country == "US"
	input.message.sender_kind in footer_sender_kinds
	not mentions_stop
}

mentions_stop if contains(upper(input.message.body), "STOP")
