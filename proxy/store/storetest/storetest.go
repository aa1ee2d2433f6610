// Package storetest is the conformance suite every store.Store implementation must pass. A store's
// own tests call Run with a Factory that makes a fresh database for each test.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/proxy/store"
)

// Opener opens the database under test. Every call opens the same database again, so the suite can
// close a store and check what a new one finds.
type Opener func(ctx context.Context) (store.Store, error)

// Factory makes a fresh, empty database for one test and returns how to open it.
type Factory func(t *testing.T) Opener

// Run runs the conformance suite against the stores newDB makes.
func Run(t *testing.T, newDB Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"AcceptIsDurable", testAcceptDurable},
		{"AcceptRejectsBadInput", testAcceptBadInput},
		{"IdempotentRepeat", testIdempotentRepeat},
		{"IdempotencyConflict", testIdempotencyConflict},
		{"IdempotencyKeyScope", testIdempotencyScope},
		{"DuplicateID", testDuplicateID},
		{"OtherAppCannotRead", testOtherApp},
		{"OutboxUntilSent", testOutboxUntilSent},
		{"RecordSentTwice", testRecordSentTwice},
		{"RecordSentUnknownMessage", testRecordSentUnknown},
		{"RecordFailed", testRecordFailed},
		{"AmbiguousOutcomesAudited", testAmbiguousOutcomesAudited},
		{"RecordRetry", testRecordRetry},
		{"ReceiptsAppliedOnce", testReceiptsOnce},
		{"ReceiptAfterReopen", testReceiptAfterReopen},
		{"ReceiptBadInput", testReceiptBadInput},
		{"Refuse", testRefuse},
		{"CancelledContext", testCancelled},
		{"ConcurrentAcceptsGroupCommit", testGroupCommit},
		{"ConcurrentMixedOutcomes", testMixedOutcomes},
		{"CloseDrainsQueue", testCloseDrains},
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

type harness struct {
	t    *testing.T
	open Opener
	s    store.Store
}

var bg = context.Background()

func (h *harness) mustOpen() store.Store {
	h.t.Helper()
	s, err := h.open(bg)
	if err != nil {
		h.t.Fatalf("open: %v", err)
	}
	return s
}

// reopen closes the store and opens the database again.
func (h *harness) reopen() {
	h.t.Helper()
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("close: %v", err)
	}
	h.s = nil
	h.s = h.mustOpen()
}

// base is a fixed instant so stored times can be compared exactly.
var base = time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)

func msg(app, id string) store.Accepted {
	return store.Accepted{
		ID:          id,
		App:         app,
		RequestHash: "hash-" + id,
		ToMasked:    "+65****4321",
		ToHash:      "th-" + id,
		Country:     "SG",
		Sender:      "PAYCO",
		SenderKind:  "alphanumeric",
		Category:    "otp",
		Body:        "Your code is ******",
		Encoding:    "GSM-7",
		Segments:    1,
		Detail:      []byte(`{"template":"otp_login"}`),
		Audit:       []byte(`{"to":"+65****4321","category":"otp"}`),
		Payload:     []byte("payload-" + id),
		CreatedAt:   base,
	}
}

func (h *harness) accept(a store.Accepted) store.AcceptResult {
	h.t.Helper()
	r, err := h.s.Accept(bg, a)
	if err != nil {
		h.t.Fatalf("Accept(%s): %v", a.ID, err)
	}
	return r
}

func (h *harness) get(app, id string) store.MessageView {
	h.t.Helper()
	v, err := h.s.Get(bg, app, id)
	if err != nil {
		h.t.Fatalf("Get(%s, %s): %v", app, id, err)
	}
	return v
}

func (h *harness) counts() map[string]int {
	h.t.Helper()
	m, err := h.s.CountByStatus(bg)
	if err != nil {
		h.t.Fatalf("CountByStatus: %v", err)
	}
	return m
}

func (h *harness) wantCounts(want map[string]int) {
	h.t.Helper()
	if got := h.counts(); !reflect.DeepEqual(got, want) {
		h.t.Fatalf("CountByStatus = %v, want %v", got, want)
	}
}

