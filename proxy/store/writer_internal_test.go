package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestQueuedWriteAnswersDefinitively checks that a write whose context ends while its batch is
// committing reports the batch's outcome, not the context's error: a caller told "failed" for a
// message that is on disk would answer 503 and the message would still go out.
func TestQueuedWriteAnswersDefinitively(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	bg := context.Background()
	waitQueued := func(n int) {
		t.Helper()
		for len(s.gc.ops) < n {
			time.Sleep(time.Millisecond)
		}
	}

	running1, hold1 := make(chan struct{}), make(chan struct{})
	go func() { _ = s.gc.submit(bg, func() error { close(running1); <-hold1; return nil }) }() // keeps the writer busy
	<-running1

	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := s.Accept(ctx, Accepted{ID: "msg_1", App: "a", To: "+6591234567", ToMasked: "+65******67", Country: "SG",
			Sender: "PAYLINK88", SenderKind: "alphanumeric", Category: "transaction", Body: "b", Encoding: "GSM-7",
			Segments: 1, Personal: []byte(`{"to":"+6591234567","body":"b"}`), Payload: []byte(`{}`)})
		errc <- err
	}()
	waitQueued(1)
	started, hold2 := make(chan struct{}), make(chan struct{})
	go func() { _ = s.gc.submit(bg, func() error { close(started); <-hold2; return nil }) }()
	waitQueued(2)

	close(hold1) // the next batch takes the Accept and then the second holder
	<-started    // the Accept ran in this batch, which has not committed yet
	cancel()     // the app's request times out now
	close(hold2) // and the batch commits
	if err := <-errc; err != nil {
		t.Fatalf("Accept = %v, but its batch committed", err)
	}
	items, err := s.PendingOutbox(bg, 10, "")
	if err != nil || len(items) != 1 || items[0].MessageID != "msg_1" {
		t.Fatalf("outbox = %v, %v; want msg_1", items, err)
	}
}

// TestLazyWritesRideAlong checks that background writes (recording sends and receipts) wait for
// the commit an app's message needs instead of costing commits of their own, and that alone they
// still commit within lazyWait.
func TestLazyWritesRideAlong(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	// Long enough that no scheduling delay, not even under the race detector, is mistaken for it.
	const wait = 300 * time.Millisecond
	s.gc.lazyWait = wait // before the first write: the writer reads it after receiving one
	bg := context.Background()
	accept := func(id string) {
		t.Helper()
		if _, err := s.Accept(bg, Accepted{ID: id, App: "a", To: "+6591234567", ToMasked: "+65******67", Country: "SG",
			Category: "transaction", Body: "b", Personal: []byte(`{}`), Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		accept(fmt.Sprintf("m%d", i))
	}

	// Alone, a lazy write commits after about lazyWait: not at once, and not never.
	before := s.WriterStats().Commits
	start := time.Now()
	if err := s.RecordSent(bg, []Sent{{MessageID: "m0", Provider: "sim", ProviderMessageID: "p0"}}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < wait/2 || d > wait+time.Second {
		t.Errorf("a lone lazy write took %v; want about %v", d, wait)
	}
	if got := s.WriterStats().Commits - before; got != 1 {
		t.Errorf("a lone lazy write took %d commits; want 1", got)
	}

	// Lazy writes queued before an app's message share its commit, and the message does not wait
	// lazyWait for them.
	before = s.WriterStats().Commits
	var wg sync.WaitGroup
	for i := 1; i < 4; i++ {
		wg.Go(func() {
			id := fmt.Sprintf("m%d", i)
			if err := s.RecordSent(bg, []Sent{{MessageID: id, Provider: "sim", ProviderMessageID: "p" + id}}); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(wait / 3) // the writer now holds the lazy writes and waits for more
	start = time.Now()
	accept("m9")
	if d := time.Since(start); d > wait/2 {
		t.Errorf("an app's message waited %v behind lazy writes", d)
	}
	wg.Wait()
	if got := s.WriterStats().Commits - before; got != 1 {
		t.Errorf("three lazy writes and a message took %d commits; want 1", got)
	}
	for i := range 4 {
		if v, err := s.Get(bg, "a", fmt.Sprintf("m%d", i)); err != nil || v.Status != StatusSent {
			t.Errorf("m%d = %q, %v; want sent", i, v.Status, err)
		}
	}
}

// TestFactsKeyHint checks the subject key read with a recipient's facts: the Accept that follows
// uses it instead of reading the key again, and a hint read before an erasure is never used after
// it, so a message after an erasure is sealed under a new key that exists.
func TestFactsKeyHint(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	bg := context.Background()
	const to = "+6591234567"
	accept := func(id string) {
		t.Helper()
		if _, err := s.Accept(bg, Accepted{ID: id, App: "a", To: to, ToMasked: "+65******67", Country: "SG",
			Category: "transaction", Body: "b", Personal: []byte(`{"to":"` + to + `"}`), Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	opens := func(id string) error {
		t.Helper()
		recs, err := s.AuditRange(bg, AuditQuery{MessageID: id})
		if err != nil || len(recs) == 0 {
			t.Fatalf("audit of %s: %v, %v", id, recs, err)
		}
		_, err = s.OpenPersonal(bg, recs[0])
		return err
	}

	// A new subject: the facts read finds no key, the Accept creates one.
	if _, err := s.RecipientFacts(bg, to); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.trail.keys.hints.Peek(s.trail.kr.LookupHash(to)); !ok {
		t.Fatal("the facts read left no key hint")
	}
	accept("m1")
	if err := opens("m1"); err != nil {
		t.Fatalf("m1's sealed data does not open: %v", err)
	}

	// The subject has a key now; its facts are read, then it is erased before the next Accept.
	if _, err := s.RecipientFacts(bg, to); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EraseSubject(bg, to, "test"); err != nil {
		t.Fatal(err)
	}
	accept("m2")
	if err := opens("m2"); err != nil {
		t.Fatalf("m2, accepted after the erasure, was sealed under the erased key: %v", err)
	}
	if err := opens("m1"); err == nil {
		t.Fatal("m1 still opens after its subject was erased")
	}

	// A facts read that began before an erasure and ends after it leaves no hint.
	ref := s.trail.kr.LookupHash(to)
	stale := keyHint{wrapped: []byte("old"), keyID: "k", changes: s.trail.keys.readStarts()}
	if _, err := s.EraseSubject(bg, to, "test"); err != nil {
		t.Fatal(err)
	}
	s.trail.keys.hint(ref, stale)
	if _, ok := s.trail.keys.takeHint(ref); ok {
		t.Fatal("a key read before an erasure was kept as a hint after it")
	}
}
