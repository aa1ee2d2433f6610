package policy

import "errors"

// The stable error codes of this package.
const (
	// CodeBundle means a bundle could not be read (no policy files, unreadable data).
	CodeBundle = "policy_bundle"
	// CodeCompile means a module did not parse or the policy did not compile.
	CodeCompile = "policy_compile"
	// CodeTestFailed means one of the bundle's own Rego tests failed or raised an error.
	CodeTestFailed = "policy_test_failed"
	// CodeNoTests means the bundle has no passing Rego test (none at all, or every one skipped), so
	// nothing shows it decides as intended; the Engine does not serve from such a bundle.
	CodeNoTests = "policy_no_tests"
	// CodeNoDecision means the bundle has no rule data.smsproxy.decision.
	CodeNoDecision = "policy_no_decision"
	// CodeBadDecision means the decision was undefined or did not have the shape of Decision.
	CodeBadDecision = "policy_bad_decision"
	// CodeEval means evaluation failed (a built-in error, a conflict, cancellation).
	CodeEval = "policy_eval"
	// CodeNotLoaded means an Engine was asked to decide before any policy was loaded.
	CodeNotLoaded = "policy_not_loaded"
)

// Error is a policy error with a stable code a caller can branch on.
type Error struct {
	// Code is one of the Code constants.
	Code string
	// Message is a sentence for an operator.
	Message string
	// Err is the underlying error, if any.
	Err error
}

// Error returns the code, the sentence and the underlying error.
func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of the first *Error in err's chain, or "" if there is none.
func ErrorCode(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func newError(code, msg string, err error) *Error {
	return &Error{Code: code, Message: msg, Err: err}
}
