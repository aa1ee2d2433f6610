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
package smsproxy.limits

import data.smsproxy.destination
import data.smsproxy.sender

is_otp if input.message.category == "otp"

# declare builds one limit from a {rate, period, burst} entry.
declare(key, cfg, code, message) := {
	"key": key,
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": code,
	"message": message,
}

limits contains declare(
	concat("", ["app:", input.app]), cfg, "app_rate_exceeded",
	sprintf("App %q has reached its limit of %d messages per %s.", [input.app, cfg.rate, cfg.period]),
) if {
	cfg := data.region.limits.app
	input.app != ""
}

limits contains declare(
	concat("", ["otp:device:", input.message.device_id]), cfg, "otp_device_daily_limit",
	sprintf("This device has already received %d one-time passwords in the last %s.", [cfg.rate, cfg.period]),
) if {
	is_otp
	cfg := data.region.limits.otp_per_device
	input.message.device_id != ""
}

limits contains declare(
	concat("", ["otp:to:", input.message.to]), cfg, "otp_resend_too_soon",
	sprintf("A one-time password was sent to this number less than %s ago; please wait before asking for another.", [cfg.period]),
) if {
	is_otp
	cfg := data.region.limits.otp_per_number
	input.message.to != ""
}

limits contains declare(
	concat("", ["velocity:country:", destination.country]), cfg, "velocity_country_exceeded",
	sprintf("Too many messages to %s in a short time (more than %d per %s); this looks like SMS pumping.", [destination.country, cfg.rate, cfg.period]),
) if {
	cfg := data.region.limits.velocity_country
	destination.country != ""
}

limits contains declare(
	concat("", ["velocity:prefix:", prefix]), cfg, "velocity_prefix_exceeded",
	sprintf("Too many messages to one number range in a short time (more than %d per %s); this looks like SMS pumping.", [cfg.rate, cfg.period]),
) if {
	cfg := data.region.limits.velocity_prefix
	to := input.message.to
	count(to) > cfg.digits + 1
	prefix := substring(to, 0, cfg.digits + 1)
}

limits contains {
	"key": concat("", ["10dlc:campaign:", sender.registered.campaign]),
	"rate": sender.campaign.per_minute,
	"period": "1m",
	"burst": 0,
	"code": "us_10dlc_campaign_rate",
	"message": sprintf("Campaign %s has reached its carrier cap of %d messages per minute.", [sender.registered.campaign, sender.campaign.per_minute]),
} if {
	sender.is_us_long_code
	sender.campaign
}

limits contains {
	"key": concat("", ["10dlc:brand:", sender.campaign.brand]),
	"rate": sender.brand.daily_cap,
	"period": "24h",
	"burst": 0,
	"code": "us_10dlc_brand_daily_cap",
	"message": sprintf("Brand %s has reached its carrier cap of %d messages a day.", [sender.campaign.brand, sender.brand.daily_cap]),
} if {
	sender.is_us_long_code
	sender.brand
}
