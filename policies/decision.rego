# The decision the proxy enforces for one outbound message.
#
# Each concern lives in its own package and contributes to the decision:
#   destination  - is the country served, is the category allowed there
#   sender       - may this sender ID be used, is it well formed
#   limits       - which rate limits the proxy must reserve
#   routing      - which providers to try
#   masks        - how personal fields are masked in records and logs
#   obligations  - changes the proxy must make before sending (e.g. an opt-out footer)
#
# A message is allowed if and only if no package refuses it.
package smsproxy

import data.smsproxy.destination
import data.smsproxy.limits
import data.smsproxy.masks
import data.smsproxy.obligations
import data.smsproxy.routing
import data.smsproxy.sender

# decision is the document the proxy reads. Its shape is fixed by proxy/policy/decision.go.
decision := {
	"allow": allow,
	"reasons": reasons,
	"limits": [l | allow; some l in limits.limits], # a refused message reserves nothing
	"route": routing.route,
	"masks": masks.masks,
	"obligations": [o | some o in obligations.obligations],
}

# allow is true when nothing refused the message.
default allow := false

allow if count(deny) == 0

# reasons lists every refusal, in a stable order.
reasons := [r | some r in deny]

# deny gathers the refusals of every package.
deny := destination.deny | sender.deny
