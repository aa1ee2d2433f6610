package sms

import "time"

// Accepted is what an app hears when its message is durable and queued for a provider.
type Accepted struct {
	ID       string
	Status   string
	Encoding Encoding
	Segments int
	// Provider is the first provider the message will be tried on.
	Provider string
	// Country is the destination's ISO code.
	Country string
	// Duplicate is true when the request repeated an Idempotency-Key and this is the original answer.
	Duplicate bool
}

// Record is one message as an app may read it back: personal fields masked, with its status history.
type Record struct {
	ID        string    `json:"id"`
	To        string    `json:"to"`
	From      string    `json:"from"`
	Country   string    `json:"country"`
	Category  Category  `json:"category"`
	Body      string    `json:"body"`
	Encoding  Encoding  `json:"encoding"`
	Segments  int       `json:"segments"`
	Status    string    `json:"status"`
	Provider  string    `json:"provider,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Metadata is what the app attached to the message, as it sent it.
	Metadata map[string]string `json:"metadata,omitempty"`
	History  []StatusChange    `json:"history"`
}

// StatusChange is one step of a message's life: accepted, sent, delivered, failed, undeliverable.
type StatusChange struct {
	Status   string    `json:"status"`
	At       time.Time `json:"at"`
	Provider string    `json:"provider,omitempty"`
	Code     string    `json:"code,omitempty"`
}

// ErrorClass reports that a validation error is the caller's fault.
func (e *Error) ErrorClass() string { return "invalid" }

// ErrorCode returns the stable code.
func (e *Error) ErrorCode() string { return e.Code }

// ErrorMessage returns the sentence for a person.
func (e *Error) ErrorMessage() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}
