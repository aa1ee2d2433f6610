package audit

import (
	"errors"
	"strconv"
)

// Error codes of this package. They are stable: tools and tests match on them.
const (
	CodeKeyringRef          = "keyring_ref_invalid"
	CodeKeyringUnreadable   = "keyring_unreadable"
	CodeKeyringInvalid      = "keyring_invalid"
	CodeKeyUnknown          = "key_unknown"
	CodeSubjectErased       = "subject_erased"
	CodeSealedInvalid       = "sealed_invalid"
	CodeSubjectKeyStore     = "subject_key_store"
	CodeSubjectRefMissing   = "subject_ref_missing"
	CodeCheckpointInvalid   = "checkpoint_invalid"
	CodeHashMismatch        = "hash_mismatch"
	CodeChainBroken         = "chain_broken"
	CodeCheckpointSignature = "checkpoint_signature"
	CodeCheckpointMissing   = "checkpoint_missing_record"
	CodeTruncated           = "truncated"
)

// Error is a failure of this package with a stable code. Its message never contains key material,
// phone numbers or personal data.
type Error struct {
	Code    string
	Message string
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

// ErrorCode returns the stable code.
func (e *Error) ErrorCode() string { return e.Code }

func newErr(code, msg string, err error) *Error { return &Error{Code: code, Message: msg, err: err} }

// CodeOf returns the stable code of err if it carries one (an *Error or a *Problem), else "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var p *Problem
	if errors.As(err, &p) {
		return p.Code
	}
	return ""
}

// Problem is the first bad record found by a Verifier: its sequence number and a stable reason code.
type Problem struct {
	// Seq is the first bad record, or the first missing one for "truncated".
	Seq int64
	// Code is one of CodeHashMismatch, CodeChainBroken, CodeCheckpointSignature,
	// CodeCheckpointMissing, CodeTruncated.
	Code string
	// Detail is a sentence for a person; it holds sequence numbers and key ids only.
	Detail string
}

// Error returns "seq N: code: detail".
func (p *Problem) Error() string {
	return "seq " + strconv.FormatInt(p.Seq, 10) + ": " + p.Code + ": " + p.Detail
}