func (h *harness) pending() []store.OutboxItem {
	h.t.Helper()
	var all []store.OutboxItem
	after := ""
	for {
		page, err := h.s.PendingOutbox(bg, 2, after)
		if err != nil {
			h.t.Fatalf("PendingOutbox: %v", err)
		}
		if len(page) > 2 {
			h.t.Fatalf("PendingOutbox returned %d rows for limit 2", len(page))
		}
		all = append(all, page...)
		if len(page) < 2 {
			return all
		}
		after = page[len(page)-1].MessageID
	}
}

func pendingIDs(items []store.OutboxItem) []string {
	ids := []string{}
	for _, it := range items {
		ids = append(ids, it.MessageID)
	}
	return ids
}

func (h *harness) audit() []store.AuditEvent {
	h.t.Helper()
	evs, err := h.s.Audit(bg, 0, 10000)
	if err != nil {
		h.t.Fatalf("Audit: %v", err)
	}
	return evs
}

// auditKinds lists "kind/message id" for each audit event, in order.
func (h *harness) auditKinds() []string {
	h.t.Helper()
	out := []string{}
	for _, e := range h.audit() {
		out = append(out, e.Kind+"/"+e.MessageID)
	}
	return out
}

func statuses(v store.MessageView) []string {
	out := []string{}
	for _, e := range v.History {
		out = append(out, e.Status)
	}
	return out
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %#v, want %#v", what, got, want)
	}
}

func testAcceptDurable(t *testing.T, h *harness) {
	a := msg("payments", "m1")
	a.IdempotencyKey = "k1"
	r := h.accept(a)
	eq(t, "result", r, store.AcceptResult{ID: "m1", Status: store.StatusAccepted, CreatedAt: r.CreatedAt})
	if !r.CreatedAt.Equal(base) {
		t.Fatalf("CreatedAt = %v, want %v", r.CreatedAt, base)
	}
	h.reopen()

	v := h.get("payments", "m1")
	want := store.MessageView{
		ID: "m1", App: "payments", IdempotencyKey: "k1", RequestHash: "hash-m1", ToMasked: "+65****4321",
		ToHash: "th-m1", Country: "SG", Sender: "PAYCO", SenderKind: "alphanumeric", Category: "otp",
		Body: "Your code is ******", Encoding: "GSM-7", Segments: 1, Status: store.StatusAccepted,
	}
	if !v.CreatedAt.Equal(base) || !v.UpdatedAt.Equal(base) {
		t.Fatalf("times = %v, %v; want %v", v.CreatedAt, v.UpdatedAt, base)
	}
	if !jsonEqual(v.Detail, []byte(`{"template":"otp_login"}`)) {
		t.Fatalf("Detail = %s", v.Detail)
	}
	if len(v.History) != 1 || v.History[0].Status != store.StatusAccepted || v.History[0].Seq != 1 || !v.History[0].At.Equal(base) {
		t.Fatalf("History = %+v, want one accepted row at %v", v.History, base)
	}
	v.CreatedAt, v.UpdatedAt, v.Detail, v.History = time.Time{}, time.Time{}, nil, nil
	eq(t, "message", v, want)

	items := h.pending()
	if len(items) != 1 || items[0].MessageID != "m1" || !bytes.Equal(items[0].Payload, []byte("payload-m1")) || items[0].Attempts != 0 {
		t.Fatalf("outbox = %+v, want m1 with its payload", items)
	}
	evs := h.audit()
	if len(evs) != 1 || evs[0].Kind != store.AuditAccepted || evs[0].MessageID != "m1" || evs[0].App != "payments" ||
		!jsonEqual(evs[0].Data, []byte(`{"to":"+65****4321","category":"otp"}`)) || !evs[0].At.Equal(base) {
		t.Fatalf("audit = %+v, want one message.accepted event with the given data", evs)
	}
	h.wantCounts(map[string]int{store.StatusAccepted: 1})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func testAcceptBadInput(t *testing.T, h *harness) {
	tests := []struct {
		name   string
		change func(a *store.Accepted)
	}{
		{"no id", func(a *store.Accepted) { a.ID = "" }},
		{"no app", func(a *store.Accepted) { a.App = "" }},
		{"detail not JSON", func(a *store.Accepted) { a.Detail = []byte("{") }},
		{"audit not JSON", func(a *store.Accepted) { a.Audit = []byte("nope") }},
		{"negative segments", func(a *store.Accepted) { a.Segments = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := msg("payments", "bad")
			tc.change(&a)
			_, err := h.s.Accept(bg, a)
			if store.CodeOf(err) != store.CodeInvalidArgument {
				t.Fatalf("Accept error = %v, want code %s", err, store.CodeInvalidArgument)
			}
		})
	}
	h.wantCounts(map[string]int{})
	if evs := h.audit(); len(evs) != 0 {
		t.Fatalf("audit = %+v, want none", evs)
	}
}

func testIdempotentRepeat(t *testing.T, h *harness) {
	a := msg("payments", "m1")
	a.IdempotencyKey = "order-42"
	h.accept(a)
	again := msg("payments", "m2") // a retry gets a fresh id from the proxy
	again.IdempotencyKey = "order-42"
	again.RequestHash = a.RequestHash
	r := h.accept(again)
	if !r.Duplicate || r.ID != "m1" || r.Status != store.StatusAccepted || !r.CreatedAt.Equal(base) {
		t.Fatalf("repeat = %+v, want duplicate of m1", r)
	}
	if _, err := h.s.Get(bg, "payments", "m2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(m2) error = %v, want ErrNotFound: a duplicate writes nothing", err)
	}
	eq(t, "outbox", pendingIDs(h.pending()), []string{"m1"})
	eq(t, "audit", h.auditKinds(), []string{"message.accepted/m1"})

	// The repeat reports the current status, not the first one.
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	r = h.accept(again)
	if !r.Duplicate || r.ID != "m1" || r.Status != store.StatusSent {
		t.Fatalf("repeat after send = %+v, want duplicate of m1 with status sent", r)
	}
}

