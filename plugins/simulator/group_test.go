package simulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsproxy/smsproxy/plugins/provider"
)

// syncWatch stands in for the ledger's fsync: it records how much of the file each fsync made
// durable, and can slow an fsync down, hold it, or fail it.
type syncWatch struct {
	l       *ledger
	count   atomic.Int64
	durable atomic.Int64 // the length of the file's prefix that the last fsync made durable

	mu    sync.Mutex
	delay time.Duration
	hold  chan struct{} // if set, the next fsync waits until it is closed
	fail  error         // if set, the next fsync fails with it
}

func watchSync(t *testing.T, s *Simulator) *syncWatch {
	t.Helper()
	l := s.ledger.Load()
	if l == nil {
		t.Fatal("no ledger")
	}
	w := &syncWatch{l: l}
	inner := l.sync
	l.sync = func() error {
		// Every byte written before the fsync starts is durable once it returns.
		l.mu.Lock()
		size := l.size
		l.mu.Unlock()
		w.mu.Lock()
		delay, hold, fail := w.delay, w.hold, w.fail
		w.hold, w.fail = nil, nil
		w.mu.Unlock()
		time.Sleep(delay)
		if hold != nil {
			<-hold
		}
		if fail != nil {
			return fail
		}
		if err := inner(); err != nil {
			return err
		}
		w.count.Add(1)
		w.durable.Store(size)
		return nil
	}
	return w
}

