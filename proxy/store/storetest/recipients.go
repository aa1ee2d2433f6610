package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// RunRecipients runs the conformance tests of opt-outs and consent records against the stores
// newDB makes.
func RunRecipients(t *testing.T, newDB Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"OptOutAddListRemove", testOptOutAddListRemove},
		{"OptOutScopes", testOptOutScopes},
		{"OptOutImportIdempotent", testOptOutImport},
		{"OptOutAuditInSameCommit", testOptOutAuditSameCommit},
		{"OptOutBadInput", testOptOutBadInput},
		{"ConsentRecordWithdraw", testConsentRecordWithdraw},
		{"ConsentBadInput", testConsentBadInput},
		{"RecipientsSurviveReopen", testRecipientsReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, open: newDB(t)}
			h.s = h.mustOpen()
			t.Cleanup(func() {
				if h.s != nil {
					_ = h.s.Close()
				}
			})
			tc.fn(t, h)
		})
	}
}

const (
	numA = "+6591234567"
	numB = "+6598765432"
)

func optOut(app, number, scope string) store.OptOut {
	return store.OptOut{Number: number, Scope: scope, App: app, Source: store.SourceAPI, CreatedAt: base}
}

func (h *harness) facts(number string) store.RecipientFacts {
	h.t.Helper()
	f, err := h.s.RecipientFacts(bg, number)
	if err != nil {
		h.t.Fatalf("RecipientFacts: %v", err)
	}
	return f
}

func (h *harness) listAll(app string, page int) []store.OptOut {
	h.t.Helper()
	var all []store.OptOut
	var after int64
	for {
		got, err := h.s.ListOptOuts(bg, app, after, page)
		if err != nil {
			h.t.Fatalf("ListOptOuts: %v", err)
		}
		if len(got) > page {
			h.t.Fatalf("ListOptOuts returned %d rows for limit %d", len(got), page)
		}
		all = append(all, got...)
		if len(got) < page {
			return all
		}
		after = got[len(got)-1].Seq
	}
}

// noFullNumbers fails when an audit event holds a number in full.
func (h *harness) noFullNumbers(numbers ...string) {
	h.t.Helper()
	for _, e := range h.audit() {
		for _, n := range numbers {
			if strings.Contains(string(e.Data), n) || strings.Contains(string(e.Data), n[1:]) {
				h.t.Fatalf("audit event %s holds a number in full: %s", e.Kind, e.Data)
			}
		}
	}
}

func testOptOutAddListRemove(t *testing.T, h *harness) {
	added, err := h.s.AddOptOut(bg, optOut("pay", numA, "pay"))
	if err != nil || !added {
		t.Fatalf("AddOptOut = %v, %v; want added", added, err)
	}
	added, err = h.s.AddOptOut(bg, optOut("pay", numA, "pay"))
	if err != nil || added {
		t.Fatalf("second AddOptOut = %v, %v; want not added, no error", added, err)
	}
	if _, err := h.s.AddOptOut(bg, optOut("pay", numB, store.ScopeAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.AddOptOut(bg, optOut("shop", numB, "shop")); err != nil {
		t.Fatal(err)
	}
	got := h.listAll("pay", 1)
	// Listed numbers are masked: the store keeps only their lookup hash and masked form.
	if len(got) != 2 || got[0].Number != sms.MaskPhone(numA) || got[0].Scope != "pay" || got[1].Number != sms.MaskPhone(numB) ||
		got[1].Scope != store.ScopeAll || got[0].Source != store.SourceAPI || !got[0].CreatedAt.Equal(base) {
		t.Fatalf("pay's opt-outs = %+v", got)
	}
	if other := h.listAll("shop", 10); len(other) != 1 || other[0].Number != sms.MaskPhone(numB) {
		t.Fatalf("shop's opt-outs = %+v, want only its own", other)
	}
	// Another app cannot remove pay's opt-out.
	if _, err := h.s.RemoveOptOut(bg, "shop", numA, base); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RemoveOptOut by another app = %v, want ErrNotFound", err)
	}
	n, err := h.s.RemoveOptOut(bg, "pay", numA, base)
	if err != nil || n != 1 {
		t.Fatalf("RemoveOptOut = %d, %v", n, err)
	}
	if _, err := h.s.RemoveOptOut(bg, "pay", numA, base); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second RemoveOptOut = %v, want ErrNotFound", err)
	}
	if f := h.facts(numA); f.OptedOut("pay") {
		t.Fatalf("facts after removal = %+v", f)
	}
	var kinds []string
	for _, e := range h.audit() {
		kinds = append(kinds, e.Kind)
	}
	want := []string{store.AuditOptOutAdded, store.AuditOptOutAdded, store.AuditOptOutAdded, store.AuditOptOutRemoved}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("audit kinds = %v, want %v", kinds, want)
	}
	h.noFullNumbers(numA, numB)
}