func testIdempotencyConflict(t *testing.T, h *harness) {
	a := msg("payments", "m1")
	a.IdempotencyKey = "order-42"
	h.accept(a)
	b := msg("payments", "m2")
	b.IdempotencyKey = "order-42"
	b.RequestHash = "another request"
	_, err := h.s.Accept(bg, b)
	if store.CodeOf(err) != store.CodeIdempotencyConflict {
		t.Fatalf("Accept error = %v, want code %s", err, store.CodeIdempotencyConflict)
	}
	h.wantCounts(map[string]int{store.StatusAccepted: 1})
	eq(t, "outbox", pendingIDs(h.pending()), []string{"m1"})
	eq(t, "audit", h.auditKinds(), []string{"message.accepted/m1"})
}

func testIdempotencyScope(t *testing.T, h *harness) {
	// The same key in two apps names two requests; an empty key never deduplicates.
	a := msg("payments", "m1")
	a.IdempotencyKey = "k"
	b := msg("wallet", "m2")
	b.IdempotencyKey = "k"
	c := msg("payments", "m3")
	d := msg("payments", "m4")
	d.RequestHash = c.RequestHash
	for _, x := range []store.Accepted{a, b, c, d} {
		if r := h.accept(x); r.Duplicate || r.ID != x.ID {
			t.Fatalf("Accept(%s) = %+v, want a new message", x.ID, r)
		}
	}
	// FindIdempotent answers per app, and never for an empty key.
	for _, f := range []struct {
		app, key, want string
	}{{"payments", "k", "m1"}, {"wallet", "k", "m2"}, {"other", "k", ""}, {"payments", "", ""}, {"payments", "nope", ""}} {
		v, ok, err := h.s.FindIdempotent(bg, f.app, f.key)
		if err != nil || ok != (f.want != "") || v.ID != f.want {
			t.Fatalf("FindIdempotent(%s, %q) = %s %v %v, want %q", f.app, f.key, v.ID, ok, err, f.want)
		}
	}
	h.wantCounts(map[string]int{store.StatusAccepted: 4})
}