// durableRecords returns the sent records of the prefix of the ledger in dir that an fsync made
// durable: what a machine crash right now would leave.
func (w *syncWatch) durableRecords(t *testing.T, dir string) map[string]string {
	t.Helper()
	// Load the durable length before reading: other Sends' fsyncs may move it on meanwhile, past
	// what the read returns.
	durable := w.durable.Load()
	data, err := os.ReadFile(filepath.Join(dir, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := readRecords(bytes.NewReader(data[:durable]))
	if err != nil {
		t.Fatal(err)
	}
	sent := make(map[string]string)
	for _, r := range recs {
		if r.Op == opSent {
			sent[r.Key] = r.ProviderMessageID
		}
	}
	return sent
}

// TestGroupCommitDurableBeforeAnswer checks that concurrent Sends share fsyncs and that each
// answer comes only once its messages are in the durable part of the ledger.
func TestGroupCommitDurableBeforeAnswer(t *testing.T) {
	dir := t.TempDir()
	s := configured(t, fmt.Sprintf(`{"state_dir":%q}`, dir))
	w := watchSync(t, s)
	w.delay = 2 * time.Millisecond

	const senders, sends, size = 16, 8, 3
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for n := range sends {
				reqs := make([]provider.SendRequest, size)
				for i := range reqs {
					reqs[i] = req(fmt.Sprintf("g%d-n%d-i%d", g, n, i), "+6591000001")
				}
				res, err := s.Send(context.Background(), reqs)
				if err != nil {
					t.Error(err)
					return
				}
				durable := w.durableRecords(t, dir)
				for i, r := range res {
					if pid := durable[reqs[i].IdempotencyKey]; !r.Accepted || pid != r.ProviderMessageID {
						t.Errorf("answered %+v for %s, but the durable ledger holds %q", r, reqs[i].IdempotencyKey, pid)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := w.count.Load(); n >= senders*sends {
		t.Errorf("%d fsyncs for %d concurrent Sends; want them to share", n, senders*sends)
	}
	counts, err := ReadLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != senders*sends*size {
		t.Errorf("ledger holds %d keys, want %d", len(counts), senders*sends*size)
	}
	for k, n := range counts {
		if n != 1 {
			t.Errorf("key %s sent %d times", k, n)
		}
	}
}

// TestCrashAfterAnswerLosesNothing plays a machine crash right after concurrent Sends were
// answered: a simulator started on only the fsync'd part of the ledger knows every answered key
// and still delivers every receipt.
func TestCrashAfterAnswerLosesNothing(t *testing.T) {
	dir := t.TempDir()
	s := configured(t, fmt.Sprintf(`{"state_dir":%q}`, dir))
	w := watchSync(t, s)
	w.delay = time.Millisecond

	var (
		mu      sync.Mutex
		results = map[string]string{}
		wg      sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for n := range 5 {
				key := fmt.Sprintf("g%d-n%d", g, n)
				r := send(t, s, req(key, "+6591000001"))[0]
				mu.Lock()
				results[key] = r.ProviderMessageID
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	// No Close: the crash leaves what an fsync made durable, and nothing more.
	data, err := os.ReadFile(filepath.Join(dir, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	after := t.TempDir()
	if err := os.WriteFile(filepath.Join(after, LedgerFile), data[:w.durable.Load()], 0o600); err != nil {
		t.Fatal(err)
	}
	r := configured(t, fmt.Sprintf(`{"state_dir":%q}`, after))
	for key, pid := range results {
		if got := send(t, r, req(key, "+6591000001"))[0]; got.ProviderMessageID != pid {
			t.Errorf("after the crash %s is %+v, answered before as %s", key, got, pid)
		}
	}
	c := receive(r, nil)
	c.wait(t, len(results))
	got := map[string]int{}
	for _, e := range c.stop(t) {
		got[e.ProviderMessageID]++
	}
	for key, pid := range results {
		if got[pid] != 1 {
			t.Errorf("receipt of %s (%s) delivered %d times after the crash, want once", key, pid, got[pid])
		}
	}
}

// TestGroupCommitFailureSendsNothing fails the fsync of a group of three Sends: all three fail
// with a retryable sim_ledger error, nothing of them stays in the ledger or in memory, and the Send
// committed before them is unaffected.
func TestGroupCommitFailureSendsNothing(t *testing.T) {
	dir := t.TempDir()
	s := configured(t, fmt.Sprintf(`{"state_dir":%q}`, dir))
	w := watchSync(t, s)
	hold := make(chan struct{})
	w.hold = hold

	first := make(chan []provider.SendResult, 1)
	go func() { first <- send(t, s, req("a", "+6591000001")) }()
	waitFor(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.hold == nil }) // "a" is in its fsync.

	type outcome struct {
		res []provider.SendResult
		err error
	}
	later := make(chan outcome, 3)
	for _, key := range []string{"b", "c", "d"} {
		go func() {
			res, err := s.Send(context.Background(), []provider.SendRequest{req(key, "+6591000002")})
			later <- outcome{res, err}
		}()
	}
	waitFor(t, func() bool { s.gmu.Lock(); defer s.gmu.Unlock(); return len(s.waiting) == 3 })
	w.mu.Lock()
	w.fail = errors.New("disk on fire")
	w.mu.Unlock()
	close(hold)

	if r := <-first; !r[0].Accepted || r[0].ProviderMessageID != "sim-1" {
		t.Errorf("the Send before the failed group: %+v", r[0])
	}
	for range 3 {
		o := <-later
		var perr *provider.Error
		if provider.ErrorCode(o.err) != CodeLedger || !provider.IsRetryable(o.err) || o.res != nil || !errors.As(o.err, &perr) || !perr.NotSent {
			t.Errorf("Send in the failed group: %+v, %v; want a retryable %s error", o.res, o.err, CodeLedger)
		}
	}
	if counts, err := ReadLedger(dir); err != nil || fmt.Sprint(counts) != "map[a:1]" {
		t.Errorf("ledger after the failed group: %v, %v; want only a", counts, err)
	}
	// Retried, the keys are new to the simulator: numbering goes on from "a".
	res := send(t, s, req("b", "+6591000002"), req("c", "+6591000002"), req("d", "+6591000002"))
	for i, want := range []string{"sim-2", "sim-3", "sim-4"} {
		if res[i].ProviderMessageID != want {
			t.Errorf("retry %d: %+v, want %s", i, res[i], want)
		}
	}
	c := receive(s, nil)
	c.wait(t, 4)
	if events := c.stop(t); len(events) != 4 {
		t.Errorf("%d receipts, want 4 (one per message sent)", len(events))
	}
}

// TestConcurrentSameKey sends one idempotency key from many goroutines at once: it is sent once and
// every Send gets the same provider id.
func TestConcurrentSameKey(t *testing.T) {
	dir := t.TempDir()
	s := configured(t, fmt.Sprintf(`{"state_dir":%q}`, dir))
	watchSync(t, s).delay = time.Millisecond
	var (
		mu   sync.Mutex
		pids = map[string]int{}
		wg   sync.WaitGroup
	)
	for g := range 20 {
		wg.Go(func() {
			r := req("same", "+6591000001")
			r.MessageID = fmt.Sprint("attempt-", g)
			res := send(t, s, r)[0]
			if !res.Accepted || res.MessageID != r.MessageID {
				t.Errorf("attempt %d: %+v", g, res)
			}
			mu.Lock()
			pids[res.ProviderMessageID]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(pids) != 1 {
		t.Errorf("one key got provider ids %v, want one", pids)
	}
	if counts, err := ReadLedger(dir); err != nil || counts["same"] != 1 {
		t.Errorf("ledger %v, %v; want the key sent once", counts, err)
	}
}

// TestAcksReachLedgerWhileReceiving acknowledges a burst of receipts and checks that the acks are
// written soon, while Receive is still running, and that a restart then has nothing to deliver.
func TestAcksReachLedgerWhileReceiving(t *testing.T) {
	dir := t.TempDir()
	config := fmt.Sprintf(`{"state_dir":%q}`, dir)
	s := configured(t, config)
	const n = 300
	reqs := make([]provider.SendRequest, n)
	for i := range reqs {
		reqs[i] = req(fmt.Sprint("k", i), "+6591000001")
	}
	send(t, s, reqs...)
	c := receive(s, nil)
	c.wait(t, n)
	waitFor(t, func() bool {
		data, err := os.ReadFile(filepath.Join(dir, LedgerFile))
		return err == nil && strings.Count(string(data), `"op":"ack"`) == n
	})
	c.stop(t)

	// A crash now (no Close) loses no ack.
	data, err := os.ReadFile(filepath.Join(dir, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	after := t.TempDir()
	if err := os.WriteFile(filepath.Join(after, LedgerFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := configured(t, fmt.Sprintf(`{"state_dir":%q}`, after)); len(r.queue) != 0 {
		t.Errorf("%d events pending after every receipt was acknowledged", len(r.queue))
	}
}

// TestEarlierEventWakesReceive queues a receipt an hour away, then a reply due at once: Receive,
// asleep until the receipt, must wake up for the reply.
func TestEarlierEventWakesReceive(t *testing.T) {
	s := configured(t, `{"receipt_delay":"1h","replies":[{"to_suffix":"67","body":"STOP"}]}`)
	send(t, s, req("k1", "+6591000001"))
	c := receive(s, nil)
	time.Sleep(20 * time.Millisecond) // Receive is asleep until the receipt is due.
	send(t, s, req("k2", "+6591234567"))
	events := c.wait(t, 1)
	c.stop(t)
	if events[0].Kind != provider.EventInbound || events[0].Body != "STOP" {
		t.Errorf("got %+v, want the reply", events[0])
	}
}

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTakeWaitsForDeliveryTick checks the pacing of Receive: until hold passes, take hands out
// nothing, not even due events, and says to wait until hold; afterwards it hands out every due
// event at once.
func TestTakeWaitsForDeliveryTick(t *testing.T) {
	s := configured(t, `{}`)
	send(t, s, req("k1", "+6591000001"), req("k2", "+6591000002"))
	send(t, s, req("k3", "+6591000003"))
	hold := time.Now().Add(time.Hour)
	due, wait, wake := s.take(nil, 64, hold)
	if len(due) != 0 || wait < time.Hour-time.Minute || wake == nil {
		t.Fatalf("take before hold: %d events, wait %v, wake %v; want none, about an hour, a channel", len(due), wait, wake)
	}
	due, wait, _ = s.take(nil, 64, time.Now())
	if len(due) != 3 || wait != 0 {
		t.Fatalf("take after hold: %d events, wait %v; want 3 at once", len(due), wait)
	}
}
