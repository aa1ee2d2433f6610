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
package smsproxy

is_confirmation if input.message.template.id in data.region.opt_out.confirmation_templates

opt_out_exception := data.region.opt_out.exceptions[category]

deny contains {
	"code": "recipient_opted_out",
	"message": "The recipient opted out of messages from this sender; only the STOP/HELP confirmation may be sent.",
	"rule": "smsproxy.consent.recipient_opted_out",
} if {
	input.facts.opted_out == true
	not is_confirmation
	not opt_out_exception
}

notes contains {
	"code": "opt_out_exception_used",
	"message": sprintf("Sent although the recipient opted out, as an exception for %q messages: %s", [category, opt_out_exception]),
	"rule": "smsproxy.consent.opt_out_exception_used",
} if {
	input.facts.opted_out == true
	not is_confirmation
	opt_out_exception
}

default exempt_categories := ["otp", "security"]

exempt_categories := data.region.gdpr.exempt_categories

# gdpr_applies is part of the class (input.class.gdpr): the per-message rules test it against a constant.
default gdpr_applies := false

gdpr_applies if {
	country_data.gdpr == true
	not category in exempt_categories
}

consent_record := input.facts.consents[category]

deny contains {
	"code": "gdpr_no_lawful_basis",
	"message": sprintf("No lawful basis is recorded for sending %q messages to this recipient in %s.", [category, country]),
	"rule": "smsproxy.consent.gdpr_no_lawful_basis",
} if {
	input.class.gdpr == true
	not consent_record
}

deny contains {
	"code": "gdpr_consent_withdrawn",
	"message": sprintf("The recipient withdrew the lawful basis for %q messages.", [category]),
	"rule": "smsproxy.consent.gdpr_consent_withdrawn",
} if {
	input.class.gdpr == true
	consent_record.withdrawn == true
}

deny contains {
	"code": "gdpr_basis_not_accepted",
	"message": sprintf("The recorded basis %q is not accepted for %q messages; %s is needed.", [consent_record.basis, category, concat(" or ", accepted)]),
	"rule": "smsproxy.consent.gdpr_basis_not_accepted",
} if {
	input.class.gdpr == true
	consent_record.withdrawn == false
	accepted := data.region.gdpr.bases[category]
	not consent_record.basis in accepted
}