func testOptOutScopes(t *testing.T, h *harness) {
	if _, err := h.s.AddOptOut(bg, optOut("pay", numA, "pay")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.AddOptOut(bg, optOut("pay", numB, store.ScopeAll)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		number, app string
		want        bool
	}{
		{numA, "pay", true},
		{numA, "shop", false},
		{numB, "pay", true},
		{numB, "shop", true},
		{"+6590000000", "pay", false},
	} {
		if got := h.facts(tc.number).OptedOut(tc.app); got != tc.want {
			t.Errorf("OptedOut(%s, %s) = %v, want %v", tc.number, tc.app, got, tc.want)
		}
	}
}

func testOptOutImport(t *testing.T, h *harness) {
	var rows []store.OptOut
	for i := range 1200 {
		o := optOut("pay", fmt.Sprintf("+659%07d", i%1100), "pay")
		o.Source = store.SourceProviderMigration
		rows = append(rows, o)
	}
	res, err := h.s.ImportOptOuts(bg, rows)
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 1100 || res.Duplicates != 100 {
		t.Fatalf("import = %+v, want 1100 imported, 100 duplicates", res)
	}
	again, err := h.s.ImportOptOuts(bg, rows)
	if err != nil || again.Imported != 0 || again.Duplicates != 1200 {
		t.Fatalf("repeated import = %+v, %v; want everything a duplicate", again, err)
	}
	if got := h.listAll("pay", 500); len(got) != 1100 {
		t.Fatalf("listed %d opt-outs, want 1100", len(got))
	}
	added := 0
	for _, e := range h.audit() {
		if e.Kind == store.AuditOptOutAdded {
			added++
		}
	}
	if added != 1100 {
		t.Fatalf("%d optout.added events, want one per imported row (1100)", added)
	}
	if !h.facts("+6590001099").OptedOut("pay") {
		t.Fatal("an imported number is not opted out")
	}
}

func testOptOutAuditSameCommit(t *testing.T, h *harness) {
	before := h.s.Commits()
	if _, err := h.s.AddOptOut(bg, optOut("pay", numA, "pay")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.RecordConsent(bg, store.Consent{App: "pay", Number: numA, Category: "marketing", Basis: store.BasisConsent}); err != nil {
		t.Fatal(err)
	}
	if got := h.s.Commits() - before; got != 2 {
		t.Fatalf("%d commits for two changes, want one each (change and audit together)", got)
	}
	evs := h.audit()
	if len(evs) != 2 || evs[0].Kind != store.AuditOptOutAdded || evs[1].Kind != store.AuditConsentRecorded ||
		evs[0].App != "pay" || evs[0].MessageID != "" {
		t.Fatalf("audit = %+v", evs)
	}
	if !strings.Contains(string(evs[0].Data), `"scope":"pay"`) || !strings.Contains(string(evs[0].Data), `"number":"+65`) {
		t.Fatalf("optout.added data = %s", evs[0].Data)
	}
	h.noFullNumbers(numA)
}

func testOptOutBadInput(t *testing.T, h *harness) {
	for name, o := range map[string]store.OptOut{
		"no number":  {Scope: "pay", App: "pay", Source: store.SourceAPI},
		"not e164":   {Number: "6591234567", Scope: "pay", App: "pay", Source: store.SourceAPI},
		"no app":     {Number: numA, Scope: "pay", Source: store.SourceAPI},
		"no scope":   {Number: numA, App: "pay", Source: store.SourceAPI},
		"bad source": {Number: numA, Scope: "pay", App: "pay", Source: "guess"},
	} {
		if _, err := h.s.AddOptOut(bg, o); store.CodeOf(err) != store.CodeInvalidArgument {
			t.Errorf("%s: AddOptOut error = %v, want %s", name, err, store.CodeInvalidArgument)
		}
	}
	// One bad row refuses the whole import before anything is written.
	rows := []store.OptOut{optOut("pay", numA, "pay"), {Number: numB, Scope: "pay", App: "pay", Source: "guess"}}
	if _, err := h.s.ImportOptOuts(bg, rows); store.CodeOf(err) != store.CodeInvalidArgument {
		t.Fatalf("import with a bad row = %v", err)
	}
	if got := h.listAll("pay", 10); len(got) != 0 || len(h.audit()) != 0 {
		t.Fatalf("a refused import wrote %d opt-outs, %d events", len(got), len(h.audit()))
	}
}

func testConsentRecordWithdraw(t *testing.T, h *harness) {
	c, err := h.s.RecordConsent(bg, store.Consent{App: "pay", Number: numA, Category: "marketing",
		Basis: store.BasisConsent, Source: "signup-form", GrantedAt: base})
	if err != nil || c.Seq == 0 || !c.GrantedAt.Equal(base) || c.Withdrawn() {
		t.Fatalf("RecordConsent = %+v, %v", c, err)
	}
	if _, err := h.s.RecordConsent(bg, store.Consent{App: "pay", Number: numA, Category: "transaction",
		Basis: store.BasisContract, GrantedAt: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.RecordConsent(bg, store.Consent{App: "shop", Number: numA, Category: "marketing",
		Basis: store.BasisConsent, GrantedAt: base}); err != nil {
		t.Fatal(err)
	}
	f := h.facts(numA)
	if len(f.Consents) != 3 {
		t.Fatalf("facts consents = %+v, want 3", f.Consents)
	}
	at := base.Add(time.Hour)
	n, err := h.s.WithdrawConsent(bg, "pay", numA, "marketing", at)
	if err != nil || n != 1 {
		t.Fatalf("WithdrawConsent = %d, %v", n, err)
	}
	if _, err := h.s.WithdrawConsent(bg, "pay", numA, "marketing", at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second WithdrawConsent = %v, want ErrNotFound", err)
	}
	for _, c := range h.facts(numA).Consents {
		want := c.App == "pay" && c.Category == "marketing"
		if c.Withdrawn() != want {
			t.Fatalf("after withdrawal: %s/%s withdrawn = %v", c.App, c.Category, c.Withdrawn())
		}
		if want && !c.WithdrawnAt.Equal(at) {
			t.Fatalf("withdrawn at %v, want %v", c.WithdrawnAt, at)
		}
	}
	// Consent given again is in force again; the history keeps both records.
	if _, err := h.s.RecordConsent(bg, store.Consent{App: "pay", Number: numA, Category: "marketing",
		Basis: store.BasisConsent, GrantedAt: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.facts(numA).Consents {
		if c.Withdrawn() {
			t.Fatalf("a new record did not supersede the withdrawn one: %+v", c)
		}
	}
	hist, err := h.s.Consents(bg, "pay", numA)
	if err != nil || len(hist) != 3 || !hist[0].Withdrawn() || hist[2].Withdrawn() {
		t.Fatalf("pay's consent history = %+v, %v", hist, err)
	}
	if other, _ := h.s.Consents(bg, "shop", numA); len(other) != 1 {
		t.Fatalf("shop sees %d records, want only its own", len(other))
	}
	var kinds []string
	for _, e := range h.audit() {
		kinds = append(kinds, e.Kind)
	}
	want := []string{store.AuditConsentRecorded, store.AuditConsentRecorded, store.AuditConsentRecorded,
		store.AuditConsentWithdrawn, store.AuditConsentRecorded}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("audit kinds = %v, want %v", kinds, want)
	}
	h.noFullNumbers(numA)
}

func testConsentBadInput(t *testing.T, h *harness) {
	for name, c := range map[string]store.Consent{
		"no number":   {App: "pay", Category: "marketing", Basis: store.BasisConsent},
		"no app":      {Number: numA, Category: "marketing", Basis: store.BasisConsent},
		"no category": {App: "pay", Number: numA, Basis: store.BasisConsent},
		"bad basis":   {App: "pay", Number: numA, Category: "marketing", Basis: "vibes"},
	} {
		if _, err := h.s.RecordConsent(bg, c); store.CodeOf(err) != store.CodeInvalidArgument {
			t.Errorf("%s: RecordConsent error = %v, want %s", name, err, store.CodeInvalidArgument)
		}
	}
	if _, err := h.s.WithdrawConsent(bg, "pay", numA, "marketing", base); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("withdrawing a consent never given = %v, want ErrNotFound", err)
	}
	if len(h.audit()) != 0 {
		t.Fatal("refused consent changes were audited")
	}
}

func testRecipientsReopen(t *testing.T, h *harness) {
	if _, err := h.s.AddOptOut(bg, optOut("pay", numA, "pay")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.RecordConsent(bg, store.Consent{App: "pay", Number: numB, Category: "marketing", Basis: store.BasisConsent}); err != nil {
		t.Fatal(err)
	}
	h.reopen()
	if !h.facts(numA).OptedOut("pay") {
		t.Fatal("opt-out lost on reopen")
	}
	if f := h.facts(numB); len(f.Consents) != 1 || f.Consents[0].Basis != store.BasisConsent {
		t.Fatalf("consent lost on reopen: %+v", f)
	}
}
