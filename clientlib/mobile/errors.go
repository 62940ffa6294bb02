package mobile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/cofferhq/coffer"
)

// Error codes, in the text of every error: "coffer:<code>: <message>".
// ErrorCode returns the code. Codes are append-only, like coffer.Code: a
// published code never changes meaning.
const (
	// CodeInvalid: malformed input or a rule violation.
	CodeInvalid = string(coffer.EINVALID)
	// CodeUnauthorized: missing, bad or expired credentials.
	CodeUnauthorized = string(coffer.EUNAUTHORIZED)
	// CodeForbidden: the role does not allow it.
	CodeForbidden = string(coffer.EFORBIDDEN)
	// CodeNotFound: absent, or not visible to this account.
	CodeNotFound = string(coffer.ENOTFOUND)
	// CodeConflict: taken handle, already a member, lost race.
	CodeConflict = string(coffer.ECONFLICT)
	// CodeTooLarge: over a size cap.
	CodeTooLarge = string(coffer.ETOOLARGE)
	// CodeRateLimited: too many requests: back off.
	CodeRateLimited = string(coffer.ERATELIMITED)
	// CodePrecondition: a replace lost to another writer.
	CodePrecondition = string(coffer.EPRECONDITION)
	// CodeLimit: a quota such as resources per group.
	CodeLimit = string(coffer.ELIMIT)
	// CodeUnavailable: cannot reach the server, or it is not ready.
	CodeUnavailable = string(coffer.EUNAVAILABLE)
	// CodeInternal: a bug, here or in the server.
	CodeInternal = string(coffer.EINTERNAL)
	// CodeSecurity: the server misbehaved: stop, use nothing.
	CodeSecurity = string(coffer.ESECURITY)
	// CodeUnverified: a contact's keys were never verified.
	CodeUnverified = string(coffer.EUNVERIFIED)
	// CodeKeyChanged: a contact's keys differ from the verified ones. In
	// suite v1 keys never change, so clientlib reports this as a security
	// error: it arrives as CodeSecurity, with the contact in the message.
	CodeKeyChanged = string(coffer.EKEYCHANGED)
	// CodeStaleKey: the group key rotated meanwhile: retry.
	CodeStaleKey = string(coffer.ESTALEKEY)
	// CodeRotationPending: a member left and the group's key was not
	// rotated yet; nothing new is written until an owner or admin syncs.
	CodeRotationPending = string(coffer.EROTATIONPENDING)
	// CodeStaleCheckpoint: the group's head could not be proven against a
	// checkpoint that enough of the configured witnesses cosigned recently
	// enough (Options.Witnesses, Quorum, MaxStalenessMillis). Nothing was
	// written. Retry later; if it persists, the server or its witnesses are
	// down or the server is withholding the group's current state.
	CodeStaleCheckpoint = string(coffer.ESTALECHECKPOINT)
	// CodeCanceled: the Cancel token was cancelled, or Progress failed.
	CodeCanceled = "canceled"
	// CodeIO: a local file could not be read or written.
	CodeIO = "io"
	// CodeKeyStore: the app's KeyStore failed.
	CodeKeyStore = "keystore"
)

const errorPrefix = "coffer:"

// codedError is the only error type this package returns.
type codedError struct {
	code  string
	msg   string
	cause error // for Go callers: errors.Is/As still reach clientlib's errors
}

func (e *codedError) Error() string { return errorPrefix + e.code + ": " + e.msg }
func (e *codedError) Unwrap() error { return e.cause }

