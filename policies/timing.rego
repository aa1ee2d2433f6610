# When a message may arrive: marketing is refused in the recipient's local night, the country's
# quiet_hours {start, end} (local hours, start inclusive, end exclusive; start > end wraps past
# midnight). The local time comes from the proxy's facts (time zone of the number); when the proxy
# could not tell it, from the country's time_zone; when neither is known the hour counts as quiet.
# Only marketing is checked, so the rule index skips all of it for other categories.
package smsproxy

local_hour := input.facts.local_hour if {
	input.facts.time_zone != ""
} else := smsproxy.local_time(country_data.time_zone, input.now).hour

quiet := country_data.quiet_hours

in_quiet_hours if {
	quiet.start <= quiet.end
	local_hour >= quiet.start
	local_hour < quiet.end
}

in_quiet_hours if {
	quiet.start > quiet.end
	local_hour >= quiet.start
}

in_quiet_hours if {
	quiet.start > quiet.end
	local_hour < quiet.end
}

in_quiet_hours if {
	quiet
	not local_hour
}

deny contains {
	"code": "quiet_hours",
	"message": sprintf("Marketing messages may not reach %s between %02d:00 and %02d:00 local time.", [country, quiet.start, quiet.end]),
	"rule": "smsproxy.timing.quiet_hours",
} if {
	input.message.category == "marketing"
	in_quiet_hours
}
