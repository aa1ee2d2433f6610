package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
	"github.com/smsproxy/smsproxy/proxy/limit"
	"github.com/smsproxy/smsproxy/proxy/policy"
	"github.com/smsproxy/smsproxy/proxy/route"
	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
	"golang.org/x/text/unicode/norm"
)

// Submit takes one message from an app through every step: normalise, gather facts, decide, reserve
// limits, record durably, dispatch. It returns once the message is on disk (sms.Accepted) or with an
// *Error that says why it was refused. Read it top to bottom: the data only moves down.
func (p *Proxy) Submit(ctx context.Context, app string, d sms.Draft) (sms.Accepted, error) {
	now := p.now()
	rt := p.runtime()

	// A repeated Idempotency-Key gets the original answer, whatever the policy or limits say now.
	reqHash := requestHash(d)
	if d.IdempotencyKey != "" {
		if err := sms.CheckIdempotencyKey(d.IdempotencyKey); err != nil {
			return sms.Accepted{}, err // before the key is locked or looked up
		}
		unlock, err := p.keyLocks.lock(ctx, app, d.IdempotencyKey)
		if err != nil {
			return sms.Accepted{}, inProgress(err)
		}
		defer unlock()
		if prev, ok, err := p.store.FindIdempotent(ctx, app, d.IdempotencyKey); err != nil {
			return sms.Accepted{}, unavailable("store_unavailable", err)
		} else if ok {
			if prev.RequestHash != reqHash {
				return sms.Accepted{}, conflict()
			}
			return replay(prev), nil
		}
	}

	// 1 normalize: E.164 and country, sender type, template, encoding and segments.
	msg, err := sms.Normalize(d, rt.templates)
	if err != nil {
		return sms.Accepted{}, err
	}
	msg.ID = newMessageID(now)
	msg.CreatedAt = now

	// 2 facts: opt-outs and consent records (cached), the recipient's local time.
	in := policy.NewInput(&msg, now)
	if in.Facts, err = p.facts.gather(ctx, app, msg.To, now); err != nil {
		return sms.Accepted{}, unavailable("store_unavailable", err)
	}

	// 3 decide; a shadow candidate, if any, sees the same input afterwards and never changes the answer.
	dec, err := p.policy.Decide(ctx, in)
	if err != nil {
		return sms.Accepted{}, unavailable("policy_unavailable", fmt.Errorf("policy revision %s: %w", p.policy.Revision(), err))
	}
	p.shadow.observe(in, &dec)
	masks := maskSet(dec.Masks)
	if !dec.Allow {
		p.refuse(ctx, &msg, masks, dec.Revision, dec.Reasons)
		return sms.Accepted{}, refused(dec.Reasons)
	}
	applyObligations(&msg, dec.Obligations)
	if msg.Segments > sms.MaxSegments {
		reason := policy.Reason{Code: sms.CodeBodyTooLong, Rule: "obligations",
			Message: fmt.Sprintf("With the text the destination requires (an opt-out footer), the body takes %d segments; at most %d are allowed.", msg.Segments, sms.MaxSegments)}
		p.refuse(ctx, &msg, masks, dec.Revision, []policy.Reason{reason})
		return sms.Accepted{}, refused([]policy.Reason{reason})
	}

	// The providers to try: the decision's route, else the country's; a message no running provider
	// can take is refused now rather than accepted and never sent.
	providers := dec.Route.Providers
	if len(providers) == 0 {
		providers = rt.region.Countries[msg.To.Country].Providers
	}
	if providers = p.usable(providers); len(providers) == 0 {
		reason := policy.Reason{Code: "no_route", Message: "No provider of this region can take messages to this destination now.", Rule: "route"}
		p.refuse(ctx, &msg, masks, dec.Revision, []policy.Reason{reason})
		return sms.Accepted{}, &Error{Class: "unavailable", Code: reason.Code, Message: reason.Message, Rule: reason.Rule}
	}

	// 4 limit: every limit the decision named, all or none.
	limits, err := toLimits(dec.Limits)
	if err != nil {
		return sms.Accepted{}, unavailable("policy_unavailable", fmt.Errorf("policy revision %s declared an invalid limit: %w", dec.Revision, err))
	}
	res, denied := p.limiter.Reserve(now, limits)
	if denied != nil {
		l := dec.Limits[denied.Index]
		reason := policy.Reason{Code: l.Code, Message: l.Message, Rule: limitRule(l)}
		p.refuse(ctx, &msg, masks, dec.Revision, []policy.Reason{reason})
		return sms.Accepted{}, limited(reason, denied.RetryAfter)
	}

	// 5 record: message, audit event and outbox row in one commit.
	item := route.Item{
		Req: provider.SendRequest{
			MessageID:      msg.ID,
			IdempotencyKey: msg.ID,
			To:             msg.To.E164,
			From:           msg.From.ID,
			SenderKind:     string(msg.From.Kind),
			Body:           msg.Body,
			Encoding:       string(msg.Encoding),
			Segments:       msg.Segments,
			Country:        msg.To.Country,
			Category:       string(msg.Category),
		},
		Country:   msg.To.Country,
		Providers: providers,
	}
	payload, err := json.Marshal(outboxPayload{Req: item.Req, Providers: providers})
	if err != nil {
		res.Cancel()
		return sms.Accepted{}, unavailable("internal", err)
	}
	acc, err := p.accept(ctx, store.Accepted{
		ID:             msg.ID,
		App:            app,
		IdempotencyKey: msg.IdempotencyKey,
		RequestHash:    reqHash,
		ToMasked:       mask(masks["to"], msg.To.E164),
		To:             msg.To.E164,
		Personal:       personalJSON(&msg),
		Country:        msg.To.Country,
		Sender:         msg.From.ID,
		SenderKind:     string(msg.From.Kind),
		Category:       string(msg.Category),
		Body:           mask(masks["body"], maskParams(&msg, masks)),
		Encoding:       string(msg.Encoding),
		Segments:       msg.Segments,
		Detail:         detailJSON(&msg, providers),
		Audit:          auditJSON(&msg, masks, dec.Revision, dec.Reasons),
		Payload:        payload,
		CreatedAt:      now,
	})
	if err != nil {
		res.Cancel()
		if store.CodeOf(err) == store.CodeIdempotencyConflict {
			return sms.Accepted{}, conflict()
		}
		return sms.Accepted{}, unavailable("store_unavailable", err)
	}
	if acc.Duplicate {
		// Another request with the same key won the race; answer as it was answered.
		res.Cancel()
		prev, err := p.store.Get(ctx, app, acc.ID)
		if err != nil {
			return sms.Accepted{}, unavailable("store_unavailable", err)
		}
		return replay(prev), nil
	}

	// 6 dispatch: hand the message to the dispatcher; the outbox row covers a crash from here on.
	p.dispatch(item)

	return sms.Accepted{
		ID:       msg.ID,
		Status:   store.StatusAccepted,
		Encoding: msg.Encoding,
		Segments: msg.Segments,
		Provider: providers[0], // the route is not empty: an empty one was refused above
		Country:  msg.To.Country,
	}, nil
}

