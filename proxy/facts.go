package proxy

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nyaruka/phonenumbers"

	"github.com/smsproxy/smsproxy/proxy/front"
	"github.com/smsproxy/smsproxy/proxy/policy"
	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// factsCacheSize bounds how many recipients' facts are kept in memory.
const factsCacheSize = 100_000

// recipientStore is what the facts step needs from the store.
type recipientStore interface {
	RecipientFacts(ctx context.Context, number string) (store.RecipientFacts, error)
}

// recipientRegistry is what the opt-out and consent API needs from the store.
type recipientRegistry interface {
	recipientStore
	AddOptOut(ctx context.Context, o store.OptOut) (bool, error)
	ImportOptOuts(ctx context.Context, rows []store.OptOut) (store.ImportResult, error)
	RemoveOptOut(ctx context.Context, app, number string, at time.Time) (int, error)
	ListOptOuts(ctx context.Context, app string, after int64, limit int) ([]store.OptOut, error)
	RecordConsent(ctx context.Context, c store.Consent) (store.Consent, error)
	WithdrawConsent(ctx context.Context, app, number, category string, at time.Time) (int, error)
	Consents(ctx context.Context, app, number string) ([]store.Consent, error)
}

// recipientFacts gathers the facts of step 2 of Submit: opt-outs, consent records and the
// recipient's local time. Opt-out and consent state comes from the store through an LRU cache
// keyed by number; a write made through this process invalidates the number's entry. (Writes
// made by another replica are not seen until the entry is evicted: a shared store needs its own
// invalidation, which arrives with PostgreSQL.)
type recipientFacts struct {
	st    recipientStore
	cache *lru.Cache[string, *recipientEntry]

	// mu orders "add after a store read" against invalidation, with epoch: a read that raced with
	// a write is not cached.
	mu    sync.Mutex
	epoch atomic.Uint64
}

// recipientEntry is what is cached for one number: the store's facts, for every app, and its zone.
type recipientEntry struct {
	facts store.RecipientFacts
	// consents holds the policy's view of facts.Consents per app, built once; the maps are shared
	// by every decision and must not be changed.
	consents map[string]map[string]policy.Consent
	zone     string
	loc      *time.Location
	alts     []*time.Location // every zone of the number, when they disagree (zone is then "")
}

func newRecipientEntry(f store.RecipientFacts, e164 string) *recipientEntry {
	e := &recipientEntry{facts: f}
	e.zone, e.loc, e.alts = zoneOf(e164)
	for _, c := range f.Consents {
		if e.consents == nil {
			e.consents = map[string]map[string]policy.Consent{}
		}
		m := e.consents[c.App]
		if m == nil {
			m = map[string]policy.Consent{}
			e.consents[c.App] = m
		}
		m[c.Category] = policy.Consent{Basis: c.Basis, GrantedAt: c.GrantedAt, Withdrawn: c.Withdrawn()}
	}
	return e
}

func newRecipientFacts(st recipientStore, size int) *recipientFacts {
	if size <= 0 {
		size = factsCacheSize
	}
	c, _ := lru.New[string, *recipientEntry](size) // only errors for a size <= 0
	return &recipientFacts{st: st, cache: c}
}

// gather returns the facts about message's recipient for app at now. A store failure is returned:
// without knowing whether the recipient opted out, the message must not go. The Consents map of the
// result is shared with the cache and must not be changed.
func (r *recipientFacts) gather(ctx context.Context, app string, to sms.Phone, now time.Time) (policy.Facts, error) {
	e, ok := r.cache.Get(to.E164)
	if !ok {
		epoch := r.epoch.Load()
		f, err := r.st.RecipientFacts(ctx, to.E164)
		if err != nil {
			return policy.Facts{}, err
		}
		e = newRecipientEntry(f, to.E164)
		r.mu.Lock()
		if r.epoch.Load() == epoch {
			r.cache.Add(to.E164, e)
		}
		r.mu.Unlock()
	}
	local := now.In(e.loc)
	out := policy.Facts{
		OptedOut:     e.facts.OptedOut(app),
		LocalHour:    local.Hour(),
		LocalWeekday: int(local.Weekday()),
		TimeZone:     e.zone,
	}
	for _, loc := range e.alts {
		if h := now.In(loc).Hour(); !slices.Contains(out.LocalHours, h) {
			out.LocalHours = append(out.LocalHours, h)
		}
	}
	out.Consents = e.consents[app]
	return out, nil
}

// invalidate forgets what is cached about number, after a write to its opt-outs or consents.
func (r *recipientFacts) invalidate(number string) {
	r.mu.Lock()
	r.epoch.Add(1)
	r.cache.Remove(number)
	r.mu.Unlock()
}

// invalidateAll forgets everything cached, after a bulk write.
func (r *recipientFacts) invalidateAll() {
	r.mu.Lock()
	r.epoch.Add(1)
	r.cache.Purge()
	r.mu.Unlock()
}

// zones caches time.LoadLocation by zone name.
var zones sync.Map // string → *time.Location

