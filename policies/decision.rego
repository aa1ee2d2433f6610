# The decision the proxy enforces for one outbound message.
#
# Every concern has its own file, all in this one package so that the decision is assembled once
# from a few flat rules:
#   class.rego        - what the message's class alone decides, evaluated once per class (below)
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
# A message is allowed if and only if no rule adds a refusal to deny (or to class_deny, for a
# refusal that depends on the message's class alone). Rules read region data (data.region) by key
# and never loop over it; large lists (phrases, templates) are matched by built-ins written in Go.
# Each refusal starts with its cheapest test, so a rule that does not apply costs one comparison,
# and builds its sentence only when it fires.
#
# Two documents, two costs. Most rules depend only on the message's class: the app, the destination
# country, the sender and the category. Those feed data.smsproxy.class, which the proxy evaluates
# once per class and policy revision and keeps (class.rego). The per-message rules (content,
# consent, quiet hours, per-number limits) feed data.smsproxy.decision, which every message runs and
# which reads the class it was given as input.class. What a message costs is the number of
# per-message rules, rule references, data reads and built-in calls it evaluates (about a
# microsecond each): a test of input against a constant lets OPA's rule index skip a rule without
# evaluating it, and a constant (a limit's sentence) is prepared once by its built-in, where a string
# built with concat or sprintf costs every message.
package smsproxy

# decision is the document the proxy reads. Its shape is fixed by proxy/policy/decision.go.
# A message is allowed when nothing refused it; it then reserves its limits. A refused message
# reserves nothing, and its reasons list every refusal in a stable order (by code). Either way the
# reasons end with the notes of the message (e.g. an opt-out exception that was used, which the
# audit trail records). Without input.class (see class.rego) the decision is undefined, which the
# proxy treats as an error and never as an allow.
decision := {
	"allow": true,
	"reasons": sort(notes),
	"limits": sort(limits),
	"route": {"providers": input.class.providers},
	"masks": masks,
	"obligations": sort(obligations),
} if {
	deny == set()
} else := {
	"allow": false,
	"reasons": array.concat(sort(deny), sort(notes)),
	"limits": [],
	"route": {"providers": input.class.providers},
	"masks": masks,
	"obligations": sort(obligations),
}

# The refusals and limits of the message's class are the message's own.
deny contains refusal if some refusal in input.class.deny

limits contains limit if some limit in input.class.limits

# The class fields, which the proxy always sends ("" for a message without one), and the body.
country := input.message.country

category := input.message.category

from := input.message.from

kind := input.message.sender_kind

body := object.get(input.message, "body", "")
