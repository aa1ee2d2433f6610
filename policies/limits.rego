# Rate limits the proxy must reserve before accepting a message. The numbers come from the
# region's data (data.region.limits); the proxy counts and enforces, the policy only declares.
package smsproxy.limits

is_otp if input.message.category == "otp"

# Every app has a sending rate.
limits contains {
	"key": concat("", ["app:", input.app]),
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": "app_rate_exceeded",
	"message": sprintf("App %q has reached its limit of %d messages per %s.", [input.app, cfg.rate, cfg.period]),
} if {
	cfg := data.region.limits.app
	input.app != ""
}

# One device may receive only a few one-time passwords a day.
limits contains {
	"key": concat("", ["otp:device:", input.message.device_id]),
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": "otp_device_daily_limit",
	"message": sprintf("This device has already received %d one-time passwords in the last %s.", [cfg.rate, cfg.period]),
} if {
	is_otp
	cfg := data.region.limits.otp_per_device
	input.message.device_id != ""
}

# A number may be sent a new one-time password only after an interval.
limits contains {
	"key": concat("", ["otp:to:", input.message.to]),
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": "otp_resend_too_soon",
	"message": sprintf("A one-time password was sent to this number less than %s ago; please wait before asking for another.", [cfg.period]),
} if {
	is_otp
	cfg := data.region.limits.otp_per_number
	input.message.to != ""
}
