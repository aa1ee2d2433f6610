package front

import (
	"context"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// consents routes /v1/consents and below.
func (f *Front) consents(rc *fasthttp.RequestCtx, path []byte) {
	rest := string(path[len("/v1/consents"):])
	switch {
	case rest == "" || rest == "/":
		if !rc.IsPost() {
			f.methodNotAllowed(rc, "POST")
			return
		}
		f.postConsent(rc)
	case rest == "/withdraw":
		if !rc.IsPost() {
			f.methodNotAllowed(rc, "POST")
			return
		}
		f.withdrawConsent(rc)
	case strings.HasPrefix(rest, "/"):
		if !rc.IsGet() {
			f.methodNotAllowed(rc, "GET")
			return
		}
		f.getConsents(rc, rest[1:])
	default:
		writeError(rc, fasthttp.StatusNotFound, "not_found", "No such endpoint.", "")
	}
}

// consentRequest is the JSON body of POST /v1/consents and POST /v1/consents/withdraw.
type consentRequest struct {
	Number   string `json:"number"`
	Category string `json:"category"`
	Basis    string `json:"basis"`
	Source   string `json:"source"`
}

// consentJSON is a consent record as the API shows it to the app that holds it.
type consentJSON struct {
	Number      string     `json:"number"`
	Category    string     `json:"category"`
	Basis       string     `json:"basis"`
	Source      string     `json:"source"`
	GrantedAt   time.Time  `json:"granted_at"`
	WithdrawnAt *time.Time `json:"withdrawn_at"`
}

func toConsentJSON(c store.Consent) consentJSON {
	out := consentJSON{Number: c.Number, Category: c.Category, Basis: c.Basis, Source: c.Source, GrantedAt: c.GrantedAt.UTC()}
	if c.Withdrawn() {
		w := c.WithdrawnAt.UTC()
		out.WithdrawnAt = &w
	}
	return out
}

// consentSubject validates the number and category of a consent request, answering 400 itself.
func consentSubject(rc *fasthttp.RequestCtx, req consentRequest) (number, category string, ok bool) {
	ph, err := sms.ParsePhone(strings.TrimSpace(req.Number))
	if err != nil {
		writeError(rc, fasthttp.StatusBadRequest, sms.CodeInvalidPhone, "The number is not a valid E.164 phone number.", "")
		return "", "", false
	}
	cat, err := sms.ParseCategory(req.Category)
	if err != nil {
		writeError(rc, fasthttp.StatusBadRequest, sms.CodeInvalidCategory, "The category must be one of otp, transaction, alert, security, marketing.", "")
		return "", "", false
	}
	return ph.E164, string(cat), true
}

func (f *Front) postConsent(rc *fasthttp.RequestCtx) {
	reg, app, ok := f.recipients(rc)
	if !ok {
		return
	}
	var req consentRequest
	if !decodeJSONBody(rc, &req) {
		return
	}
	number, category, ok := consentSubject(rc, req)
	if !ok {
		return
	}
	if !store.ValidBasis(req.Basis) {
		writeError(rc, fasthttp.StatusBadRequest, "invalid_basis",
			"The basis must be consent, contract, legal_obligation or legitimate_interest.", "")
		return
	}
	if len(req.Source) > 64 {
		writeError(rc, fasthttp.StatusBadRequest, "invalid_source", "The source is at most 64 characters.", "")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	c, err := reg.RecordConsent(ctx, store.Consent{App: app, Number: number, Category: category, Basis: req.Basis, Source: req.Source})
	if err != nil {
		f.writeErr(rc, err)
		return
	}
	writeJSON(rc, fasthttp.StatusCreated, toConsentJSON(c))
}

func (f *Front) withdrawConsent(rc *fasthttp.RequestCtx) {
	reg, app, ok := f.recipients(rc)
	if !ok {
		return
	}
	var req consentRequest
	if !decodeJSONBody(rc, &req) {
		return
	}
	if req.Basis != "" || req.Source != "" {
		writeError(rc, fasthttp.StatusBadRequest, "invalid_json", "A withdrawal names only the number and the category.", "")
		return
	}
	number, category, ok := consentSubject(rc, req)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	n, err := reg.WithdrawConsent(ctx, app, number, category)
	if err != nil {
		f.writeErr(rc, err)
		return
	}
	writeJSON(rc, fasthttp.StatusOK, map[string]int{"withdrawn": n})
}

func (f *Front) getConsents(rc *fasthttp.RequestCtx, seg string) {
	reg, app, ok := f.recipients(rc)
	if !ok {
		return
	}
	number, ok := pathNumber(rc, seg)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	list, err := reg.Consents(ctx, app, number)
	if err != nil {
		f.writeErr(rc, err)
		return
	}
	out := make([]consentJSON, len(list))
	for i, c := range list {
		out[i] = toConsentJSON(c)
	}
	writeJSON(rc, fasthttp.StatusOK, map[string][]consentJSON{"consents": out})
}
