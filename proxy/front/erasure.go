package front

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/smsproxy/smsproxy/proxy/store"
)

// Eraser is the optional ability of a Submitter to erase a data subject (GDPR article 17) for an app
// marked admin. A Submitter without it answers 404 on /v1/erasures.
type Eraser interface {
	// Admin reports whether app may use the operator endpoints.
	Admin(app string) bool
	// EraseSubject makes the personal data of number unreadable and records the erasure as an audit
	// event, whose seq it returns.
	EraseSubject(ctx context.Context, app, number, requestedBy string) (store.EraseResult, error)
}

// Codes of the erasure endpoint.
const (
	CodeAdminRequired      = "admin_required"
	CodeInvalidRequestedBy = "invalid_requested_by"
)

// maxRequestedBy bounds requested_by, which names a person or a ticket, not a subject.
const maxRequestedBy = 128

// erasureRequest is the JSON body of POST /v1/erasures.
type erasureRequest struct {
	Number      string `json:"number"`
	RequestedBy string `json:"requested_by"`
}

// erasureJSON answers an accepted erasure. It never repeats the number.
type erasureJSON struct {
	Status  string `json:"status"`
	Seq     int64  `json:"seq"`
	Existed bool   `json:"existed"`
}

// erasures serves POST /v1/erasures: an admin app asks to erase a data subject. The answer is 202
// with the seq of the "subject.erased" audit event; other apps get 403 admin_required.
func (f *Front) erasures(rc *fasthttp.RequestCtx, path []byte) {
	er, ok := f.sub.(Eraser)
	if p := string(path); !ok || (p != "/v1/erasures" && p != "/v1/erasures/") {
		writeError(rc, fasthttp.StatusNotFound, "not_found", "No such endpoint.", "")
		return
	}
	if !rc.IsPost() {
		f.methodNotAllowed(rc, "POST")
		return
	}
	app, ok := f.authenticate(rc)
	if !ok {
		return
	}
	if !er.Admin(app) {
		writeError(rc, fasthttp.StatusForbidden, CodeAdminRequired, "Only an app marked admin in the configuration may erase a data subject.", "")
		return
	}
	var req erasureRequest
	if !decodeJSONBody(rc, &req) {
		return
	}
	by := strings.TrimSpace(req.RequestedBy)
	if !validRequestedBy(by) {
		writeError(rc, fasthttp.StatusBadRequest, CodeInvalidRequestedBy,
			"requested_by must name who asked for the erasure: 1-"+strconv.Itoa(maxRequestedBy)+" printable characters.", "")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.RequestTimeout)
	defer cancel()
	res, err := er.EraseSubject(ctx, app, req.Number, by)
	if err != nil {
		var ce classified
		if errors.As(err, &ce) && ce.ErrorClass() == "forbidden" {
			writeError(rc, fasthttp.StatusForbidden, ce.ErrorCode(), "This app may not erase data subjects.", "")
			return
		}
		f.writeErr(rc, err)
		return
	}
	writeJSON(rc, fasthttp.StatusAccepted, erasureJSON{Status: "erased", Seq: res.Seq, Existed: res.Existed})
}

func validRequestedBy(s string) bool {
	if s == "" || len(s) > maxRequestedBy || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