func testDuplicateID(t *testing.T, h *harness) {
	h.accept(msg("payments", "m1"))
	b := msg("wallet", "m1")
	b.Payload = []byte("other")
	_, err := h.s.Accept(bg, b)
	if store.CodeOf(err) != store.CodeDuplicateID {
		t.Fatalf("Accept error = %v, want code %s", err, store.CodeDuplicateID)
	}
	items := h.pending()
	if len(items) != 1 || string(items[0].Payload) != "payload-m1" {
		t.Fatalf("outbox = %+v, want the first message's row untouched", items)
	}
	eq(t, "audit", h.auditKinds(), []string{"message.accepted/m1"})
	if v := h.get("payments", "m1"); len(v.History) != 1 {
		t.Fatalf("history = %+v, want one row", v.History)
	}
}

func testOtherApp(t *testing.T, h *harness) {
	h.accept(msg("payments", "m1"))
	for _, app := range []string{"wallet", "", "payments "} {
		if _, err := h.s.Get(bg, app, "m1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(%q, m1) error = %v, want ErrNotFound", app, err)
		}
	}
	if _, err := h.s.Get(bg, "payments", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(unknown) error = %v, want ErrNotFound", err)
	}
}

func testOutboxUntilSent(t *testing.T, h *harness) {
	for _, id := range []string{"m3", "m1", "m5", "m2", "m4"} {
		h.accept(msg("payments", id))
	}
	items := h.pending()
	eq(t, "outbox", pendingIDs(items), []string{"m1", "m2", "m3", "m4", "m5"})
	for _, it := range items {
		if string(it.Payload) != "payload-"+it.MessageID {
			t.Fatalf("payload of %s = %q", it.MessageID, it.Payload)
		}
	}
	at := base.Add(time.Second)
	err := h.s.RecordSent(bg, []store.Sent{
		{MessageID: "m2", Provider: "sim", ProviderMessageID: "p2", Attempts: 1, At: at},
		{MessageID: "m4", Provider: "twilio", ProviderMessageID: "p4", Attempts: 2, At: at},
	})
	if err != nil {
		t.Fatalf("RecordSent: %v", err)
	}
	eq(t, "outbox after send", pendingIDs(h.pending()), []string{"m1", "m3", "m5"})
	h.reopen()
	eq(t, "outbox after reopen", pendingIDs(h.pending()), []string{"m1", "m3", "m5"})
	v := h.get("payments", "m4")
	if v.Status != store.StatusSent || v.Provider != "twilio" || v.ProviderMessageID != "p4" || v.Attempts != 2 || !v.UpdatedAt.Equal(at) {
		t.Fatalf("m4 = %+v, want sent via twilio/p4 after 2 attempts", v)
	}
	eq(t, "m4 history", statuses(v), []string{"accepted", "sent"})
	if e := v.History[1]; e.Provider != "twilio" || !e.At.Equal(at) || e.Seq != 2 {
		t.Fatalf("sent row = %+v", e)
	}
	h.wantCounts(map[string]int{store.StatusAccepted: 3, store.StatusSent: 2})
	kinds := h.auditKinds()
	eq(t, "last audit events", kinds[5:], []string{"message.sent/m2", "message.sent/m4"})
}

func testRecordSentTwice(t *testing.T, h *harness) {
	h.accept(msg("payments", "m1"))
	s := []store.Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1", Attempts: 1}}
	for i := 0; i < 3; i++ {
		if err := h.s.RecordSent(bg, s); err != nil {
			t.Fatalf("RecordSent #%d: %v", i+1, err)
		}
	}
	v := h.get("payments", "m1")
	eq(t, "history", statuses(v), []string{"accepted", "sent"})
	eq(t, "audit", h.auditKinds(), []string{"message.accepted/m1", "message.sent/m1"})
	if evs := h.audit(); strings.Contains(string(evs[1].Data), "possible_duplicate") {
		t.Errorf("a plain send is audited as a possible duplicate: %s", evs[1].Data)
	}

	// A second send through another provider (failover after a timeout) is recorded for receipts
	// but does not change the message.
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "m1", Provider: "twilio", ProviderMessageID: "t9"}}); err != nil {
		t.Fatal(err)
	}
	v = h.get("payments", "m1")
	if v.Provider != "sim" || v.ProviderMessageID != "p1" {
		t.Fatalf("message = %s/%s, want the first send kept", v.Provider, v.ProviderMessageID)
	}
	r, err := h.s.ApplyReceipt(bg, store.Receipt{Provider: "twilio", ProviderMessageID: "t9", Status: store.StatusDelivered})
	if err != nil || !r.Applied || r.MessageID != "m1" {
		t.Fatalf("receipt via the second provider id = %+v, %v; want applied to m1", r, err)
	}
	// Sent after delivered changes nothing.
	if err := h.s.RecordSent(bg, s); err != nil {
		t.Fatal(err)
	}
	if v := h.get("payments", "m1"); v.Status != store.StatusDelivered {
		t.Fatalf("status = %s, want delivered", v.Status)
	}
}

