# Rate limits the proxy must reserve before accepting a message. The numbers come from the
# region's data (data.region.limits and the 10DLC registry); the proxy counts and enforces, the
# policy only declares.
#
#   app               every app's sending rate
#   otp_per_device    verification codes per device (e.g. 3 a day)
#   otp_per_number    verification codes per number (e.g. one per 60 s)
#   velocity_country  a burst to one destination country (SMS pumping guard)
#   velocity_prefix   a burst to one number prefix of `digits` digits (SMS pumping guard)
#   10DLC             each US campaign's per-minute cap and each brand's daily cap
#
# The limits that depend on the message's class alone (the app, the country, 10DLC) are class_limits,
# reserved by every message of the class; the rest depend on the message (its number or device).
#
# smsproxy.limit_for(value, data.region.limits, limit) adds the rate, period and burst (0 when absent),
# and "window": true when the region marks the limit a window cap, of the region's limit named by "limit" to the rule's code, counter key and sentence, writing the
# message's value where they say {value} and the region's numbers where the sentence says {rate} and
# {period}. A per-message limit reads the region's limits from its class (input.class.region_limits).
# Limits are declared for every allowed message, so the limit is a constant the built-in
# prepares once rather than a string each message builds with concat or sprintf (app names are
# lower-case letters, digits, - and _, so quoting them needs no escapes).
package smsproxy

class_limits contains smsproxy.limit_for(app, data.region.limits, {
	"limit": "app",
	"code": "app_rate_exceeded",
	"key": "app:{value}",
	"message": "App \"{value}\" has reached its limit of {rate} messages per {period}.",
}) if {
	app := input.app
	app != ""
}

limits contains smsproxy.limit_for(device, input.class.region_limits, {
	"limit": "otp_per_device",
	"code": "otp_device_daily_limit",
	"key": "otp:device:{value}",
	"message": "This device has already received {rate} one-time passwords in the last {period}.",
}) if {
	input.message.category == "otp"
	device := input.message.device_id
	device != ""
}

limits contains smsproxy.limit_for(to, input.class.region_limits, {
	"limit": "otp_per_number",
	"code": "otp_resend_too_soon",
	"key": "otp:to:{value}",
	"message": "A one-time password was sent to this number less than {period} ago; please wait before asking for another.",
}) if {
	input.message.category == "otp"
	to := input.message.to
	to != ""
}

class_limits contains smsproxy.limit_for(destination, data.region.limits, {
	"limit": "velocity_country",
	"code": "velocity_country_exceeded",
	"key": "velocity:country:{value}",
	"message": "Too many messages to {value} in a short time (more than {rate} per {period}); this looks like SMS pumping.",
}) if {
	destination := input.message.country
	destination != ""
}

# The prefix is the "+" and the first `digits` digits of the number.
limits contains smsproxy.limit_for(substring(to, 0, prefix), input.class.region_limits, {
	"limit": "velocity_prefix",
	"code": "velocity_prefix_exceeded",
	"key": "velocity:prefix:{value}",
	"message": "Too many messages to one number range in a short time (more than {rate} per {period}); this looks like SMS pumping.",
}) if {
	prefix := input.class.prefix_len
	prefix > 0
	to := input.message.to
	count(to) > prefix
}

# prefix_len is the length of the prefix the velocity_prefix limit counts ("+" and its digits), 0
# when the region has no such limit; part of the class (input.class.prefix_len).
default prefix_len := 0

prefix_len := data.region.limits.velocity_prefix.digits + 1

class_limits contains {
	"key": concat("", ["10dlc:campaign:", registered.campaign]),
	"rate": campaign.per_minute,
	"period": "1m",
	"burst": 0,
	"code": "us_10dlc_campaign_rate",
	"message": concat("", ["Campaign ", registered.campaign, " has reached its carrier cap of ", format_int(campaign.per_minute, 10), " messages per minute."]),
} if {
	input.message.country == "US"
	input.message.sender_kind == "long_code"
	campaign
}

class_limits contains {
	"key": concat("", ["10dlc:brand:", campaign.brand]),
	"rate": brand.daily_cap,
	"period": "24h",
	"burst": 0,
	"code": "us_10dlc_brand_daily_cap",
	"message": concat("", ["Brand ", campaign.brand, " has reached its carrier cap of ", format_int(brand.daily_cap, 10), " messages a day."]),
} if {
	input.message.country == "US"
	input.message.sender_kind == "long_code"
	brand
}
