// Package provider is the contract between smsproxy and provider plugins: the Go interface the host
// sees, the versioned handshake, and the hashicorp/go-plugin gRPC glue. Protobuf types never leave
// this package.
package provider

import (
	"context"
	"time"
)

// Provider is what the host sees of one SMS provider, whether it runs in process or as a plugin.
type Provider interface {
	// Capabilities describes the provider; the host asks once after start.
	Capabilities(ctx context.Context) (Capabilities, error)
	// Send hands a batch of messages to the provider. Results are in request order. A provider that
	// has already accepted a request with the same IdempotencyKey returns the original result and
	// does not send again. An error means no result is known for any request of the batch.
	Send(ctx context.Context, reqs []SendRequest) ([]SendResult, error)
	// Receive streams delivery receipts and inbound messages to handle until ctx ends or the stream
	// breaks. An event is acknowledged to the provider only when handle returns nil; an event that
	// was not acknowledged is delivered again, so handle must be idempotent.
	Receive(ctx context.Context, handle func(Event) error) error
}

// Capabilities describes what a provider can do.
type Capabilities struct {
	// Name is the provider's name, e.g. "simulator".
	Name string
	// MaxBatch is the largest batch Send accepts; 0 means no limit.
	MaxBatch int
	// Unicode tells whether UCS-2 bodies are accepted.
	Unicode bool
	// Countries lists ISO codes served; empty means all.
	Countries []string
}

// SendRequest is one message handed to a provider.
type SendRequest struct {
	// MessageID is smsproxy's id of the message.
	MessageID string
	// IdempotencyKey is stable for the message across retries and restarts.
	IdempotencyKey string
	To             string
	From           string
	// SenderKind is "alphanumeric", "long_code", "short_code" or "toll_free".
	SenderKind string
	Body       string
	// Encoding is "GSM-7" or "UCS-2".
	Encoding string
	Segments int
	// Country is the destination's ISO code.
	Country  string
	Category string
}

// SendResult is the provider's answer for one SendRequest.
type SendResult struct {
	MessageID string
	// Accepted is true when the provider took the message.
	Accepted bool
	// ProviderMessageID is the provider's id, used to correlate receipts.
	ProviderMessageID string
	// ErrorCode and ErrorMessage explain a refusal in the provider's terms.
	ErrorCode    string
	ErrorMessage string
	// Retryable tells whether another attempt (here or at another provider) may succeed.
	Retryable bool
}

// EventKind tells a receipt from an inbound message.
type EventKind string

// The kinds of event a provider streams back.
const (
	EventReceipt EventKind = "receipt"
	EventInbound EventKind = "inbound"
)

// Receipt statuses a provider reports.
const (
	StatusDelivered     = "delivered"
	StatusFailed        = "failed"
	StatusUndeliverable = "undeliverable"
)

// Event is a delivery receipt or an inbound message.
type Event struct {
	Kind EventKind
	// ProviderMessageID correlates a receipt with SendResult.ProviderMessageID.
	ProviderMessageID string
	// Status is one of the Status constants, for receipts.
	Status       string
	ErrorCode    string
	ErrorMessage string
	// From, To and Body are set for inbound messages.
	From string
	To   string
	Body string
	At   time.Time
}
