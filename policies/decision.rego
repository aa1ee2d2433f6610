# The decision the proxy enforces for one outbound message.
#
# Each concern lives in its own package and contributes to the decision:
#   destination  - is the country served here (residency), is the category allowed there
#   sender       - sender ID format and registries (SSIR and friends), app assignment, US 10DLC
#   consent      - opt-outs (and their data-listed exceptions) and the GDPR lawful basis
#   content      - sensitive phrases, card and account numbers, registered templates
#   timing       - quiet hours for marketing in the recipient's local time
#   limits       - which rate limits the proxy must reserve (OTP, velocity, 10DLC caps)
#   routing      - which providers to try
#   masks        - how personal fields are masked in records and logs
#   obligations  - changes the proxy must make before sending (e.g. an opt-out footer)
#
# A message is allowed if and only if no package refuses it. Every rule reads region data
# (data.region) by key; lists that can grow large are matched by built-ins written in Go.
package smsproxy

import data.smsproxy.consent
import data.smsproxy.content
import data.smsproxy.destination
import data.smsproxy.limits
import data.smsproxy.masks
import data.smsproxy.obligations
import data.smsproxy.routing
import data.smsproxy.sender
import data.smsproxy.timing

# decision is the document the proxy reads. Its shape is fixed by proxy/policy/decision.go.
decision := {
	"allow": allow,
	"reasons": reasons,
	"limits": granted_limits,
	"route": routing.route,
	"masks": masks.masks,
	"obligations": [o | some o in obligations.obligations],
}

# allow is true when nothing refused the message.
default allow := false

allow if count(deny) == 0

# reasons lists every refusal in a stable order, then the notes of an allowed message
# (e.g. an opt-out exception that was used, which the audit trail records).
reasons := array.concat([r | some r in deny], [n | some n in consent.notes])

# A refused message reserves nothing.
default granted_limits := []

granted_limits := [l | some l in limits.limits] if allow

# deny gathers the refusals of every package.
deny := (((destination.deny | sender.deny) | consent.deny) | content.deny) | timing.deny
