# When a message may arrive: marketing is refused in the recipient's local night, the country's
# quiet_hours {start, end} (local hours, start inclusive, end exclusive; start > end wraps past
# midnight). The local time comes from the proxy's facts (time zone of the number); when the proxy
# could not tell it, from the country's time_zone; when neither is known the hour counts as quiet.
# When the number's zones disagree, the facts also list the hour in each (local_hours), and the
# message is in quiet hours if it is in any of them.
# Only marketing is checked, so the rule index skips all of it for other categories.
package smsproxy

local_hour := input.facts.local_hour if {
	input.facts.time_zone != ""
} else := smsproxy.local_time(country_data.time_zone, input.now).hour

quiet := country_data.quiet_hours

in_quiet_hours if quiet_at(local_hour)

# A number whose time zones disagree (an area code across two zones) is in quiet hours when it is
# in any of them.
in_quiet_hours if {
	some hour in input.facts.local_hours
	quiet_at(hour)
}

# A mobile number of a country whose mobile numbers do not tell the zone (mobile_time_zones) is in
# quiet hours when it is in any of the country's zones.
in_quiet_hours if {
	input.message.number_type == "mobile"
	some zone in country_data.mobile_time_zones
	quiet_at(smsproxy.local_time(zone, input.now).hour)
}

quiet_at(hour) if {
	quiet.start <= quiet.end
	hour >= quiet.start
	hour < quiet.end
}

quiet_at(hour) if {
	quiet.start > quiet.end
	hour >= quiet.start
}

quiet_at(hour) if {
	quiet.start > quiet.end
	hour < quiet.end
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
