package proxy

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// factsNow is a Friday, 10:00 UTC.
var factsNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestLocalTime(t *testing.T) {
	tests := []struct {
		number  string
		hour    int
		weekday int
		zone    string
	}{
		{"+6591234567", 18, 5, "Asia/Singapore"},
		{"+14155550123", 2, 5, "America/Los_Angeles"},
		{"+12125550123", 5, 5, "America/New_York"},
		{"+442071234567", 10, 5, "Europe/London"},
		{"+447911123456", 10, 5, "Europe/Guernsey"}, // Guernsey, Isle of Man, London: one offset
		{"+18005550123", 10, 5, ""},                 // toll free, every North American zone: unknown
		{"+4915123456789", 11, 5, "Europe/Berlin"},
		{"+6281234567890", 17, 5, "Asia/Jakarta"},
	}
	for _, tc := range tests {
		t.Run(tc.number, func(t *testing.T) {
			h, wd, zone := LocalTime(tc.number, factsNow)
			if h != tc.hour || wd != tc.weekday || zone != tc.zone {
				t.Fatalf("LocalTime = %d, %d, %q; want %d, %d, %q", h, wd, zone, tc.hour, tc.weekday, tc.zone)
			}
		})
	}
	// Just before midnight in Singapore it is still Friday there; just after it is Saturday.
	if h, wd, _ := LocalTime("+6591234567", time.Date(2026, 11, 27, 16, 30, 0, 0, time.UTC)); h != 0 || wd != 6 {
		t.Fatalf("16:30 UTC in Singapore = %d h on day %d, want 0 h on Saturday (6)", h, wd)
	}
}

// TestFactsListTheHoursOfEveryZone: a number whose zones disagree gets its local hour in each, so
// that quiet hours hold in all of them (Idaho's 208 spans Mountain and Pacific time: at 13:30 UTC
// in winter, 06:30 and 05:30).
func TestFactsListTheHoursOfEveryZone(t *testing.T) {
	r := newRecipientFacts(&fakeRecipients{}, 0)
	at := time.Date(2026, 12, 8, 13, 30, 0, 0, time.UTC)
	idaho, err := sms.ParsePhone("+12085550100")
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.gather(context.Background(), "pay", idaho, at)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(f.LocalHours)
	if f.TimeZone != "" || !slices.Equal(f.LocalHours, []int{5, 6}) {
		t.Errorf("Idaho number: zone %q, hours %v; want no single zone and hours [5 6]", f.TimeZone, f.LocalHours)
	}
	sg, err := sms.ParsePhone("+6591234567")
	if err != nil {
		t.Fatal(err)
	}
	if f, err = r.gather(context.Background(), "pay", sg, at); err != nil || f.TimeZone != "Asia/Singapore" || len(f.LocalHours) != 0 {
		t.Errorf("Singapore number: %+v, %v; want its zone and no other hours", f, err)
	}
}

// fakeRecipients answers RecipientFacts from a map and counts the calls.
type fakeRecipients struct {
	mu    sync.Mutex
	facts map[string]store.RecipientFacts
	calls atomic.Int64
	err   error
	// gate, when set, is waited on inside RecipientFacts after the answer is read.
	gate chan struct{}
}

func (f *fakeRecipients) RecipientFacts(_ context.Context, number string) (store.RecipientFacts, error) {
	f.calls.Add(1)
	f.mu.Lock()
	r, err := f.facts[number], f.err
	f.mu.Unlock()
	if f.gate != nil {
		<-f.gate
	}
	return r, err
}

func (f *fakeRecipients) set(number string, r store.RecipientFacts) {
	f.mu.Lock()
	f.facts[number] = r
	f.mu.Unlock()
}

