# Whether the recipient may be sent this message at all.
#
# Opt-out: once a recipient opted out of the app (input.facts.opted_out), only the STOP/HELP
# confirmations (data.region.opt_out.confirmation_templates) and the categories listed under
# data.region.opt_out.exceptions (e.g. fraud alerts on the subscriber's own account) still reach
# them; each use of an exception is a note in the decision, so the audit trail records it.
#
# GDPR (countries with gdpr: true - EU/EEA and the UK): a category other than the exempt ones
# (data.region.gdpr.exempt_categories, by default otp and security) needs a recorded lawful basis
# for that purpose (input.facts.consents[category]); a withdrawn one refuses the message, and a
# category may accept only some bases (data.region.gdpr.bases).
package smsproxy.consent

import data.smsproxy.destination

opted_out if input.facts.opted_out == true

is_confirmation if input.message.template.id in data.region.opt_out.confirmation_templates

exception := data.region.opt_out.exceptions[destination.category]

deny contains {
	"code": "recipient_opted_out",
	"message": "The recipient opted out of messages from this sender; only the STOP/HELP confirmation may be sent.",
	"rule": "smsproxy.consent.recipient_opted_out",
} if {
	opted_out
	not is_confirmation
	not exception
}

notes contains {
	"code": "opt_out_exception_used",
	"message": sprintf("Sent although the recipient opted out, as an exception for %q messages: %s", [destination.category, exception]),
	"rule": "smsproxy.consent.opt_out_exception_used",
} if {
	opted_out
	not is_confirmation
	exception
}

default exempt_categories := ["otp", "security"]

exempt_categories := data.region.gdpr.exempt_categories

gdpr_applies if {
	destination.country_data.gdpr == true
	not destination.category in exempt_categories
}

record := input.facts.consents[destination.category]

deny contains {
	"code": "gdpr_no_lawful_basis",
	"message": sprintf("No lawful basis is recorded for sending %q messages to this recipient in %s.", [destination.category, destination.country]),
	"rule": "smsproxy.consent.gdpr_no_lawful_basis",
} if {
	gdpr_applies
	not record
}

deny contains {
	"code": "gdpr_consent_withdrawn",
	"message": sprintf("The recipient withdrew the lawful basis for %q messages.", [destination.category]),
	"rule": "smsproxy.consent.gdpr_consent_withdrawn",
} if {
	gdpr_applies
	record.withdrawn == true
}

deny contains {
	"code": "gdpr_basis_not_accepted",
	"message": sprintf("The recorded basis %q is not accepted for %q messages; %s is needed.", [record.basis, destination.category, concat(" or ", accepted)]),
	"rule": "smsproxy.consent.gdpr_basis_not_accepted",
} if {
	gdpr_applies
	record.withdrawn == false
	accepted := data.region.gdpr.bases[destination.category]
	not record.basis in accepted
}