// zoneOf returns the IANA time zone of an E.164 number and its location: the first zone
// libphonenumber names for the number, provided every zone it names has the same UTC offset now
// (a UK mobile: Guernsey, Isle of Man, London). A number without a known zone gives "" and UTC, and
// the policy falls back to the country's zone. A number whose zones disagree (Idaho's area code
// spans Mountain and Pacific time; a US toll-free number spans Honolulu to St John's) gives "" and
// UTC too, and all its zones in alts, so that a rule on the local time can hold in each of them.
func zoneOf(e164 string) (zone string, loc *time.Location, alts []*time.Location) {
	tzs, err := phonenumbers.GetTimezonesForPrefix(e164)
	if err != nil || len(tzs) == 0 {
		return "", time.UTC, nil
	}
	first := loadZone(tzs[0])
	if first == nil {
		return "", time.UTC, nil
	}
	if len(tzs) > 1 {
		now := time.Now()
		_, off := now.In(first).Zone()
		all := []*time.Location{first}
		agree := true
		for _, name := range tzs[1:] {
			l := loadZone(name)
			if l == nil {
				continue
			}
			all = append(all, l)
			if _, o := now.In(l).Zone(); o != off {
				agree = false
			}
		}
		if !agree {
			return "", time.UTC, all
		}
	}
	return tzs[0], first, nil
}

// loadZone returns the location named, cached, or nil when it is unknown.
func loadZone(name string) *time.Location {
	if name == "" || name == phonenumbers.UNKNOWN_TIMEZONE {
		return nil
	}
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	zones.Store(name, loc)
	return loc
}

// LocalTime returns the recipient's local hour (0-23), weekday (0 = Sunday) and IANA time zone
// ("" when unknown, and the hour is then UTC's) for an E.164 number at now, as the facts step
// computes them.
func LocalTime(e164 string, now time.Time) (hour, weekday int, zone string) {
	zone, loc, _ := zoneOf(e164)
	local := now.In(loc)
	return local.Hour(), int(local.Weekday()), zone
}

// The opt-out and consent API. An app manages the records it made; numbers are validated as
// Submit validates them, and every change is audited by the store in the same transaction.

var _ front.Recipients = (*Proxy)(nil)

func (p *Proxy) registry() (recipientRegistry, error) {
	reg, ok := p.store.(recipientRegistry)
	if !ok {
		return nil, &Error{Class: "unavailable", Code: "not_supported", Message: "This store keeps no opt-outs or consent records."}
	}
	return reg, nil
}

// recipientErr turns a store error into an answer for the app.
func recipientErr(err error, notFound string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &Error{Class: "not_found", Code: notFound, Message: "No such record for this number.", err: err}
	case store.CodeOf(err) == store.CodeInvalidArgument:
		var se *store.Error
		errors.As(err, &se)
		return &Error{Class: "invalid", Code: "invalid_request", Message: se.Message, err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	return unavailable("store_unavailable", err)
}

// AddOptOut records that o.Number opted out of o.Scope; added is false when it already had.
func (p *Proxy) AddOptOut(ctx context.Context, o store.OptOut) (bool, error) {
	reg, err := p.registry()
	if err != nil {
		return false, err
	}
	added, err := reg.AddOptOut(ctx, o)
	p.facts.invalidate(o.Number)
	return added, recipientErr(err, "opt_out_not_found")
}

// ImportOptOuts records many opt-outs; rows already present are counted as duplicates.
func (p *Proxy) ImportOptOuts(ctx context.Context, rows []store.OptOut) (store.ImportResult, error) {
	reg, err := p.registry()
	if err != nil {
		return store.ImportResult{}, err
	}
	res, err := reg.ImportOptOuts(ctx, rows)
	if len(rows) > 64 {
		p.facts.invalidateAll()
	} else {
		for _, o := range rows {
			p.facts.invalidate(o.Number)
		}
	}
	return res, recipientErr(err, "opt_out_not_found")
}

// RemoveOptOut deletes the opt-outs of number that app recorded.
func (p *Proxy) RemoveOptOut(ctx context.Context, app, number string) (int, error) {
	reg, err := p.registry()
	if err != nil {
		return 0, err
	}
	n, err := reg.RemoveOptOut(ctx, app, number, p.now())
	p.facts.invalidate(number)
	return n, recipientErr(err, "opt_out_not_found")
}

// ListOptOuts lists the opt-outs app recorded, after the cursor after.
func (p *Proxy) ListOptOuts(ctx context.Context, app string, after int64, limit int) ([]store.OptOut, error) {
	reg, err := p.registry()
	if err != nil {
		return nil, err
	}
	out, err := reg.ListOptOuts(ctx, app, after, limit)
	return out, recipientErr(err, "opt_out_not_found")
}

// RecordConsent appends a consent record.
func (p *Proxy) RecordConsent(ctx context.Context, c store.Consent) (store.Consent, error) {
	reg, err := p.registry()
	if err != nil {
		return store.Consent{}, err
	}
	if c.GrantedAt.IsZero() {
		c.GrantedAt = p.now()
	}
	out, err := reg.RecordConsent(ctx, c)
	p.facts.invalidate(c.Number)
	return out, recipientErr(err, "consent_not_found")
}

// WithdrawConsent withdraws app's consent in force for number and category.
func (p *Proxy) WithdrawConsent(ctx context.Context, app, number, category string) (int, error) {
	reg, err := p.registry()
	if err != nil {
		return 0, err
	}
	n, err := reg.WithdrawConsent(ctx, app, number, category, p.now())
	p.facts.invalidate(number)
	return n, recipientErr(err, "consent_not_found")
}

// Consents lists app's consent records for number, oldest first.
func (p *Proxy) Consents(ctx context.Context, app, number string) ([]store.Consent, error) {
	reg, err := p.registry()
	if err != nil {
		return nil, err
	}
	out, err := reg.Consents(ctx, app, number)
	return out, recipientErr(err, "consent_not_found")
}
