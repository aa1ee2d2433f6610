# A small bundle for the CLI tests: refuses an opted-out recipient and marketing without consent,
# and notes the recipient's local hour.
package smsproxy

reasons contains r if {
	input.facts.opted_out
	r := {"code": "recipient_opted_out", "message": "The recipient opted out.", "rule": "smsproxy.recipient_opted_out"}
}

reasons contains r if {
	input.message.category == "marketing"
	not input.facts.consents.marketing
	r := {"code": "consent_missing", "message": "No consent recorded for marketing.", "rule": "smsproxy.consent_missing"}
}

decision := {
	"allow": count(reasons) == 0,
	"reasons": [r | some r in reasons],
	"limits": [],
	"route": {"providers": []},
	"masks": [],
	"obligations": [],
} if {
	trace(sprintf("local hour %d in %s", [input.facts.local_hour, input.facts.time_zone]))
}
