package provider_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/smsproxy/smsproxy/plugins/provider"
	"github.com/smsproxy/smsproxy/plugins/simulator"
)

// fake is a scripted in-process provider.
type fake struct {
	mu      sync.Mutex
	got     []provider.SendRequest
	sendErr error
	short   bool
	caps    provider.Capabilities
	events  []provider.Event
	acks    chan error
}

func (f *fake) Capabilities(context.Context) (provider.Capabilities, error) { return f.caps, nil }

func (f *fake) Send(_ context.Context, reqs []provider.SendRequest) ([]provider.SendResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return nil, f.sendErr
	}
	f.got = append(f.got, reqs...)
	res := make([]provider.SendResult, len(reqs))
	for i, r := range reqs {
		res[i] = provider.SendResult{MessageID: r.MessageID, Accepted: i%2 == 0, ProviderMessageID: "p-" + r.MessageID}
		if i%2 == 1 {
			res[i].ErrorCode, res[i].ErrorMessage, res[i].Retryable = "throttled", "slow down", true
		}
	}
	if f.short {
		res = res[:len(res)-1]
	}
	return res, nil
}

// Receive hands every scripted event to handle once and reports handle's answer on acks.
func (f *fake) Receive(ctx context.Context, handle func(provider.Event) error) error {
	for _, e := range f.events {
		f.acks <- handle(e)
	}
	<-ctx.Done()
	return ctx.Err()
}

// connect serves impl in process over a real gRPC connection and returns the host's view of it.
func connect(t *testing.T, impl provider.Provider) provider.Provider {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		provider.PluginName: &provider.GRPCPlugin{Impl: impl},
	})
	// Closing the client stops the server through go-plugin's controller; stopping it here too
	// would race inside go-plugin.
	_ = server
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(provider.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := raw.(provider.Provider)
	if !ok {
		t.Fatalf("dispensed %T, want a provider.Provider", raw)
	}
	return p
}

func TestGRPCSendBatch(t *testing.T) {
	f := &fake{}
	p := connect(t, f)
	reqs := []provider.SendRequest{
		{MessageID: "m1", IdempotencyKey: "k1", To: "+6591234567", From: "ACME", SenderKind: "alphanumeric",
			Body: "Your code is 123456", Encoding: "GSM-7", Segments: 1, Country: "SG", Category: "otp"},
		{MessageID: "m2", IdempotencyKey: "k2", To: "+14155550100", From: "+14155550199", SenderKind: "long_code",
			Body: "Привет", Encoding: "UCS-2", Segments: 2, Country: "US", Category: "alert"},
		{MessageID: "m3"},
	}
	res, err := p.Send(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.got, reqs) {
		t.Errorf("provider got\n%+v\nwant\n%+v", f.got, reqs)
	}
	want := []provider.SendResult{
		{MessageID: "m1", Accepted: true, ProviderMessageID: "p-m1"},
		{MessageID: "m2", ProviderMessageID: "p-m2", ErrorCode: "throttled", ErrorMessage: "slow down", Retryable: true},
		{MessageID: "m3", Accepted: true, ProviderMessageID: "p-m3"},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("results\n%+v\nwant\n%+v", res, want)
	}
	if res, err := p.Send(context.Background(), nil); err != nil || len(res) != 0 {
		t.Errorf("empty batch: %v, %v", res, err)
	}
}

func TestGRPCSendErrors(t *testing.T) {
	tests := []struct {
		name      string
		f         *fake
		code      string
		retryable bool
		notSent   bool
	}{
		{"coded error keeps code and retry hint", &fake{sendErr: &provider.Error{Code: "quota", Message: "daily quota reached", Retryable: true}}, "quota", true, false},
		{"call refused as a whole keeps not sent", &fake{sendErr: &provider.Error{Code: "bad_credentials", Message: "the provider refused the credentials", NotSent: true}}, "bad_credentials", false, true},
		{"plain error", &fake{sendErr: errors.New("boom")}, provider.CodeProvider, false, false},
		{"deadline inside provider", &fake{sendErr: context.DeadlineExceeded}, provider.CodeTimeout, true, false},
		{"wrong result count", &fake{short: true}, provider.CodeProtocol, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := connect(t, tt.f)
			_, err := p.Send(context.Background(), []provider.SendRequest{{MessageID: "m1"}, {MessageID: "m2"}})
			if got := provider.ErrorCode(err); got != tt.code {
				t.Errorf("code %q (%v), want %q", got, err, tt.code)
			}
			if got := provider.IsRetryable(err); got != tt.retryable {
				t.Errorf("IsRetryable = %v, want %v", got, tt.retryable)
			}
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("%T %v is not a *provider.Error", err, err)
			}
			if pe.NotSent != tt.notSent {
				t.Errorf("NotSent = %v, want %v", pe.NotSent, tt.notSent)
			}
		})
	}
}

