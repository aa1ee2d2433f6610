# The decision the proxy enforces for one outbound message.
#
# Every concern has its own file, all in this one package so that the decision is assembled once
# from a few flat rules:
#   destination.rego  - is the country served here (residency), is the category allowed there
#   sender.rego       - sender ID format and registries (SSIR and friends), app assignment, US 10DLC
#   consent.rego      - opt-outs (and their data-listed exceptions) and the GDPR lawful basis
#   content.rego      - sensitive phrases, card and account numbers, registered templates
#   timing.rego       - quiet hours for marketing in the recipient's local time
#   limits.rego       - which rate limits the proxy must reserve (OTP, velocity, 10DLC caps)
#   routing.rego      - which providers to try
#   masks.rego        - how personal fields are masked in records and logs
#   obligations.rego  - changes the proxy must make before sending (e.g. an opt-out footer)
#
# A message is allowed if and only if no rule adds a refusal to deny. Rules read region data
# (data.region) by key and never loop over it; large lists (phrases, templates) are matched by
# built-ins written in Go. Each refusal starts with its cheapest test, so a rule that does not
# apply costs one comparison, and builds its sentence only when it fires.
#
# Every message runs this policy, and what it costs is the number of rules, rule references, data
# reads and built-in calls it evaluates (about a microsecond each): a test of input.message against
# a constant lets OPA's rule index skip the rule without evaluating it; input.message.x is cheaper
# than a helper rule where a missing field makes no difference; a constant (a limit's sentence) is
# prepared once by its built-in, where a string built with concat or sprintf costs every message.
package smsproxy

# decision is the document the proxy reads. Its shape is fixed by proxy/policy/decision.go.
# A message is allowed when nothing refused it; it then reserves its limits. A refused message
# reserves nothing, and its reasons list every refusal in a stable order (by code). Either way the
# reasons end with the notes of the message (e.g. an opt-out exception that was used, which the
# audit trail records).
decision := {
	"allow": true,
	"reasons": sort(notes),
	"limits": sort(limits),
	"route": {"providers": providers},
	"masks": masks,
	"obligations": sort(obligations),
} if {
	deny == set()
} else := {
	"allow": false,
	"reasons": array.concat(sort(deny), sort(notes)),
	"limits": [],
	"route": {"providers": providers},
	"masks": masks,
	"obligations": sort(obligations),
}

# The message fields every concern reads, with "" for a missing one.
country := object.get(input.message, "country", "")

category := object.get(input.message, "category", "")

from := object.get(input.message, "from", "")

kind := object.get(input.message, "sender_kind", "")

body := object.get(input.message, "body", "")
