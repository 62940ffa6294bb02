package coffer

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. Codes are append-only: a
// published code never changes meaning, because clients in the field map
// them back to behaviour (retry, re-sync, ask the user to verify a key).
type Code string

const (
	EINVALID      Code = "invalid"        // malformed input or a rule violation
	EUNAUTHORIZED Code = "unauthorized"   // missing, bad or expired credentials
	EFORBIDDEN    Code = "forbidden"      // authenticated, but the role does not allow it
	ENOTFOUND     Code = "not_found"      // absent, or not visible to the caller
	ECONFLICT     Code = "conflict"       // lost a compare-and-append race or duplicate
	ETOOLARGE     Code = "too_large"      // a body or resource over its cap
	ERATELIMITED  Code = "rate_limited"   // too many requests from this client
	EPRECONDITION Code = "precondition"   // If-Match did not match
	ELIMIT        Code = "limit_exceeded" // a quota such as resources per group
	EUNAVAILABLE  Code = "unavailable"    // the server cannot serve now (not ready)
	EINTERNAL     Code = "internal"       // a server bug; details are only in its log
	ESECURITY     Code = "security"       // the server misbehaved (client-side only)
	EUNVERIFIED   Code = "key_unverified" // a contact's keys were never verified
	EKEYCHANGED   Code = "key_changed"    // a contact's keys differ from the verified ones
	ESTALEKEY     Code = "stale_key"      // local key state is behind: re-sync and retry
	ECANCELED     Code = "canceled"       // the caller gave up and closed the request
	// EROTATIONPENDING: a member left the group and still holds its current
	// key, so clients encrypt and wrap nothing under it until an admin or
	// owner rotates (an admin's client rotates on sync). The server answers
	// it too, to an upload finalized after a leave under the old epoch.
	EROTATIONPENDING Code = "rotation_pending"
	// ESTALECHECKPOINT: the client could not prove a group's head against a
	// checkpoint that enough witnesses cosigned recently enough (too old,
	// too few cosignatures, or the witnesses have not caught up with a head
	// it verified). Nothing was written; retry later. Client-side only.
	ESTALECHECKPOINT Code = "stale_checkpoint"
)

// Error is the one error type that crosses component boundaries. Message is
// safe to show to the user; it never contains secrets or internals.
type Error struct {
	Code    Code
	Message string
	// Rule names the verifier rule that failed, when one did.
	Rule string
}

func (e *Error) Error() string {
	if e.Rule != "" {
		return fmt.Sprintf("coffer: %s: %s (rule %s)", e.Code, e.Message, e.Rule)
	}
	return fmt.Sprintf("coffer: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// SecurityError reports that a check against data served by the server
// failed: a signature, a hash chain, a key commitment, a transparency proof.
// It is never a warning. The operation that saw it must stop and must not use
// any of the data involved.
type SecurityError struct {
	// Check names what was being verified, e.g. "chain", "wrap", "header".
	Check string
	Err   error
}

func (e *SecurityError) Error() string {
	return fmt.Sprintf("coffer: security: the server misbehaved: %s: %v", e.Check, e.Err)
}

func (e *SecurityError) Unwrap() error { return e.Err }

// Security wraps err as a *SecurityError for check.
func Security(check string, err error) error {
	return &SecurityError{Check: check, Err: err}
}

// IsSecurity reports whether err is or wraps a *SecurityError.
func IsSecurity(err error) bool {
	var se *SecurityError
	return errors.As(err, &se)
}

// ErrorCode returns the code of err: ESECURITY for a *SecurityError, the code
// of an *Error, and EINTERNAL for anything else (including nil-safe: "" for nil).
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	if IsSecurity(err) {
		return ESECURITY
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of err. Errors that are not an
// *Error or *SecurityError are internal and yield only "internal error".
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var se *SecurityError
	if errors.As(err, &se) {
		return se.Error()
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
