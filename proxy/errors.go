package proxy

import (
	"time"

	"github.com/smsproxy/smsproxy/proxy/policy"
)

// Error is a refusal or failure of Submit with a stable code. Class tells the fronts how to answer:
// "refused" (policy), "limited" (a limit), "conflict" (idempotency), "not_found", "unavailable".
type Error struct {
	Class   string
	Code    string
	Message string
	Rule    string
	Retry   time.Duration
	// Reasons are every reason the policy gave, the first of which is in Code and Message.
	Reasons []policy.Reason
	err     error
}

// Error returns the code and the sentence.
func (e *Error) Error() string {
	if e.err != nil {
		return e.Code + ": " + e.Message + ": " + e.err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.err }

// ErrorClass returns the class.
func (e *Error) ErrorClass() string { return e.Class }

// ErrorCode returns the stable code.
func (e *Error) ErrorCode() string { return e.Code }

// ErrorMessage returns the sentence for a person.
func (e *Error) ErrorMessage() string { return e.Message }

// ErrorRule names the policy rule that refused the message.
func (e *Error) ErrorRule() string { return e.Rule }

// RetryAfter says when a limited request may be tried again.
func (e *Error) RetryAfter() time.Duration { return e.Retry }

func refused(reasons []policy.Reason) *Error {
	if len(reasons) == 0 {
		// A deny without a reason is a policy bug; say so rather than inventing one.
		return &Error{Class: "refused", Code: "policy_denied", Message: "The policy refused the message without a reason.", Rule: "smsproxy.decision"}
	}
	r := reasons[0]
	return &Error{Class: "refused", Code: r.Code, Message: r.Message, Rule: r.Rule, Reasons: reasons}
}

func limited(r policy.Reason, retry time.Duration) *Error {
	return &Error{Class: "limited", Code: r.Code, Message: r.Message, Rule: r.Rule, Retry: retry, Reasons: []policy.Reason{r}}
}

func conflict() *Error {
	return &Error{Class: "conflict", Code: "idempotency_conflict", Message: "This Idempotency-Key was used for a different message."}
}

// inProgress answers a request that gave up waiting for an earlier request with the same
// Idempotency-Key; retrying later replays that request's answer.
func inProgress(err error) *Error {
	return &Error{Class: "conflict", Code: "idempotency_key_in_use", Message: "A request with this Idempotency-Key is still being processed; retry shortly.", err: err}
}

func unavailable(code string, err error) *Error {
	return &Error{Class: "unavailable", Code: code, Message: "The proxy cannot take the message now; retry with the same Idempotency-Key.", err: err}
}
