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
# Limits are declared for every allowed message, so their sentences are joined with concat rather
# than sprintf (app names are lower-case letters, digits, - and _, so quoting them needs no escapes).
package smsproxy

limits contains {
	"key": concat("", ["app:", input.app]),
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": "app_rate_exceeded",
	"message": concat("", ["App \"", input.app, "\" has reached its limit of ", format_int(cfg.rate, 10), " messages per ", cfg.period, "."]),
} if {
	input.app != ""
	cfg := data.region.limits.app
}

limits contains {
	"key": concat("", ["otp:device:", input.message.device_id]),
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": "otp_device_daily_limit",
	"message": concat("", ["This device has already received ", format_int(cfg.rate, 10), " one-time passwords in the last ", cfg.period, "."]),
} if {
	input.message.category == "otp"
	input.message.device_id != ""
	cfg := data.region.limits.otp_per_device
}

limits contains {
	"key": concat("", ["otp:to:", input.message.to]),
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": "otp_resend_too_soon",
	"message": concat("", ["A one-time password was sent to this number less than ", cfg.period, " ago; please wait before asking for another."]),
} if {
	input.message.category == "otp"
	input.message.to != ""
	cfg := data.region.limits.otp_per_number
}

limits contains {
	"key": concat("", ["velocity:country:", country]),
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": "velocity_country_exceeded",
	"message": concat("", ["Too many messages to ", country, " in a short time (more than ", format_int(cfg.rate, 10), " per ", cfg.period, "); this looks like SMS pumping."]),
} if {
	country != ""
	cfg := data.region.limits.velocity_country
}

limits contains {
	"key": concat("", ["velocity:prefix:", substring(input.message.to, 0, cfg.digits + 1)]),
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": "velocity_prefix_exceeded",
	"message": concat("", ["Too many messages to one number range in a short time (more than ", format_int(cfg.rate, 10), " per ", cfg.period, "); this looks like SMS pumping."]),
} if {
	cfg := data.region.limits.velocity_prefix
	count(input.message.to) > cfg.digits + 1
}

limits contains {
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

limits contains {
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