func phone(t *testing.T, s string) sms.Phone {
	t.Helper()
	p, err := sms.ParsePhone(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGatherFacts(t *testing.T) {
	granted := factsNow.Add(-24 * time.Hour)
	fs := &fakeRecipients{facts: map[string]store.RecipientFacts{
		"+6591234567": {
			OptOutScopes: []string{"shop"},
			Consents: []store.Consent{
				{App: "pay", Category: "marketing", Basis: store.BasisConsent, GrantedAt: granted},
				{App: "pay", Category: "alert", Basis: store.BasisContract, GrantedAt: granted, WithdrawnAt: factsNow},
				{App: "shop", Category: "marketing", Basis: store.BasisLegitimateInterest, GrantedAt: granted},
			},
		},
		"+14155550123": {OptOutScopes: []string{store.ScopeAll}},
	}}
	r := newRecipientFacts(fs, 16)
	ctx := context.Background()
	sg, us := phone(t, "+6591234567"), phone(t, "+14155550123")

	pay, err := r.gather(ctx, "pay", sg, factsNow)
	if err != nil {
		t.Fatal(err)
	}
	if pay.OptedOut || pay.LocalHour != 18 || pay.LocalWeekday != 5 || pay.TimeZone != "Asia/Singapore" || len(pay.Consents) != 2 {
		t.Fatalf("pay's facts = %+v", pay)
	}
	if c := pay.Consents["marketing"]; c.Basis != store.BasisConsent || !c.GrantedAt.Equal(granted) || c.Withdrawn {
		t.Fatalf("marketing consent = %+v", c)
	}
	if !pay.Consents["alert"].Withdrawn {
		t.Fatal("a withdrawn consent is shown in force")
	}
	shop, _ := r.gather(ctx, "shop", sg, factsNow)
	if !shop.OptedOut || len(shop.Consents) != 1 || shop.Consents["marketing"].Basis != store.BasisLegitimateInterest {
		t.Fatalf("shop's facts = %+v", shop)
	}
	if f, _ := r.gather(ctx, "pay", us, factsNow); !f.OptedOut || f.LocalHour != 2 || f.Consents != nil {
		t.Fatalf("an opt-out of every app does not cover pay: %+v", f)
	}
	if n := fs.calls.Load(); n != 2 {
		t.Fatalf("%d store reads for two numbers, want one each (the rest from the cache)", n)
	}

	// A write through this process invalidates the number.
	fs.set("+6591234567", store.RecipientFacts{OptOutScopes: []string{"pay"}})
	if f, _ := r.gather(ctx, "pay", sg, factsNow); f.OptedOut {
		t.Fatal("the cache changed without an invalidation") // the cached answer stands until invalidated
	}
	r.invalidate("+6591234567")
	if f, _ := r.gather(ctx, "pay", sg, factsNow); !f.OptedOut || len(f.Consents) != 0 {
		t.Fatalf("after invalidation: %+v", f)
	}

	// Without the store's answer, no facts: the message must not go.
	fs.err = errors.New("disk gone")
	r.invalidateAll()
	if _, err := r.gather(ctx, "pay", sg, factsNow); err == nil {
		t.Fatal("a store failure gave facts")
	}
}

// TestGatherDoesNotCacheARacingRead checks that a read which raced with a write is not cached: it
// could hold the state from before the write.
func TestGatherDoesNotCacheARacingRead(t *testing.T) {
	fs := &fakeRecipients{facts: map[string]store.RecipientFacts{}, gate: make(chan struct{})}
	r := newRecipientFacts(fs, 16)
	sg := phone(t, "+6591234567")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.gather(context.Background(), "pay", sg, factsNow) // reads "not opted out", then waits
	}()
	for fs.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	fs.set("+6591234567", store.RecipientFacts{OptOutScopes: []string{"pay"}})
	r.invalidate("+6591234567") // the write's invalidation lands while the read is in flight
	close(fs.gate)
	<-done
	if f, _ := r.gather(context.Background(), "pay", sg, factsNow); !f.OptedOut {
		t.Fatal("a stale read was cached over a newer write")
	}
}

func BenchmarkGatherFactsHit(b *testing.B) {
	fs := &fakeRecipients{facts: map[string]store.RecipientFacts{"+6591234567": {}}}
	r := newRecipientFacts(fs, 1024)
	sg, _ := sms.ParsePhone("+6591234567")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.gather(ctx, "pay", sg, factsNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGatherFactsHitWithConsent(b *testing.B) {
	fs := &fakeRecipients{facts: map[string]store.RecipientFacts{"+6591234567": {Consents: []store.Consent{
		{App: "pay", Category: "marketing", Basis: store.BasisConsent, GrantedAt: factsNow}}}}}
	r := newRecipientFacts(fs, 1024)
	sg, _ := sms.ParsePhone("+6591234567")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.gather(ctx, "pay", sg, factsNow); err != nil {
			b.Fatal(err)
		}
	}
}