func testRecordSentUnknown(t *testing.T, h *harness) {
	h.accept(msg("payments", "m1"))
	err := h.s.RecordSent(bg, []store.Sent{
		{MessageID: "ghost", Provider: "sim", ProviderMessageID: "g"},
		{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"},
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RecordSent error = %v, want ErrNotFound for the unknown message", err)
	}
	if v := h.get("payments", "m1"); v.Status != store.StatusSent {
		t.Fatalf("m1 status = %s, want sent: the known message is recorded anyway", v.Status)
	}
	eq(t, "outbox", pendingIDs(h.pending()), []string{})
	err = h.s.RecordSent(bg, []store.Sent{{MessageID: "m1", Provider: "", ProviderMessageID: "p"}})
	if store.CodeOf(err) != store.CodeInvalidArgument {
		t.Fatalf("RecordSent without provider error = %v, want invalid_argument", err)
	}
}

// testAmbiguousOutcomesAudited records a send after another provider's lost answer and a failure
// after one: the audit events must say that the message may have gone out twice, or at all.
func testAmbiguousOutcomesAudited(t *testing.T, h *harness) {
	h.accept(msg("payments", "m1"))
	h.accept(msg("payments", "m2"))
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "m1", Provider: "b", ProviderMessageID: "p1", Attempts: 3, PossibleDuplicate: true}}); err != nil {
		t.Fatal(err)
	}
	if err := h.s.RecordFailed(bg, []store.Failed{{MessageID: "m2", Provider: "a", Code: "provider_timeout", Attempts: 8, MaybeDelivered: true}}); err != nil {
		t.Fatal(err)
	}
	evs := h.audit()
	eq(t, "audit", h.auditKinds(), []string{"message.accepted/m1", "message.accepted/m2", "message.sent/m1", "message.failed/m2"})
	if !strings.Contains(string(evs[2].Data), `"possible_duplicate":true`) {
		t.Errorf("sent event = %s; want possible_duplicate", evs[2].Data)
	}
	if !strings.Contains(string(evs[3].Data), `"maybe_delivered":true`) {
		t.Errorf("failed event = %s; want maybe_delivered", evs[3].Data)
	}
}

