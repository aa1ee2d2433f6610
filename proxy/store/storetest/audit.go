package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// AuditDB is a fresh database for the audit trail suite, with hooks that reach past the store the
// way an attacker with database access would.
type AuditDB struct {
	// Open opens the database; every store it returns implements store.AuditTrail and uses Keys.
	Open Opener
	// Keys is the region keyring the stores are opened with.
	Keys *audit.Keyring
	// SetData overwrites the data of audit record seq with raw SQL.
	SetData func(ctx context.Context, seq int64, data string) error
	// DeleteFrom deletes the audit records with seq >= from with raw SQL.
	DeleteFrom func(ctx context.Context, from int64) error
}

// AuditFactory makes a fresh, empty database for one test.
type AuditFactory func(t *testing.T) AuditDB

// RunAudit runs the audit trail conformance tests: hash chaining across grouped and failing writes,
// tamper and truncation detection, retention purges, erasure and lookups by recipient.
func RunAudit(t *testing.T, newDB AuditFactory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *auditHarness)
	}{
		{"ChainVerifiesAfterMixedWrites", testChainMixed},
		{"TamperedRowIsNamed", testTamper},
		{"DeletionAfterCheckpointDetected", testTruncation},
		{"PurgeKeepsVerification", testPurge},
		{"PurgeTakesSentMessagesWithoutReceipt", testPurgeSentWithoutReceipt},
		{"ReceiptTimedByStoreClock", testReceiptStoreClock},
		{"ErasureShredsPersonalData", testErasure},
		{"ErasureMasksMessageBodies", testErasureMasksBodies},
		{"ErasureAndItsEventAreOneUnit", testErasureOneUnit},
		{"EventAtUnixEpochVerifies", testEventAtEpoch},
		{"AuditRangeByRecipient", testRangeByRecipient},
		{"OptOutAndConsentEventsByRecipient", testRecipientEventsByRecipient},
		{"OutboxPayloadSealedAndOpened", testOutboxSealed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			h := &auditHarness{harness: harness{t: t, open: db.Open}, db: db}
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

type auditHarness struct {
	harness
	db AuditDB
}

func (h *auditHarness) trail() store.AuditTrail {
	h.t.Helper()
	tr, ok := h.s.(store.AuditTrail)
	if !ok {
		h.t.Fatalf("%T does not implement store.AuditTrail", h.s)
	}
	return tr
}

func (h *auditHarness) verify() audit.Report {
	h.t.Helper()
	rep, err := h.trail().VerifyAudit(bg, h.db.Keys)
	if err != nil {
		h.t.Fatalf("VerifyAudit: %v", err)
	}
	return rep
}

func (h *auditHarness) wantVerified() audit.Report {
	h.t.Helper()
	rep := h.verify()
	if !rep.OK() {
		h.t.Fatalf("VerifyAudit problem: %+v (report %+v)", rep.Problem, rep)
	}
	return rep
}

func (h *auditHarness) checkpoint(at time.Time) audit.Checkpoint {
	h.t.Helper()
	cp, err := h.trail().WriteCheckpoint(bg, at)
	if err != nil {
		h.t.Fatalf("WriteCheckpoint: %v", err)
	}
	return cp
}

const (
	numC = "+4915123456789"
	numD = "+12025550143"
)

// personal is the proxy's sealed part of a message event.
func personal(to, body string) []byte {
	b, _ := json.Marshal(map[string]string{"to": to, "body": body})
	return b
}

// sealedMsg is a message to a real recipient, with its personal part.
func sealedMsg(app, id, to string) store.Accepted {
	a := msg(app, id)
	a.To, a.ToHash = to, ""
	a.Personal = personal(to, "Your code is 482913 for "+id)
	return a
}

func testChainMixed(t *testing.T, h *auditHarness) {
	h.accept(sealedMsg("pay", "m0", numA))
	if err := h.trail().AppendEvent(bg, store.AuditAppend{Kind: store.AuditPolicyChanged, Data: []byte(`{"rev":"r2"}`)}); err != nil {
		t.Fatalf("AppendEvent: %v", err)
	}
	// Concurrent writes, some failing inside a grouped batch: a repeated id fails the set-based pass,
	// which the writer undoes and reruns one by one (the chain must follow the rollback).
	var wg sync.WaitGroup
	errs := make([]error, 24)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 4 {
			case 0:
				_, errs[i] = h.s.Accept(bg, sealedMsg("pay", "m0", numB)) // duplicate id: fails
			case 1:
				_, errs[i] = h.s.Accept(bg, sealedMsg("pay", fmt.Sprintf("c%02d", i), numB))
			case 2:
				errs[i] = h.s.Refuse(bg, store.Refused{App: "pay", To: numC, Personal: personal(numC, "hi"), Data: []byte(`{"code":"x"}`)})
			case 3:
				_, errs[i] = h.s.AddOptOut(bg, optOut("pay", fmt.Sprintf("+659000%04d", i), "pay"))
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%4 == 0 {
			if store.CodeOf(err) != store.CodeDuplicateID {
				t.Fatalf("duplicate accept %d: %v, want duplicate_id", i, err)
			}
		} else if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "c01", Provider: "sim", ProviderMessageID: "p1", At: base}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.ApplyReceipt(bg, store.Receipt{Provider: "sim", ProviderMessageID: "p1", Status: store.StatusDelivered, At: base}); err != nil {
		t.Fatal(err)
	}
	if err := h.s.RecordFailed(bg, []store.Failed{{MessageID: "c05", Code: "no_route", At: base}}); err != nil {
		t.Fatal(err)
	}
	if err := h.s.RecordRetry(bg, "c09", 1, base.Add(time.Minute), "timeout", nil); err != nil {
		t.Fatal(err)
	}
	h.checkpoint(base.Add(time.Hour))
	rep := h.wantVerified()
	n := int64(len(h.audit()))
	if rep.Records != n || rep.FirstSeq != 1 || rep.LastSeq != n || rep.CheckpointsMatched != 1 || rep.Unanchored != 0 {
		t.Fatalf("report = %+v, want %d records from seq 1, all anchored by the checkpoint", rep, n)
	}
	// The chain resumes after a reopen.
	h.reopen()
	h.accept(sealedMsg("pay", "after", numA))
	rep = h.wantVerified()
	if rep.Records != n+1 || rep.Unanchored != 1 {
		t.Fatalf("report after reopen = %+v, want %d records, 1 unanchored", rep, n+1)
	}
}

func testTamper(t *testing.T, h *auditHarness) {
	for i := range 5 {
		h.accept(sealedMsg("pay", fmt.Sprintf("t%d", i), numA))
	}
	h.checkpoint(base.Add(time.Hour))
	h.wantVerified()
	if err := h.db.SetData(bg, 3, `{"to":"+65****4321","category":"marketing"}`); err != nil {
		t.Fatalf("tamper: %v", err)
	}
	rep := h.verify()
	if rep.Problem == nil || rep.Problem.Seq != 3 || rep.Problem.Code != audit.CodeHashMismatch {
		t.Fatalf("problem = %+v, want seq 3 %s", rep.Problem, audit.CodeHashMismatch)
	}
}

func testTruncation(t *testing.T, h *auditHarness) {
	for i := range 10 {
		h.accept(sealedMsg("pay", fmt.Sprintf("d%d", i), numA))
	}
	h.checkpoint(base.Add(time.Hour))
	if err := h.db.DeleteFrom(bg, 8); err != nil {
		t.Fatalf("delete: %v", err)
	}
	rep := h.verify()
	if rep.Problem == nil || rep.Problem.Seq != 8 || rep.Problem.Code != audit.CodeTruncated {
		t.Fatalf("problem = %+v, want seq 8 %s", rep.Problem, audit.CodeTruncated)
	}
}

// testReceiptStoreClock checks that a receipt dated by a provider's wrong clock does not decide
// updated_at, the event's time or retention: they follow the store's clock, and the provider's time
// is kept in the event's data.
func testReceiptStoreClock(t *testing.T, h *auditHarness) {
	a := sealedMsg("pay", "m1", numA)
	a.CreatedAt = time.Now()
	h.accept(a)
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	providerAt := time.Now().AddDate(-2, 0, 0)
	before := time.Now()
	r, err := h.s.ApplyReceipt(bg, store.Receipt{Provider: "sim", ProviderMessageID: "p1", Status: store.StatusDelivered, At: providerAt})
	if err != nil || !r.Applied {
		t.Fatalf("ApplyReceipt = %+v, %v; want applied", r, err)
	}
	after := time.Now()
	inWindow := func(what string, at time.Time) {
		t.Helper()
		if at.Before(before) || at.After(after) {
			t.Fatalf("%s = %v, want the store's time in [%v, %v], not the provider's %v", what, at, before, after, providerAt)
		}
	}
	v := h.get("pay", "m1")
	inWindow("updated_at", v.UpdatedAt)
	inWindow("delivered history entry", v.History[len(v.History)-1].At)
	evs := h.audit()
	ev := evs[len(evs)-1]
	if ev.Kind != store.AuditDelivered {
		t.Fatalf("last event = %s, want %s", ev.Kind, store.AuditDelivered)
	}
	inWindow("event at", ev.At)
	var data struct {
		ProviderAt int64 `json:"provider_at"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil || data.ProviderAt != providerAt.UnixNano() {
		t.Fatalf("event data %s: provider_at = %d (%v), want the provider's time %d", ev.Data, data.ProviderAt, err, providerAt.UnixNano())
	}
	// A purge a day from now under the default retention (400 days) keeps the message and its event.
	res, err := h.trail().Purge(bg, store.PurgePolicy{Now: time.Now().Add(24 * time.Hour), Default: 400 * 24 * time.Hour})
	if err != nil || res.Messages != 0 || res.Events != 0 {
		t.Fatalf("Purge = %+v, %v; want nothing deleted", res, err)
	}
	if _, err := h.s.Get(bg, "pay", "m1"); err != nil {
		t.Fatalf("a message delivered a moment ago is gone after the purge: %v", err)
	}
	h.wantVerified()
}

func testPurge(t *testing.T, h *auditHarness) {
	year := 365 * 24 * time.Hour
	// Old messages: three marketing ones delivered, then one transaction message kept longer.
	for i := range 3 {
		a := sealedMsg("pay", fmt.Sprintf("old%d", i), numA)
		a.Category = "marketing"
		h.accept(a)
		if err := h.s.RecordFailed(bg, []store.Failed{{MessageID: a.ID, Code: "no_route", At: base}}); err != nil {
			t.Fatal(err)
		}
	}
	tx := sealedMsg("pay", "oldtx", numA)
	tx.Category = "transaction"
	h.accept(tx)
	if err := h.s.RecordFailed(bg, []store.Failed{{MessageID: tx.ID, Code: "no_route", At: base}}); err != nil {
		t.Fatal(err)
	}
	recent := sealedMsg("pay", "recent", numB)
	recent.CreatedAt = base.Add(year + 180*24*time.Hour)
	h.accept(recent)
	h.checkpoint(base.Add(time.Hour))
	res, err := h.trail().Purge(bg, store.PurgePolicy{Now: base.Add(2 * year), Default: year,
		PerCategory: map[string]time.Duration{"transaction": 7 * year}, BatchSize: 2})
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	// Six marketing events go (accepted + failed each); the transaction message's events stop the
	// purge of events; the three final marketing messages go.
	if res.Events != 6 || res.Messages != 3 || res.Batches < 5 {
		t.Fatalf("Purge = %+v, want 6 events and 3 messages in batches of 2", res)
	}
	rep := h.wantVerified()
	if rep.FirstSeq != 7 {
		t.Fatalf("report = %+v, want the trail to start at seq 7", rep)
	}
	if _, err := h.s.Get(bg, "pay", "old0"); err == nil {
		t.Fatal("a purged message is still stored")
	}
	for _, id := range []string{"oldtx", "recent"} {
		h.get("pay", id)
	}
	if _, err := h.trail().Purge(bg, store.PurgePolicy{Now: base, Default: 30 * 24 * time.Hour}); store.CodeOf(err) != store.CodeInvalidArgument {
		t.Fatalf("Purge with 30 days retention = %v, want invalid_argument", err)
	}
	// Everything expired: the trail is emptied, and what comes next still verifies.
	res, err = h.trail().Purge(bg, store.PurgePolicy{Now: base.Add(20 * year), Default: year})
	if err != nil || res.Events != 3 || res.Messages != 1 {
		t.Fatalf("second Purge = %+v, %v; want the 3 remaining events and the final transaction message", res, err)
	}
	h.wantVerified()
	h.reopen()
	h.accept(sealedMsg("pay", "new", numA))
	if rep := h.wantVerified(); rep.Records != 1 || rep.FirstSeq != 10 {
		t.Fatalf("report after a full purge = %+v, want one record at seq 10", rep)
	}
}

// testPurgeSentWithoutReceipt: a message sent but never confirmed by a receipt is purged with its
// events once its retention has passed, not kept for ever with its body and masked number (which
// an erasure, finding it through its events, could then no longer reach); one still waiting in the
// outbox is kept.
func testPurgeSentWithoutReceipt(t *testing.T, h *auditHarness) {
	year := 365 * 24 * time.Hour
	h.accept(sealedMsg("pay", "sent1", numA))
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "sent1", Provider: "sim", ProviderMessageID: "p-sent1"}}); err != nil {
		t.Fatal(err)
	}
	h.accept(sealedMsg("pay", "queued1", numB))
	res, err := h.trail().Purge(bg, store.PurgePolicy{Now: time.Now().Add(2 * year), Default: year})
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if res.Messages != 1 {
		t.Fatalf("Purge = %+v, want the sent message purged", res)
	}
	if _, err := h.s.Get(bg, "pay", "sent1"); err == nil {
		t.Error("a sent message past its retention is still stored")
	}
	h.get("pay", "queued1")
	h.wantVerified()
}

func testErasure(t *testing.T, h *auditHarness) {
	if _, err := h.s.AddOptOut(bg, optOut("pay", numA, store.ScopeAll)); err != nil {
		t.Fatal(err)
	}
	h.accept(sealedMsg("pay", "e1", numA))
	h.accept(sealedMsg("pay", "e2", numB))
	recs, err := h.trail().AuditRange(bg, store.AuditQuery{Recipient: numA})
	// The opt-out's event is the subject's too; it seals nothing, so it names no data key.
	if err != nil || len(recs) != 2 || recs[0].Kind != store.AuditOptOutAdded || recs[0].KeyID != "" {
		t.Fatalf("AuditRange = %+v, %v; want the opt-out's event, then e1's", recs, err)
	}
	recs = recs[1:]
	if recs[0].MessageID != "e1" || recs[0].KeyID != h.db.Keys.ActiveDataKeyID() {
		t.Fatalf("AuditRange = %+v; want e1's event with the active data key", recs)
	}
	pt, err := h.trail().OpenPersonal(bg, recs[0])
	if err != nil || !strings.Contains(string(pt), numA) {
		t.Fatalf("OpenPersonal = %q, %v; want the recipient", pt, err)
	}
	res, err := h.trail().EraseSubject(bg, numA, "dpo@example.com")
	if err != nil || !res.Existed || res.Seq == 0 {
		t.Fatalf("EraseSubject = %+v, %v", res, err)
	}
	if _, err := h.trail().OpenPersonal(bg, recs[0]); audit.CodeOf(err) != audit.CodeSubjectErased {
		t.Fatalf("OpenPersonal after erasure = %v, want subject_erased", err)
	}
	rep := h.wantVerified()
	if rep.LastSeq != res.Seq {
		t.Fatalf("report = %+v, want the erasure event last", rep)
	}
	erased, err := h.trail().AuditRange(bg, store.AuditQuery{AfterSeq: res.Seq - 1, Limit: 1})
	if err != nil || len(erased) != 1 || erased[0].Kind != store.AuditSubjectErased || erased[0].SubjectRef != h.db.Keys.LookupHash(numA) ||
		len(erased[0].Sealed) != 0 || strings.Contains(string(erased[0].Data), numA) {
		t.Fatalf("erasure event = %+v, %v", erased, err)
	}
	// The erased subject's outbox row fails its message instead of being sent; the other stays.
	items := h.pending()
	if len(items) != 1 || items[0].MessageID != "e2" || string(items[0].Payload) != "payload-e2" {
		t.Fatalf("pending = %+v, want only e2 with its payload opened", items)
	}
	v := h.get("pay", "e1")
	if v.Status != store.StatusFailed || v.History[len(v.History)-1].Code != store.CodeSubjectErased {
		t.Fatalf("e1 = %s %+v, want failed with subject_erased", v.Status, v.History)
	}
	if f := h.facts(numA); !f.OptedOut("pay") {
		t.Fatal("the erased number's opt-out no longer blocks")
	}
	if res, err := h.trail().EraseSubject(bg, numD, "dpo"); err != nil || res.Existed {
		t.Fatalf("EraseSubject of an unknown number = %+v, %v; want Existed false", res, err)
	}
	if _, err := h.trail().EraseSubject(bg, "6591234567", "dpo"); store.CodeOf(err) != store.CodeInvalidArgument {
		t.Fatalf("EraseSubject of a bad number = %v, want invalid_argument", err)
	}
}

// transferMsg is a transaction message whose body a policy left in clear (mask style "none").
func transferMsg(id, to, payee string) store.Accepted {
	a := sealedMsg("pay", id, to)
	a.Category = "transaction"
	a.Body = "Your transfer of 100 SGD to " + payee + " was completed. Ref " + id
	a.Personal = personal(to, a.Body)
	return a
}

// testErasureMasksBodies checks that an erasure masks the stored body of every message to the
// subject, sent or still in the outbox, and leaves the other subjects' messages and the trail alone.
func testErasureMasksBodies(t *testing.T, h *auditHarness) {
	msgs := []store.Accepted{
		transferMsg("ta1", numA, "John Tan"),
		transferMsg("tb1", numB, "Mary Lim"),
		transferMsg("ta2", numA, "John Tan"),
	}
	for _, a := range msgs {
		h.accept(a)
	}
	// ta1 was sent; ta2 is still in the outbox.
	if err := h.s.RecordSent(bg, []store.Sent{{MessageID: "ta1", Provider: "sim", ProviderMessageID: "pta1", At: base}}); err != nil {
		t.Fatal(err)
	}
	before := map[string]store.MessageView{}
	for _, a := range msgs {
		before[a.ID] = h.get("pay", a.ID)
	}
	// check compares each message with what it was before the erasure: only the erased subject's
	// bodies change, to a full mask.
	check := func(when string) {
		t.Helper()
		for _, a := range msgs {
			v := h.get("pay", a.ID)
			want := a.Body
			if a.To == numA {
				want = sms.MaskAll(a.Body)
				if strings.Contains(v.Body, "John Tan") || strings.Contains(v.Body, "100 SGD") {
					t.Fatalf("%s: %s still holds its body in clear: %q", when, a.ID, v.Body)
				}
			}
			if v.Body != want {
				t.Fatalf("%s: %s body = %q, want %q", when, a.ID, v.Body, want)
			}
			b := before[a.ID]
			if v.ToMasked != b.ToMasked || v.ToHash != b.ToHash || v.Category != b.Category || v.Segments != b.Segments {
				t.Fatalf("%s: %s = %+v, want only its body changed from %+v", when, a.ID, v, b)
			}
		}
	}
	res, err := h.trail().EraseSubject(bg, numA, "dpo@example.com ticket 4411")
	if err != nil || !res.Existed {
		t.Fatalf("EraseSubject = %+v, %v", res, err)
	}
	check("after the erasure")
	for _, id := range []string{"ta1", "ta2", "tb1"} {
		v := h.get("pay", id)
		b := before[id]
		if v.Status != b.Status || !v.UpdatedAt.Equal(b.UpdatedAt) || len(v.History) != len(b.History) {
			t.Fatalf("%s after the erasure = %s %v %+v, want its status, time and history unchanged", id, v.Status, v.UpdatedAt, v.History)
		}
	}
	if rep := h.wantVerified(); rep.LastSeq != res.Seq {
		t.Fatalf("report = %+v, want the erasure event last", rep)
	}
	// The unsent message still fails with subject_erased instead of being sent, and stays masked.
	if items := h.pending(); len(items) != 1 || items[0].MessageID != "tb1" {
		t.Fatalf("pending = %+v, want only tb1", items)
	}
	if v := h.get("pay", "ta2"); v.Status != store.StatusFailed || v.History[len(v.History)-1].Code != store.CodeSubjectErased {
		t.Fatalf("ta2 = %s %+v, want failed with subject_erased", v.Status, v.History)
	}
	check("after the outbox sweep")
	// Erasing again is harmless.
	again, err := h.trail().EraseSubject(bg, numA, "dpo@example.com ticket 4412")
	if err != nil || again.Existed || again.Seq <= res.Seq {
		t.Fatalf("second EraseSubject = %+v, %v; want a new event and Existed false", again, err)
	}
	check("after the second erasure")
	h.wantVerified()
	h.reopen()
	check("after a reopen")
	h.wantVerified()
}

// testRecipientEventsByRecipient checks that opt-out and consent events carry their subject's
// lookup hash, so that a search by recipient (an access request, an erasure) lists them, and only
// the subject's own.
func testRecipientEventsByRecipient(t *testing.T, h *auditHarness) {
	for _, n := range []string{numA, numB} {
		if _, err := h.s.AddOptOut(bg, optOut("pay", n, "pay")); err != nil {
			t.Fatal(err)
		}
		if _, err := h.s.RecordConsent(bg, store.Consent{App: "shop", Number: n, Category: "marketing",
			Basis: store.BasisConsent, GrantedAt: base}); err != nil {
			t.Fatal(err)
		}
	}
	imp := optOut("shop", numA, "shop")
	imp.Source = store.SourceImport
	if res, err := h.s.ImportOptOuts(bg, []store.OptOut{imp, optOut("shop", numB, "shop")}); err != nil || res.Imported != 2 {
		t.Fatalf("ImportOptOuts = %+v, %v", res, err)
	}
	if n, err := h.s.RemoveOptOut(bg, "pay", numA, base.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("RemoveOptOut = %d, %v", n, err)
	}
	if n, err := h.s.WithdrawConsent(bg, "shop", numA, "marketing", base.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("WithdrawConsent = %d, %v", n, err)
	}
	want := map[string][]string{
		numA: {store.AuditOptOutAdded, store.AuditConsentRecorded, store.AuditOptOutAdded,
			store.AuditOptOutRemoved, store.AuditConsentWithdrawn},
		numB: {store.AuditOptOutAdded, store.AuditConsentRecorded, store.AuditOptOutAdded},
	}
	for _, n := range []string{numA, numB} {
		recs, err := h.trail().AuditRange(bg, store.AuditQuery{Recipient: n})
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, r := range recs {
			kinds = append(kinds, r.Kind)
			if r.SubjectRef != h.db.Keys.LookupHash(n) || len(r.Sealed) != 0 || r.MessageID != "" {
				t.Fatalf("%s: record %d %s has subject %q, %d sealed bytes, message %q", sms.MaskPhone(n), r.Seq, r.Kind,
					r.SubjectRef, len(r.Sealed), r.MessageID)
			}
			if !strings.Contains(string(r.Data), `"number":"`+sms.MaskPhone(n)+`"`) {
				t.Fatalf("%s: record %d data = %s, want the masked number", sms.MaskPhone(n), r.Seq, r.Data)
			}
		}
		if strings.Join(kinds, ",") != strings.Join(want[n], ",") {
			t.Fatalf("events of %s = %v, want %v", sms.MaskPhone(n), kinds, want[n])
		}
	}
	h.noFullNumbers(numA, numB)
	h.wantVerified()
}

func testRangeByRecipient(t *testing.T, h *auditHarness) {
	h.accept(sealedMsg("pay", "a1", numA))
	h.accept(sealedMsg("pay", "b1", numB))
	if err := h.s.Refuse(bg, store.Refused{MessageID: "a2", App: "pay", To: numA, Personal: personal(numA, "no")}); err != nil {
		t.Fatal(err)
	}
	h.accept(sealedMsg("pay", "b2", numB))
	recs, err := h.trail().AuditRange(bg, store.AuditQuery{Recipient: numA})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.MessageID)
		if r.SubjectRef != h.db.Keys.LookupHash(numA) {
			t.Fatalf("record %d has subject %q", r.Seq, r.SubjectRef)
		}
	}
	if strings.Join(ids, ",") != "a1,a2" {
		t.Fatalf("events of numA = %v, want a1,a2", ids)
	}
	first, err := h.trail().AuditRange(bg, store.AuditQuery{Recipient: numB, Limit: 1})
	if err != nil || len(first) != 1 || first[0].MessageID != "b1" {
		t.Fatalf("first page = %+v, %v; want b1", first, err)
	}
	page, err := h.trail().AuditRange(bg, store.AuditQuery{Recipient: numB, AfterSeq: first[0].Seq, Limit: 1})
	if err != nil || len(page) != 1 || page[0].MessageID != "b2" {
		t.Fatalf("second page = %+v, %v; want b2", page, err)
	}
	if byMsg, err := h.trail().AuditRange(bg, store.AuditQuery{MessageID: "b1"}); err != nil || len(byMsg) != 1 {
		t.Fatalf("AuditRange by message = %+v, %v", byMsg, err)
	}
}

func testOutboxSealed(t *testing.T, h *auditHarness) {
	a := sealedMsg("pay", "o1", numA)
	h.accept(a)
	h.reopen()
	items := h.pending()
	if len(items) != 1 || string(items[0].Payload) != "payload-o1" {
		t.Fatalf("pending = %+v, want o1 with its payload", items)
	}
	v := h.get("pay", "o1")
	if v.ToHash != h.db.Keys.LookupHash(numA) {
		t.Fatalf("ToHash = %q, want the keyring's lookup hash", v.ToHash)
	}
}

// keyGoneCtx is a request context that ends at the first look at it after the subject key of
// message id is seen destroyed (its record's KeyID empty, read outside the store's caches): a
// request timeout at the worst moment for an erasure that takes more than one transaction.
type keyGoneCtx struct {
	context.Context
	cancel context.CancelFunc
	h      *auditHarness
	id     string
}

func (c *keyGoneCtx) Err() error {
	if c.Context.Err() == nil {
		recs, err := c.h.trail().AuditRange(context.Background(), store.AuditQuery{MessageID: c.id})
		if err == nil && len(recs) > 0 && recs[0].KeyID == "" {
			c.cancel()
		}
	}
	return c.Context.Err()
}

// erasureState reports whether the subject key of message id is destroyed and how many
// "subject.erased" events the trail holds.
func (h *auditHarness) erasureState(id string) (destroyed bool, events int) {
	h.t.Helper()
	recs, err := h.trail().AuditRange(bg, store.AuditQuery{MessageID: id})
	if err != nil || len(recs) == 0 {
		h.t.Fatalf("AuditRange(%s) = %v, %v", id, recs, err)
	}
	for _, e := range h.audit() {
		if e.Kind == store.AuditSubjectErased {
			events++
		}
	}
	return recs[0].KeyID == "", events
}

// testErasureOneUnit checks that the destruction of a subject key, the masking of the subject's
// bodies and the "subject.erased" event commit together: a request context that ends as soon as the
// key is gone must not leave the key destroyed without its event.
func testErasureOneUnit(t *testing.T, h *auditHarness) {
	h.accept(sealedMsg("pay", "u1", numA))
	body := h.get("pay", "u1").Body
	// A context ended before the erasure: nothing happens.
	done, cancel := context.WithCancel(bg)
	cancel()
	if _, err := h.trail().EraseSubject(done, numA, "dpo ticket 1"); err == nil {
		t.Fatal("EraseSubject with an ended context succeeded")
	}
	if destroyed, events := h.erasureState("u1"); destroyed || events != 0 || h.get("pay", "u1").Body != body {
		t.Fatalf("after a refused erasure: key destroyed %v, %d subject.erased events, body %q; want none of it", destroyed, events, h.get("pay", "u1").Body)
	}
	// A context that ends the moment the key is seen destroyed.
	inner, cancel := context.WithCancel(bg)
	defer cancel()
	ctx := &keyGoneCtx{Context: inner, cancel: cancel, h: h, id: "u1"}
	res, err := h.trail().EraseSubject(ctx, numA, "dpo ticket 2")
	destroyed, events := h.erasureState("u1")
	masked := h.get("pay", "u1").Body != body
	if err != nil {
		if destroyed || events != 0 || masked {
			t.Fatalf("EraseSubject failed (%v) yet key destroyed %v, %d subject.erased events, body masked %v; want none of it",
				err, destroyed, events, masked)
		}
		t.Fatalf("EraseSubject = %v; the context ended only once the key was gone", err)
	}
	if !res.Existed || !destroyed || events != 1 || !masked {
		t.Fatalf("EraseSubject = %+v; key destroyed %v, %d subject.erased events, body masked %v; want all of it", res, destroyed, events, masked)
	}
	if rep := h.wantVerified(); rep.LastSeq != res.Seq {
		t.Fatalf("report = %+v, want the erasure event last (seq %d)", rep, res.Seq)
	}
	// Erasing again is harmless and recorded.
	again, err := h.trail().EraseSubject(bg, numA, "dpo ticket 3")
	if err != nil || again.Existed || again.Seq <= res.Seq {
		t.Fatalf("second EraseSubject = %+v, %v; want a new event and Existed false", again, err)
	}
	h.wantVerified()
}

// testEventAtEpoch checks that an event at exactly the Unix epoch reads back at that instant and
// verifies: a stored time of 0 is not "no time".
func testEventAtEpoch(t *testing.T, h *auditHarness) {
	epoch := time.Unix(0, 0)
	if err := h.trail().AppendEvent(bg, store.AuditAppend{Kind: store.AuditPolicyChanged, At: epoch, Data: []byte(`{"rev":"r0"}`)}); err != nil {
		t.Fatal(err)
	}
	h.accept(sealedMsg("pay", "after", numA))
	recs, err := h.trail().AuditRange(bg, store.AuditQuery{})
	if err != nil || len(recs) != 2 {
		t.Fatalf("AuditRange = %d records, %v; want 2, the first at the Unix epoch", len(recs), err)
	}
	if !recs[0].At.Equal(epoch) {
		t.Fatalf("the first event reads back at %v, want the Unix epoch", recs[0].At)
	}
	h.wantVerified()
	h.reopen()
	h.wantVerified()
}
