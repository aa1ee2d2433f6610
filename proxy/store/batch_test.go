package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// queued runs ops in one batch of the writer, queued in the given order: it holds the writer,
// queues each op once the one before is waiting, then lets the writer go. It returns each op's error.
func queued(t *testing.T, s *SQLite, ops ...func() error) []error {
	t.Helper()
	release, held := make(chan struct{}), make(chan struct{})
	holdErr := make(chan error, 1)
	go func() {
		holdErr <- s.gc.submit(context.Background(), func() error { close(held); <-release; return nil })
	}()
	<-held
	errs := make([]error, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = op() }()
		for len(s.gc.ops) < i+1 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	close(release)
	wg.Wait()
	if err := <-holdErr; err != nil {
		t.Fatal(err)
	}
	return errs
}

func historyOf(t *testing.T, s *SQLite, app, id string) []string {
	t.Helper()
	v, err := s.Get(context.Background(), app, id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	var out []string
	for i, e := range v.History {
		if e.Seq != i+1 {
			t.Fatalf("history of %s: entry %d has seq %d", id, i, e.Seq)
		}
		out = append(out, fmt.Sprintf("%s/%s/%s", e.Status, e.Provider, e.Code))
	}
	return out
}

// TestPassFallback queues set operations together with ones whose writes clash with the database
// (an id in use, a provider message id of another message): the clash fails the pass, every
// operation runs again alone, and only the clashing ones see an error.
func TestPassFallback(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	ctx := context.Background()
	for _, id := range []string{"m1", "m2", "m3"} {
		if _, err := s.Accept(ctx, Accepted{ID: id, App: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordSent(ctx, []Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"},
		{MessageID: "m3", Provider: "sim", ProviderMessageID: "p3"}}); err != nil {
		t.Fatal(err)
	}
	before := s.Commits()
	errs := queued(t, s,
		func() error { _, err := s.Accept(ctx, Accepted{ID: "n1", App: "a"}); return err },
		func() error { _, err := s.Accept(ctx, Accepted{ID: "m1", App: "b"}); return err }, // id in use
		func() error { // p1 is m1's
			return s.RecordSent(ctx, []Sent{{MessageID: "m2", Provider: "sim", ProviderMessageID: "p1", Attempts: 2}})
		},
		func() error {
			_, err := s.ApplyReceipt(ctx, Receipt{Provider: "sim", ProviderMessageID: "p3", Status: StatusDelivered})
			return err
		},
		func() error { return s.Refuse(ctx, Refused{App: "a", MessageID: "r1"}) },
	)
	if CodeOf(errs[1]) != CodeDuplicateID {
		t.Errorf("Accept of an id in use: %v, want %s", errs[1], CodeDuplicateID)
	}
	for _, i := range []int{0, 2, 3, 4} {
		if errs[i] != nil {
			t.Errorf("op %d: %v, want success", i, errs[i])
		}
	}
	if got := s.Commits() - before; got != 2 {
		t.Errorf("commits = %d, want 2: the holder, then every queued op in one transaction", got)
	}
	// m2 is sent, but p1 still leads to m1.
	v, err := s.Get(ctx, "a", "m2")
	if err != nil || v.Status != StatusSent || v.Provider != "sim" || v.ProviderMessageID != "" || v.Attempts != 2 {
		t.Fatalf("m2 = %+v, %v; want sent via sim without a provider message id", v, err)
	}
	r, err := s.ApplyReceipt(ctx, Receipt{Provider: "sim", ProviderMessageID: "p1", Status: StatusDelivered})
	if err != nil || r.MessageID != "m1" || !r.Applied {
		t.Fatalf("receipt for p1 = %+v, %v; want applied to m1", r, err)
	}
	want := map[string][]string{
		"m1": {"accepted//", "sent/sim/", "delivered/sim/"},
		"m2": {"accepted//", "sent/sim/"},
		"m3": {"accepted//", "sent/sim/", "delivered/sim/"},
		"n1": {"accepted//"},
	}
	for id, w := range want {
		if got := historyOf(t, s, "a", id); !reflect.DeepEqual(got, w) {
			t.Errorf("history of %s = %v, want %v", id, got, w)
		}
	}
	evs, err := s.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs[5:] {
		kinds = append(kinds, e.Kind+"/"+e.MessageID)
	}
	// In queue order, with nothing of the failed Accept.
	wantKinds := []string{"message.accepted/n1", "message.sent/m2", "message.delivered/m3", "message.refused/r1", "message.delivered/m1"}
	if !reflect.DeepEqual(kinds, wantKinds) {
		t.Errorf("audit = %v, want %v", kinds, wantKinds)
	}
}

// TestPassOrder queues operations on the same messages in one batch and checks that they take
// effect in queue order, as if each had its own transaction.
func TestPassOrder(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	ctx := context.Background()
	for _, id := range []string{"m1", "m2"} {
		if _, err := s.Accept(ctx, Accepted{ID: id, App: "a", IdempotencyKey: "k" + id, RequestHash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordSent(ctx, []Sent{{MessageID: "m2", Provider: "sim", ProviderMessageID: "p2"}}); err != nil {
		t.Fatal(err)
	}
	var dup, same AcceptResult
	var rec ReceiptResult
	errs := queued(t, s,
		func() error {
			return s.RecordSent(ctx, []Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1", Attempts: 1}})
		},
		func() (err error) {
			dup, err = s.Accept(ctx, Accepted{ID: "x", App: "a", IdempotencyKey: "km1", RequestHash: "h"})
			return
		},
		func() (err error) {
			rec, err = s.ApplyReceipt(ctx, Receipt{Provider: "sim", ProviderMessageID: "p2", Status: StatusUndeliverable, Code: "absent"})
			return
		},
		func() error {
			return s.RecordFailed(ctx, []Failed{{MessageID: "m2", Code: "late"}, {MessageID: "m1", Code: "gave_up"}})
		},
		// A new key twice in one batch: the second is a repeat of the first.
		func() error {
			_, err := s.Accept(ctx, Accepted{ID: "n1", App: "a", IdempotencyKey: "new", RequestHash: "h"})
			return err
		},
		func() (err error) {
			same, err = s.Accept(ctx, Accepted{ID: "n2", App: "a", IdempotencyKey: "new", RequestHash: "h"})
			return
		},
	)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if !dup.Duplicate || dup.ID != "m1" || dup.Status != StatusSent {
		t.Errorf("repeat after the send queued before it = %+v, want m1 with status sent", dup)
	}
	if !same.Duplicate || same.ID != "n1" {
		t.Errorf("second use of a new key in the same batch = %+v, want a repeat of n1", same)
	}
	if !rec.Applied || rec.Status != StatusUndeliverable {
		t.Errorf("receipt = %+v, want applied", rec)
	}
	for id, w := range map[string][]string{
		"m1": {"accepted//", "sent/sim/", "failed//gave_up"},
		"m2": {"accepted//", "sent/sim/", "undeliverable/sim/absent"},
	} {
		if got := historyOf(t, s, "a", id); !reflect.DeepEqual(got, w) {
			t.Errorf("history of %s = %v, want %v", id, got, w)
		}
	}
	if _, err := s.Get(ctx, "a", "n2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(n2) = %v, want ErrNotFound: a repeat writes nothing", err)
	}
}

// TestRetryThenSent checks that a retry's attempt count survives a later send that gives none,
// and that retries are not part of the status history.
func TestRetryThenSent(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Accept(ctx, Accepted{ID: "m1", App: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordRetry(ctx, "m1", 3, time.Now(), "timeout", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSent(ctx, []Sent{{MessageID: "m1", Provider: "sim", ProviderMessageID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get(ctx, "a", "m1")
	if err != nil || v.Attempts != 3 || v.Status != StatusSent {
		t.Fatalf("m1 = %+v, %v; want sent with 3 attempts", v, err)
	}
	if got, want := historyOf(t, s, "a", "m1"), []string{"accepted//", "sent/sim/"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("history = %v, want %v", got, want)
	}
}

// TestLargePass sends more operations through the writer at once than one statement takes, so that
// every chunk size is used.
func TestLargePass(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	ctx := context.Background()
	const n = 3*maxChunk + 7
	var ops []func() error
	var sent []Sent
	for i := range n {
		id := fmt.Sprintf("m%04d", i)
		ops = append(ops, func() error {
			_, err := s.Accept(ctx, Accepted{ID: id, App: "a", IdempotencyKey: id, Payload: []byte(id)})
			return err
		})
		sent = append(sent, Sent{MessageID: id, Provider: "sim", ProviderMessageID: "p" + id, Attempts: 1})
	}
	for i, err := range queued(t, s, ops...) {
		if err != nil {
			t.Fatalf("Accept %d: %v", i, err)
		}
	}
	items, err := s.PendingOutbox(ctx, 2*n, "")
	if err != nil || len(items) != n || string(items[n-1].Payload) != items[n-1].MessageID {
		t.Fatalf("outbox = %d rows, %v; want %d with their payloads", len(items), err, n)
	}
	if err := s.RecordSent(ctx, sent); err != nil {
		t.Fatal(err)
	}
	var receipts []func() error
	for _, x := range sent {
		receipts = append(receipts, func() error {
			r, err := s.ApplyReceipt(ctx, Receipt{Provider: "sim", ProviderMessageID: x.ProviderMessageID, Status: StatusDelivered})
			if err == nil && (!r.Applied || r.MessageID != x.MessageID) {
				err = fmt.Errorf("receipt %+v", r)
			}
			return err
		})
	}
	for i, err := range queued(t, s, receipts...) {
		if err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
	}
	counts, err := s.CountByStatus(ctx)
	if err != nil || !reflect.DeepEqual(counts, map[string]int{StatusDelivered: n}) {
		t.Fatalf("counts = %v, %v; want %d delivered", counts, err, n)
	}
	evs, err := s.Audit(ctx, 0, 10*n)
	if err != nil || len(evs) != 3*n {
		t.Fatalf("%d audit events, %v; want %d", len(evs), err, 3*n)
	}
	if got := historyOf(t, s, "a", sent[n-1].MessageID); len(got) != 3 {
		t.Fatalf("history = %v", got)
	}
}

func TestChunkSize(t *testing.T) {
	for n := 1; n <= 3*maxChunk; n++ {
		sum, chunks := 0, 0
		for rest := n; rest > 0; chunks++ {
			c := chunkSize(rest)
			if c < 1 || c > maxChunk || c&(c-1) != 0 || c > rest {
				t.Fatalf("chunkSize(%d) = %d", rest, c)
			}
			sum += c
			rest -= c
		}
		if sum != n || chunks > n/maxChunk+7 {
			t.Fatalf("%d rows took %d chunks", n, chunks)
		}
	}
	if got := rowsSQL("A ", "(?)", " Z")(3); got != "A (?), (?), (?) Z" {
		t.Fatalf("rowsSQL = %q", got)
	}
}

// TestCheckpoint checks that the checkpointer's connection copies what the writer committed into
// the database file, and that the settings which keep checkpoints off the commit path hold.
func TestCheckpoint(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "db"), Options{})
	defer s.Close()
	ctx := context.Background()
	for i := range 20 {
		if _, err := s.Accept(ctx, Accepted{ID: fmt.Sprintf("m%d", i), App: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	frames, done, err := s.checkpoint()
	if err != nil || frames == 0 || done != frames {
		t.Fatalf("checkpoint = %d of %d frames, %v; want all of a non-empty WAL", done, frames, err)
	}
	for _, tc := range []struct{ pragma, want string }{
		{"wal_autocheckpoint", "16384"},
		{"journal_size_limit", "67108864"},
		{"cache_size", "-8192"},
	} {
		var got string
		if err := s.wconn.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil || got != tc.want {
			t.Errorf("PRAGMA %s = %s, %v; want %s", tc.pragma, got, err, tc.want)
		}
	}
}
