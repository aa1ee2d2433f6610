// Package provider is the contract between smsproxy and provider plugins: the Go interface the host
// sees, the versioned handshake, and the hashicorp/go-plugin gRPC glue. Protobuf types never leave
// this package.
package provider

import (
	"context"
	"errors"
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
	// was not acknowledged is delivered again, so handle must be idempotent. The host may call
	// handle for several events at once, so it must be safe for concurrent use.
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

// Configurer is an optional ability of a Provider served as a plugin: Serve calls Configure with the
// host's configuration (JSON bytes) after every start of the plugin process, before any other call.
type Configurer interface {
	Configure(config []byte) error
}

// Stable error codes of the plugin machinery. A provider may use codes of its own in Error.
const (
	// CodeUnavailable means the plugin process is down, restarting or went away during the call.
	// The call may not have reached the provider; retrying it (same idempotency keys) is safe.
	CodeUnavailable = "plugin_unavailable"
	// CodeTimeout means the caller's deadline passed before the plugin answered.
	CodeTimeout = "plugin_timeout"
	// CodeClosed means the plugin was closed by the host.
	CodeClosed = "plugin_closed"
	// CodeStart means the plugin process could not be started or refused the handshake.
	CodeStart = "plugin_start_failed"
	// CodeChecksum means the plugin binary's sha256 differs from LaunchConfig.Checksum.
	CodeChecksum = "plugin_checksum_mismatch"
	// CodeInvalidConfig means the provider refused its configuration.
	CodeInvalidConfig = "invalid_config"
	// CodeNotConfigurable means the host sent configuration to a provider that takes none.
	CodeNotConfigurable = "not_configurable"
	// CodeProvider is a provider failure that carried no code of its own.
	CodeProvider = "provider_error"
	// CodeProtocol means the plugin broke the protocol, e.g. returned the wrong number of results.
	CodeProtocol = "plugin_protocol"
	// CodeBatchTooLarge means a Send batch exceeded Capabilities.MaxBatch.
	CodeBatchTooLarge = "batch_too_large"
)

// Error is a failed provider or plugin call with a stable code. Providers return it to keep the
// code and the retry hint across the plugin boundary; the host returns it for plugin failures.
type Error struct {
	// Code is stable across releases, e.g. "plugin_unavailable".
	Code string
	// Message is a sentence for a person; it must not hold a phone number, body or secret.
	Message string
	// Retryable tells whether the same call may succeed if made again.
	Retryable bool
	// NotSent tells that the provider certainly took no message of the call, so the call may go
	// elsewhere at once without risk of a duplicate. The host sets it when it made no call, as while
	// the plugin is restarting or after Close; a provider sets it when it refused the call as a whole
	// before sending anything, e.g. for bad credentials. False means the provider may have taken
	// any message of the call.
	NotSent bool
	// Err is the cause, if any; it stays in the process that created the Error.
	Err error
}

// Error returns the code and the sentence.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// NothingSent reports e.NotSent: whether the provider certainly took no message of the call. It
// lets packages that see only an error interface, such as the dispatcher, ask without importing
// this type.
func (e *Error) NothingSent() bool { return e.NotSent }

// IsRetryable reports whether err, or an error it wraps, is an *Error marked retryable: the call
// may succeed if made again, here after the plugin restarts or at another provider.
func IsRetryable(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Retryable
}

// ErrorCode returns the stable code of err if it is or wraps an *Error, and "" otherwise.
func ErrorCode(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
