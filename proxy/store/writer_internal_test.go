package store

import (
	"context"
	"path/filepath"
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