// personalData is what the audit trail keeps of a message for auditors, sealed under the recipient's
// subject key: the number and the text in full.
type personalData struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

// personalJSON returns the sealed part of msg's audit event.
func personalJSON(msg *sms.Message) []byte {
	b, err := json.Marshal(personalData{To: msg.To.E164, Body: msg.Body})
	if err != nil {
		return nil
	}
	return b
}

// outboxPayload is what the outbox keeps to dispatch a message after a restart.
type outboxPayload struct {
	Req       provider.SendRequest `json:"req"`
	Providers []string             `json:"providers"`
}

// refuse records the audit event of a refused message; revision is that of the policy whose decision
// refused it. A failure to record is logged, not returned: the app is told about the refusal either way.
func (p *Proxy) refuse(ctx context.Context, msg *sms.Message, masks map[string]string, revision string, reasons []policy.Reason) {
	data := auditJSON(msg, masks, revision, reasons)
	r := store.Refused{MessageID: msg.ID, App: msg.App, Data: data, At: msg.CreatedAt}
	if msg.To.E164 != "" {
		r.To, r.Personal = msg.To.E164, personalJSON(msg)
	}
	if err := p.store.Refuse(ctx, r); err != nil {
		p.log.Error("cannot record a refusal", "err", err)
	}
}

// applyObligations makes the changes the decision requires before sending.
func applyObligations(msg *sms.Message, obs []policy.Obligation) {
	changed := false
	for _, o := range obs {
		switch o.Kind {
		case "append_footer":
			if o.Value != "" && !strings.Contains(msg.Body, o.Value) {
				msg.Body = strings.TrimRight(msg.Body, " \n") + " " + o.Value
				changed = true
			}
		}
	}
	if changed {
		seg := sms.Encode(msg.Body)
		msg.Encoding, msg.Segments = seg.Encoding, seg.Segments
	}
}

func toLimits(ls []policy.Limit) ([]limit.Limit, error) {
	out := make([]limit.Limit, len(ls))
	for i, l := range ls {
		d, err := time.ParseDuration(l.Period)
		if err != nil {
			return nil, err
		}
		out[i] = limit.Limit{Key: l.Key, Rate: l.Rate, Period: d, Burst: l.Burst, Window: l.Window}
		if l.Window {
			out[i].Burst = 0 // a window allows Rate events in any Period; it has no burst
		}
	}
	return out, nil
}

// limitRule names the rule of a limit's denial: the region limit it applies, never its key, which
// holds a phone number or a device id (e.g. "otp:to:+65…").
func limitRule(l policy.Limit) string {
	if l.Name != "" {
		return "limit " + l.Name
	}
	return "limit " + l.Code
}