func newError(code, format string, args ...any) error {
	return &codedError{code: code, msg: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of an error returned by this package, or ""
// for nil. It also reads the code back from an error that went through
// Java or Objective-C (an Exception or NSError whose message is the
// error's text), so apps can call it on what they caught. Errors without a
// code are CodeInternal.
func ErrorCode(err error) (code string) {
	defer func() {
		if recover() != nil {
			code = CodeInternal
		}
	}()
	if err == nil {
		return ""
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	if code, _, ok := parseCoded(err.Error()); ok {
		return code
	}
	return classify(err, nil)
}

// ErrorMessage returns the message of err without the "coffer:<code>: "
// prefix: the text to show the user.
func ErrorMessage(err error) (msg string) {
	defer func() {
		if recover() != nil {
			msg = "internal error"
		}
	}()
	if err == nil {
		return ""
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.msg
	}
	if _, msg, ok := parseCoded(err.Error()); ok {
		return msg
	}
	return err.Error()
}

// parseCoded splits "coffer:<code>: <message>". Java may prepend the
// exception class ("java.lang.Exception: coffer:..."), so the prefix is
// searched for, not only expected at the start.
func parseCoded(s string) (code, msg string, ok bool) {
	i := strings.Index(s, errorPrefix)
	if i < 0 {
		return "", "", false
	}
	rest := s[i+len(errorPrefix):]
	j := strings.Index(rest, ": ")
	if j <= 0 || j > 32 {
		return "", "", false
	}
	for _, r := range rest[:j] {
		if !(r >= 'a' && r <= 'z' || r == '_') {
			return "", "", false
		}
	}
	return rest[:j], rest[j+2:], true
}

// keyStoreError marks an error returned by the app's KeyStore.
type keyStoreError struct{ err error }

func (e *keyStoreError) Error() string { return "key store: " + e.err.Error() }
func (e *keyStoreError) Unwrap() error { return e.err }

// classify picks the code of an error from clientlib or the OS. A security
// error wins over everything, a cancellation the caller asked for over the
// network error it caused.
func classify(err error, ctx context.Context) string {
	var ks *keyStoreError
	var pe *fs.PathError
	switch {
	case coffer.IsSecurity(err):
		return CodeSecurity
	case errors.Is(err, context.Canceled), ctx != nil && ctx.Err() != nil:
		return CodeCanceled
	case errors.As(err, &ks):
		return CodeKeyStore
	}
	var ce *coffer.Error
	if errors.As(err, &ce) {
		if serverCodes[ce.Code] {
			return string(ce.Code)
		}
		// The code came from the server, which may send anything: never
		// let it pass for a check of ours (security) or a malformed code.
		return CodeInternal
	}
	if errors.As(err, &pe) {
		return CodeIO
	}
	return CodeInternal
}

// serverCodes are the codes a *coffer.Error may carry: the server's, and
// those clientlib reports itself. ESECURITY is not one of them: only a
// *coffer.SecurityError, made by a client-side check, is a security error.
var serverCodes = map[coffer.Code]bool{
	coffer.EINVALID: true, coffer.EUNAUTHORIZED: true, coffer.EFORBIDDEN: true, coffer.ENOTFOUND: true,
	coffer.ECONFLICT: true, coffer.ETOOLARGE: true, coffer.ERATELIMITED: true, coffer.EPRECONDITION: true,
	coffer.ELIMIT: true, coffer.EUNAVAILABLE: true, coffer.EINTERNAL: true, coffer.EUNVERIFIED: true,
	coffer.EKEYCHANGED: true, coffer.ESTALEKEY: true, coffer.EROTATIONPENDING: true, coffer.ESTALECHECKPOINT: true,
}

// message is the text after the code: user-safe, without Go's prefixes.
func message(err error, code string) string {
	var se *coffer.SecurityError
	if errors.As(err, &se) {
		return "the server misbehaved (" + se.Check + " check failed): " + plain(se.Err)
	}
	if code == CodeCanceled {
		return "the operation was cancelled"
	}
	return plain(err)
}

func plain(err error) string {
	var ce *coffer.Error
	if errors.As(err, &ce) {
		if ce.Rule != "" {
			return ce.Message + " (rule " + ce.Rule + ")"
		}
		return ce.Message
	}
	return err.Error()
}

// wrap turns any error into a *codedError. ctx, if not nil, is the context
// of the operation: if it ended, the error is a cancellation.
func wrap(err error, ctx context.Context) error {
	if err == nil {
		return nil
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return err
	}
	code := classify(err, ctx)
	return &codedError{code: code, msg: message(err, code), cause: err}
}

// guard recovers a panic into *err. Every exported function and method
// that returns an error defers it first (TestEveryExportedFuncGuarded):
// gobind would otherwise let a Go panic kill the app's process.
func guard(err *error) {
	if r := recover(); r != nil {
		*err = newError(CodeInternal, "panic in coffer (a bug; please report it): %v", r)
	}
}

// guardQuiet recovers a panic in a method that has no error to return.
func guardQuiet() { _ = recover() }
