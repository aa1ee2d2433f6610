package store

import (
	"strings"
	"time"
)

// Audit event kinds written for opt-out and consent changes. Their data holds the number masked
// (sms.MaskPhone), never in full.
const (
	AuditOptOutAdded      = "optout.added"
	AuditOptOutRemoved    = "optout.removed"
	AuditConsentRecorded  = "consent.recorded"
	AuditConsentWithdrawn = "consent.withdrawn"
)

// ScopeAll is the opt-out scope that covers every app of the region.
const ScopeAll = "*"

// Opt-out sources: where the proxy learnt of an opt-out.
const (
	SourceAPI               = "api"
	SourceImport            = "import"
	SourceReply             = "reply"
	SourceProviderMigration = "provider-migration"
)

// Lawful bases a consent record may name (GDPR art. 6).
const (
	BasisConsent            = "consent"
	BasisContract           = "contract"
	BasisLegalObligation    = "legal_obligation"
	BasisLegitimateInterest = "legitimate_interest"
)

// ValidOptOutSource reports whether s is one of the opt-out sources.
func ValidOptOutSource(s string) bool {
	switch s {
	case SourceAPI, SourceImport, SourceReply, SourceProviderMigration:
		return true
	}
	return false
}

// ValidBasis reports whether s is one of the lawful bases.
func ValidBasis(s string) bool {
	switch s {
	case BasisConsent, BasisContract, BasisLegalObligation, BasisLegitimateInterest:
		return true
	}
	return false
}

// OptOut is one recipient's opt-out of one app (Scope = the app's name) or of every app of the
// region (Scope = ScopeAll). While it exists nothing but a STOP/HELP confirmation may go to Number
// from the apps it covers.
type OptOut struct {
	// Seq is set by the store; ListOptOuts pages by it.
	Seq int64
	// Number is the recipient in E.164, already validated by the caller.
	Number string
	// Scope is an app name or ScopeAll.
	Scope string
	// App is the app that recorded the opt-out; only it lists or removes it.
	App string
	// Source is one of the Source constants.
	Source string
	// CreatedAt is when the opt-out was recorded; zero means now.
	CreatedAt time.Time
}

// ImportResult counts what ImportOptOuts did.
type ImportResult struct {
	// Imported is the number of opt-outs added.
	Imported int
	// Duplicates is the number of rows already present (in the store or earlier in the same import).
	Duplicates int
}

// Consent is one consent record: the lawful basis an app holds for sending a category to a number.
// Records are appended; the latest per (App, Number, Category) is the one in force.
type Consent struct {
	// Seq is set by the store.
	Seq    int64
	App    string
	Number string
	// Category is an sms.Category, e.g. "marketing".
	Category string
	// Basis is one of the Basis constants.
	Basis  string
	Source string
	// GrantedAt is when the basis was given; zero means now.
	GrantedAt time.Time
	// WithdrawnAt is when the recipient withdrew it; zero while it is in force.
	WithdrawnAt time.Time
}

// Withdrawn reports whether the record was withdrawn.
func (c Consent) Withdrawn() bool { return !c.WithdrawnAt.IsZero() }

// RecipientFacts is what the store knows about one number for a decision, across every app.
type RecipientFacts struct {
	// OptOutScopes lists the scopes the number opted out of: app names and possibly ScopeAll.
	OptOutScopes []string
	// Consents holds the record in force (the latest, withdrawn or not) per app and category.
	Consents []Consent
}

// OptedOut reports whether the facts say the number opted out of app.
func (f RecipientFacts) OptedOut(app string) bool {
	for _, s := range f.OptOutScopes {
		if s == ScopeAll || s == app {
			return true
		}
	}
	return false
}

func checkOptOut(o OptOut) error {
	switch {
	case o.Number == "" || len(o.Number) > 32 || !strings.HasPrefix(o.Number, "+"):
		return invalid("an opt-out needs a number in E.164")
	case o.App == "":
		return invalid("an opt-out needs the app that records it")
	case o.Scope == "" || len(o.Scope) > 64:
		return invalid("an opt-out needs a scope: an app name or " + ScopeAll)
	case !ValidOptOutSource(o.Source):
		return invalid("an opt-out source must be api, import, reply or provider-migration")
	}
	return nil
}

func checkConsent(c Consent) error {
	switch {
	case c.Number == "" || len(c.Number) > 32 || !strings.HasPrefix(c.Number, "+"):
		return invalid("a consent record needs a number in E.164")
	case c.App == "":
		return invalid("a consent record needs an app")
	case c.Category == "" || len(c.Category) > 32:
		return invalid("a consent record needs a category")
	case !ValidBasis(c.Basis):
		return invalid("a consent basis must be consent, contract, legal_obligation or legitimate_interest")
	case len(c.Source) > 64:
		return invalid("a consent source is at most 64 characters")
	}
	return nil
}