// maskParams is msg's body with every template parameter the masks name ("template.params.txn")
// masked where it appears: the record keeps a transfer notice, not its transaction id. Longer
// values go first, so that a value inside another is masked within it rather than breaking it.
func maskParams(msg *sms.Message, masks map[string]string) string {
	body := msg.Body
	if msg.Template == nil {
		return body
	}
	type param struct{ value, style string }
	var ps []param
	for field, style := range masks { // a few entries, most not about parameters
		name, ok := strings.CutPrefix(field, "template.params.")
		if v := msg.Template.Params[name]; ok && style != "none" && v != "" {
			ps = append(ps, param{norm.NFC.String(v), style}) // as in the body, which Normalize composed
		}
	}
	slices.SortFunc(ps, func(a, b param) int { return len(b.value) - len(a.value) })
	for _, p := range ps {
		body = strings.ReplaceAll(body, p.value, mask(p.style, p.value))
	}
	return body
}

func maskSet(ms []policy.Mask) map[string]string {
	out := map[string]string{"to": "phone"}
	for _, m := range ms {
		out[m.Field] = m.Style
	}
	return out
}

// mask applies one mask style. An unknown style masks fully: a policy typo must not leak data.
func mask(style, v string) string {
	switch style {
	case "none":
		return v
	case "phone":
		return sms.MaskPhone(v)
	case "last4":
		return sms.MaskKeepLast(v, 4)
	default:
		return sms.MaskAll(v)
	}
}

// requestHash identifies a request's content so that a reused Idempotency-Key with other content is
// told apart from a retry.
func requestHash(d sms.Draft) string {
	h := sha256.New()
	w := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	w(d.To)
	w(d.From)
	w(d.Body)
	w(d.Category)
	w(d.DeviceID)
	sorted := func(m map[string]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w(k)
			w(m[k])
		}
	}
	if d.Template != nil {
		w(d.Template.ID)
		w(d.Template.Locale)
		sorted(d.Template.Params)
	}
	if len(d.Metadata) > 0 {
		// After everything else and only when present, so that the hashes of requests without
		// metadata, stored before it counted, still match their retries.
		w("\x00metadata")
		sorted(d.Metadata)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// replay is the answer to a request that repeats an Idempotency-Key: the first answer again, not
// the message's state now (GET /v1/messages/{id} tells that).
func replay(prev store.MessageView) sms.Accepted {
	first := ""
	if d, err := readDetail(prev.Detail); err == nil && len(d.Providers) > 0 {
		first = d.Providers[0]
	}
	return sms.Accepted{
		ID:        prev.ID,
		Status:    store.StatusAccepted,
		Encoding:  sms.Encoding(prev.Encoding),
		Segments:  prev.Segments,
		Provider:  first,
		Country:   prev.Country,
		Duplicate: true,
	}
}

// detail is what a message's row keeps beside its columns.
type detail struct {
	// Providers is the route the message was accepted with, first provider first.
	Providers []string          `json:"providers"`
	Template  string            `json:"template,omitempty"`
	Locale    string            `json:"locale,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

func detailJSON(msg *sms.Message, providers []string) []byte {
	d := detail{Providers: providers, Metadata: msg.Metadata}
	if msg.Template != nil {
		d.Template, d.Locale = msg.Template.ID, msg.Template.Locale
	}
	b, _ := json.Marshal(d)
	return b
}

func readDetail(raw json.RawMessage) (detail, error) {
	var d detail
	if len(raw) == 0 {
		return d, nil
	}
	err := json.Unmarshal(raw, &d)
	return d, err
}

// auditJSON is the masked data of an accepted or refused message's audit event.
func auditJSON(msg *sms.Message, masks map[string]string, revision string, reasons []policy.Reason) []byte {
	ev := map[string]any{
		"to":              mask(masks["to"], msg.To.E164),
		"country":         msg.To.Country,
		"from":            msg.From.ID,
		"category":        msg.Category,
		"segments":        msg.Segments,
		"encoding":        msg.Encoding,
		"policy_revision": revision,
	}
	if len(reasons) > 0 {
		ev["reasons"] = reasons
	}
	if msg.Template != nil {
		ev["template"] = msg.Template.ID
	}
	b, _ := json.Marshal(ev)
	return b
}

// Message returns one of app's messages, masked, with its status history.
func (p *Proxy) Message(ctx context.Context, app, id string) (sms.Record, error) {
	v, err := p.store.Get(ctx, app, id)
	if errors.Is(err, store.ErrNotFound) {
		return sms.Record{}, &Error{Class: "not_found", Code: "message_not_found", Message: "No message with that id."}
	}
	if err != nil {
		return sms.Record{}, unavailable("store_unavailable", err)
	}
	rec := sms.Record{
		ID: v.ID, To: v.ToMasked, From: v.Sender, Country: v.Country, Category: sms.Category(v.Category),
		Body: v.Body, Encoding: sms.Encoding(v.Encoding), Segments: v.Segments, Status: v.Status,
		Provider: v.Provider, CreatedAt: v.CreatedAt, History: make([]sms.StatusChange, len(v.History)),
	}
	for i, h := range v.History {
		rec.History[i] = sms.StatusChange{Status: h.Status, At: h.At, Provider: h.Provider, Code: h.Code}
	}
	if d, err := readDetail(v.Detail); err == nil {
		rec.Metadata = d.Metadata
	}
	return rec, nil
}