func TestGRPCCapabilities(t *testing.T) {
	want := provider.Capabilities{Name: "acme", MaxBatch: 250, Unicode: true, Countries: []string{"SG", "MY"}}
	p := connect(t, &fake{caps: want})
	got, err := p.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestGRPCReceiveAck checks that the provider learns the host's answer for every event, and that
// every field crosses the boundary.
func TestGRPCReceiveAck(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 123, time.UTC)
	events := []provider.Event{
		{Kind: provider.EventReceipt, ProviderMessageID: "p-1", Status: provider.StatusDelivered, At: at},
		{Kind: provider.EventReceipt, ProviderMessageID: "p-2", Status: provider.StatusFailed, ErrorCode: "absent", ErrorMessage: "subscriber absent"},
		{Kind: provider.EventInbound, From: "+6591234567", To: "ACME", Body: "STOP", At: at},
	}
	f := &fake{events: events, acks: make(chan error, len(events))}
	p := connect(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []provider.Event
	done := make(chan error, 1)
	go func() {
		done <- p.Receive(ctx, func(e provider.Event) error {
			got = append(got, e)
			if e.ProviderMessageID == "p-2" {
				return errors.New("store down")
			}
			return nil
		})
	}()
	for i, want := range []bool{true, false, true} {
		err := <-f.acks
		if (err == nil) != want {
			t.Errorf("event %d: provider's handle returned %v, want acknowledged=%v", i, err, want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Receive returned %v, want context.Canceled", err)
	}
	if len(got) != len(events) {
		t.Fatalf("host got %d events, want %d", len(got), len(events))
	}
	for i := range events {
		if !got[i].At.Equal(events[i].At) {
			t.Errorf("event %d: At %v, want %v", i, got[i].At, events[i].At)
		}
		got[i].At, events[i].At = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(got, events) {
		t.Errorf("events\n%+v\nwant\n%+v", got, events)
	}
}

// TestGRPCRedelivery uses the simulator behind the adapters: an event the host refuses comes back,
// and so does one whose stream broke before the host acknowledged it; an acknowledged one does not.
func TestGRPCRedelivery(t *testing.T) {
	sim := simulator.New()
	if err := sim.Configure([]byte(`{"redelivery_delay":"10ms","receive_window":1}`)); err != nil {
		t.Fatal(err)
	}
	p := connect(t, sim)
	res, err := p.Send(context.Background(), []provider.SendRequest{{MessageID: "m1", IdempotencyKey: "k1", To: "+6591234567"}})
	if err != nil || !res[0].Accepted {
		t.Fatalf("send: %+v, %v", res, err)
	}
	pid := res[0].ProviderMessageID

	// First stream: refuse the receipt, take it again, then hold it until the stream breaks.
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err = p.Receive(ctx, func(e provider.Event) error {
		if e.ProviderMessageID != pid {
			t.Errorf("unexpected event %+v", e)
		}
		calls++
		if calls == 1 {
			return errors.New("not now")
		}
		cancel() // The stream breaks before the ack can be sent.
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Fatalf("first stream: %v after %d calls, want canceled after 2", err, calls)
	}

	// Second stream: the unacknowledged receipt comes back; acknowledge it.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	acked := make(chan struct{})
	var once sync.Once
	go func() {
		<-acked
		// Give a wrongly repeated delivery the chance to show up before ending the stream.
		res, err := p.Send(context.Background(), []provider.SendRequest{{MessageID: "m2", IdempotencyKey: "k2", To: "+6591234568"}})
		if err != nil || !res[0].Accepted {
			t.Errorf("send: %+v, %v", res, err)
		}
	}()
	seen := map[string]int{}
	err = p.Receive(ctx, func(e provider.Event) error {
		seen[e.ProviderMessageID]++
		if e.ProviderMessageID == pid {
			once.Do(func() { close(acked) })
			return nil
		}
		// The second message's receipt comes after the first's was settled (window 1, in order).
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("second stream: %v", err)
	}
	if seen[pid] != 1 {
		t.Errorf("acknowledged receipt delivered %d times on the second stream, want 1", seen[pid])
	}
}