func testRecordFailed(t *testing.T, h *harness) {
	h.accept(msg("payments", "m1"))
	h.accept(msg("payments", "m2"))
	h.accept(msg("payments", "m3"))
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "m3", Provider: "sim", ProviderMessageID: "p3"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.ApplyReceipt(bg, store.Receipt{Provider: "sim", ProviderMessageID: "p3", Status: store.StatusDelivered}); err != nil {
		t.Fatal(err)
	}
	at := base.Add(time.Minute)
	err := h.s.RecordFailed(bg, []store.Failed{
		{MessageID: "m1", Provider: "sim", Code: "no_route", Attempts: 3, At: at},
		{MessageID: "m3", Code: "late"}, // already delivered: unchanged
	})
	if err != nil {
		t.Fatalf("RecordFailed: %v", err)
	}
	v := h.get("payments", "m1")
	if v.Status != store.StatusFailed || v.Attempts != 3 || v.Provider != "sim" {
		t.Fatalf("m1 = %+v, want failed after 3 attempts", v)
	}
	last := v.History[len(v.History)-1]
	if last.Status != store.StatusFailed || last.Code != "no_route" || !last.At.Equal(at) {
		t.Fatalf("last history row = %+v, want failed with code no_route", last)
	}
	if v := h.get("payments", "m3"); v.Status != store.StatusDelivered || len(v.History) != 3 {
		t.Fatalf("m3 = %s with %d rows, want delivered untouched", v.Status, len(v.History))
	}
	eq(t, "outbox", pendingIDs(h.pending()), []string{"m2"})
	// Failing again changes nothing.
	if err := h.s.RecordFailed(bg, []store.Failed{{MessageID: "m1", Code: "again"}}); err != nil {
		t.Fatal(err)
	}
	if v := h.get("payments", "m1"); len(v.History) != 2 {
		t.Fatalf("history = %v, want no second failed row", statuses(v))
	}
	if err := h.s.RecordFailed(bg, []store.Failed{{MessageID: "ghost", Code: "x"}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RecordFailed(ghost) error = %v, want ErrNotFound", err)
	}
	h.wantCounts(map[string]int{store.StatusAccepted: 1, store.StatusFailed: 1, store.StatusDelivered: 1})
	n := 0
	for _, e := range h.audit() {
		if e.Kind == store.AuditFailed && e.MessageID == "m1" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d message.failed events for m1, want 1", n)
	}
}

func testRecordRetry(t *testing.T, h *harness) {
	h.accept(msg("payments", "m1"))
	next := base.Add(30 * time.Second)
	if err := h.s.RecordRetry(bg, "m1", 1, next, "provider_timeout", nil); err != nil {
		t.Fatalf("RecordRetry: %v", err)
	}
	if items := h.pending(); len(items) != 1 || len(items[0].MaybeSent) != 0 {
		t.Fatalf("outbox = %+v, want nothing maybe sent", items)
	}
	// A Send without a known result: the row keeps who may have the message, for a resend after a restart.
	if err := h.s.RecordRetry(bg, "m1", 2, next, "provider_timeout", []string{"sim-b", "sim_a"}); err != nil {
		t.Fatalf("RecordRetry: %v", err)
	}
	items := h.pending()
	if len(items) != 1 || items[0].Attempts != 2 || !items[0].NextAttemptAt.Equal(next) {
		t.Fatalf("outbox = %+v, want attempts 2 next at %v", items, next)
	}
	eq(t, "maybe sent", items[0].MaybeSent, []string{"sim-b", "sim_a"})
	if v := h.get("payments", "m1"); v.Attempts != 2 || v.Status != store.StatusAccepted {
		t.Fatalf("message = %+v, want accepted with 2 attempts", v)
	}
	eq(t, "audit", h.auditKinds(), []string{"message.accepted/m1", "message.retry/m1", "message.retry/m1"})
	if err := h.s.RecordRetry(bg, "ghost", 1, next, "x", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RecordRetry(ghost) error = %v, want ErrNotFound", err)
	}
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.s.RecordRetry(bg, "m1", 3, next, "x", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RecordRetry after send error = %v, want ErrNotFound", err)
	}
	if v := h.get("payments", "m1"); v.Attempts != 2 {
		t.Fatalf("attempts = %d, want 2 (a refused retry changes nothing)", v.Attempts)
	}
}

func testReceiptsOnce(t *testing.T, h *harness) {
	h.accept(msg("payments", "m1"))
	h.accept(msg("wallet", "m2"))
	if err := h.s.RecordSent(bg, []store.Sent{
		{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"},
		{MessageID: "m2", Provider: "sim", ProviderMessageID: "p2"},
	}); err != nil {
		t.Fatal(err)
	}
	at := base.Add(5 * time.Second)
	before := time.Now()
	steps := []struct {
		r    store.Receipt
		want store.ReceiptResult
	}{
		{store.Receipt{Provider: "sim", ProviderMessageID: "p1", Status: "delivered", At: at},
			store.ReceiptResult{MessageID: "m1", App: "payments", Status: "delivered", Applied: true}},
		{store.Receipt{Provider: "sim", ProviderMessageID: "p1", Status: "delivered"},
			store.ReceiptResult{MessageID: "m1", App: "payments", Status: "delivered", Applied: false}},
		{store.Receipt{Provider: "sim", ProviderMessageID: "p1", Status: "failed", Code: "late"},
			store.ReceiptResult{MessageID: "m1", App: "payments", Status: "delivered", Applied: false}},
		{store.Receipt{Provider: "sim", ProviderMessageID: "p2", Status: "undeliverable", Code: "absent"},
			store.ReceiptResult{MessageID: "m2", App: "wallet", Status: "undeliverable", Applied: true}},
	}
	for i, st := range steps {
		got, err := h.s.ApplyReceipt(bg, st.r)
		if err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		eq(t, fmt.Sprintf("receipt %d", i), got, st.want)
	}
	after := time.Now()
	v := h.get("payments", "m1")
	eq(t, "m1 history", statuses(v), []string{"accepted", "sent", "delivered"})
	// The history is timed by the store's clock, not by the time the provider put on the receipt.
	if e := v.History[2]; e.At.Before(before) || e.At.After(after) || e.Provider != "sim" {
		t.Fatalf("delivered row = %+v, want provider sim at the store's time in [%v, %v]", e, before, after)
	}
	if v := h.get("wallet", "m2"); v.History[2].Code != "absent" {
		t.Fatalf("undeliverable row = %+v, want code absent", v.History[2])
	}
	kinds := h.auditKinds()
	eq(t, "receipt audit", kinds[len(kinds)-2:], []string{"message.delivered/m1", "message.undeliverable/m2"})
	_, err := h.s.ApplyReceipt(bg, store.Receipt{Provider: "sim", ProviderMessageID: "unknown", Status: "delivered"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown receipt error = %v, want ErrNotFound", err)
	}
	// Provider message ids are per provider.
	_, err = h.s.ApplyReceipt(bg, store.Receipt{Provider: "twilio", ProviderMessageID: "p1", Status: "delivered"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("receipt from another provider error = %v, want ErrNotFound", err)
	}
}

func testReceiptAfterReopen(t *testing.T, h *harness) {
	h.accept(msg("payments", "m1"))
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	h.reopen() // no cache survives: correlation comes from the database
	r, err := h.s.ApplyReceipt(bg, store.Receipt{Provider: "sim", ProviderMessageID: "p1", Status: "failed", Code: "blocked"})
	if err != nil || !r.Applied || r.MessageID != "m1" || r.App != "payments" {
		t.Fatalf("ApplyReceipt = %+v, %v; want applied to m1", r, err)
	}
	h.reopen()
	r, err = h.s.ApplyReceipt(bg, store.Receipt{Provider: "sim", ProviderMessageID: "p1", Status: "delivered"})
	if err != nil || r.Applied || r.Status != store.StatusFailed {
		t.Fatalf("repeat after reopen = %+v, %v; want not applied, status failed", r, err)
	}
}

func testReceiptBadInput(t *testing.T, h *harness) {
	for _, r := range []store.Receipt{
		{Provider: "sim", ProviderMessageID: "p1", Status: "sent"},
		{Provider: "sim", ProviderMessageID: "p1", Status: ""},
		{Provider: "", ProviderMessageID: "p1", Status: "delivered"},
		{Provider: "sim", ProviderMessageID: "", Status: "delivered"},
	} {
		if _, err := h.s.ApplyReceipt(bg, r); store.CodeOf(err) != store.CodeInvalidArgument {
			t.Errorf("ApplyReceipt(%+v) error = %v, want invalid_argument", r, err)
		}
	}
}

func testRefuse(t *testing.T, h *harness) {
	at := base.Add(time.Hour)
	if err := h.s.Refuse(bg, store.Refused{MessageID: "r1", App: "payments", Data: []byte(`{"code":"sender_not_registered"}`), At: at}); err != nil {
		t.Fatalf("Refuse: %v", err)
	}
	if err := h.s.Refuse(bg, store.Refused{App: "payments"}); err != nil {
		t.Fatalf("Refuse without id: %v", err)
	}
	if err := h.s.Refuse(bg, store.Refused{App: "payments", Data: []byte("{")}); store.CodeOf(err) != store.CodeInvalidArgument {
		t.Fatalf("Refuse with bad JSON error = %v, want invalid_argument", err)
	}
	h.reopen()
	evs := h.audit()
	if len(evs) != 2 || evs[0].Kind != store.AuditRefused || evs[0].MessageID != "r1" || evs[0].App != "payments" ||
		!evs[0].At.Equal(at) || !jsonEqual(evs[0].Data, []byte(`{"code":"sender_not_registered"}`)) {
		t.Fatalf("audit = %+v, want the refusal", evs)
	}
	if evs[1].MessageID != "" || !jsonEqual(evs[1].Data, []byte(`{}`)) || evs[1].Seq <= evs[0].Seq {
		t.Fatalf("second event = %+v", evs[1])
	}
	if _, err := h.s.Get(bg, "payments", "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused message must not be stored: %v", err)
	}
	h.wantCounts(map[string]int{})
}

func testCancelled(t *testing.T, h *harness) {
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := h.s.Accept(ctx, msg("payments", "m1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept error = %v, want context.Canceled", err)
	}
	h.wantCounts(map[string]int{})
}

func testGroupCommit(t *testing.T, h *harness) {
	const callers, each = 64, 8
	before := h.s.Commits()
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				a := msg("payments", fmt.Sprintf("c%02d-%d", c, i))
				a.IdempotencyKey = a.ID
				if _, err := h.s.Accept(bg, a); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Accept: %v", err)
	}
	commits := h.s.Commits() - before
	h.reopen()
	h.wantCounts(map[string]int{store.StatusAccepted: callers * each})
	if n := len(h.pending()); n != callers*each {
		t.Fatalf("outbox has %d rows, want %d", n, callers*each)
	}
	if commits == 0 || commits > callers*each/4 {
		t.Fatalf("%d ops took %d commits, want far fewer commits than ops", callers*each, commits)
	}
	t.Logf("%d ops in %d commits", callers*each, commits)
}

func testMixedOutcomes(t *testing.T, h *harness) {
	// Conflicting and valid requests race; each caller gets its own outcome.
	const n = 64
	for i := 0; i < n; i += 2 {
		a := msg("payments", fmt.Sprintf("seed-%02d", i))
		a.IdempotencyKey = fmt.Sprintf("key-%02d", i)
		h.accept(a)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := msg("payments", fmt.Sprintf("new-%02d", i))
			a.IdempotencyKey = fmt.Sprintf("key-%02d", i) // even keys exist with another hash
			_, errs[i] = h.s.Accept(bg, a)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && store.CodeOf(err) != store.CodeIdempotencyConflict {
			t.Errorf("caller %d error = %v, want idempotency_conflict", i, err)
		}
		if i%2 == 1 && err != nil {
			t.Errorf("caller %d error = %v, want success", i, err)
		}
	}
	h.wantCounts(map[string]int{store.StatusAccepted: n})
	if got := len(h.audit()); got != n {
		t.Fatalf("%d audit events, want %d", got, n)
	}
}

func testCloseDrains(t *testing.T, h *harness) {
	s := h.s
	var mu sync.Mutex
	var ok []string
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; ; i++ {
				id := fmt.Sprintf("c%02d-%04d", c, i)
				_, err := s.Accept(bg, msg("payments", id))
				if err != nil {
					if !errors.Is(err, store.ErrClosed) {
						t.Errorf("Accept during Close: %v, want ErrClosed", err)
					}
					return
				}
				mu.Lock()
				ok = append(ok, id)
				mu.Unlock()
			}
		}()
	}
	close(start)
	for {
		mu.Lock()
		n := len(ok)
		mu.Unlock()
		if n >= 64 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Accept(bg, msg("payments", "late")); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Accept after Close error = %v, want ErrClosed", err)
	}
	if _, err := s.Get(bg, "payments", ok[0]); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close error = %v, want ErrClosed", err)
	}
	if err := s.RecordSent(bg, []store.Sent{{MessageID: ok[0], Provider: "sim", ProviderMessageID: "p"}}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("RecordSent after Close error = %v, want ErrClosed", err)
	}
	h.s = h.mustOpen()
	for _, id := range ok {
		if _, err := h.s.Get(bg, "payments", id); err != nil {
			t.Fatalf("acknowledged message %s lost across Close: %v", id, err)
		}
	}
}
