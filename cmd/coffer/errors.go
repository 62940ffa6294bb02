package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer"
)

// Exit codes. Scripts branch on them, so they are part of the interface:
// 3 in particular means "stop and tell a human", never "retry".
const (
	exitOK       = 0
	exitError    = 1 // the command failed: network, permission, not found…
	exitUsage    = 2 // the command line was wrong
	exitSecurity = 3 // the server misbehaved (coffer.IsSecurity)
)

// runError marks an error returned by a command's own work, as opposed to
// one cobra returned while parsing the command line. Every command's RunE
// goes through action(), which wraps its error in runError; any other error
// out of cobra (unknown command or flag, wrong number of arguments, a
// missing required flag) is therefore a usage error. Classifying by origin
// is sturdier than matching cobra's error strings.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// usageError marks a bad value the command line gave: a flag or argument
// that parsed but is not acceptable (an unknown role, a certificate file
// that does not load, a missing --yes). It is a usage error (exit 2) even
// though it is found inside a command's work.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }

// handleError attaches the handle a command was acting on, so that an
// unverified or changed key can be explained with the exact command that
// fixes it.
type handleError struct {
	handle string
	err    error
}

func (e *handleError) Error() string { return e.err.Error() }
func (e *handleError) Unwrap() error { return e.err }

func withHandle(handle string, err error) error {
	if err == nil {
		return nil
	}
	return &handleError{handle: handle, err: err}
}

// hintError adds advice that depends on what the command was doing, such
// as "discard the output" after a failed stream to stdout. describe prints
// it after the message, whatever the error underneath is.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + ": " + e.hint }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// exitCode maps an error from Execute to the process exit code.
func exitCode(err error) int {
	var re *runError
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case !errors.As(err, &re), errors.As(err, &ue):
		return exitUsage
	case coffer.IsSecurity(err):
		return exitSecurity
	}
	return exitError
}

// describe renders err for a person: what happened and what to do about it.
// It never includes secrets: clientlib's messages are safe to show by
// contract, and the CLI adds only handles, ids and file names. server is
// the profile's server URL, or "" when no profile was loaded.
func describe(err error, server string) string {
	var re *runError
	var ue *usageError
	if !errors.As(err, &re) || errors.As(err, &ue) {
		return message(err) // usage errors: the text names the problem
	}
	msg := describeRun(err, server)
	var he *hintError
	if errors.As(err, &he) {
		msg += "\n  " + he.hint
	}
	return msg
}

func describeRun(err error, server string) string {
	var handle string
	var he *handleError
	if errors.As(err, &he) {
		handle = he.handle
	}

	var se *coffer.SecurityError
	if errors.As(err, &se) {
		if coffer.ErrorCode(se.Err) == coffer.EKEYCHANGED {
			return keyChanged(handle, se.Err)
		}
		if se.Check == "rollback" {
			return fmt.Sprintf("SECURITY ERROR: the server rolled a group back: %s\n"+
				"  If the server was restored from an older backup (ask whoever runs %s), members who made the lost\n"+
				"  commits can append them again with: coffer group heal GROUP_ID. Otherwise the server is hiding commits.",
				message(se.Err), orUnknown(server))
		}
		return fmt.Sprintf("SECURITY ERROR: the server misbehaved, and this command stopped.\n"+
			"  detected by the %q check: %s\n"+
			"  This is not a glitch to retry: tell whoever runs the server (%s), and the owners of the group concerned.",
			se.Check, message(se.Err), orUnknown(server))
	}
	var ce *coffer.Error
	if !errors.As(err, &ce) {
		return err.Error() // local errors: files, flags; their text names them
	}
	msg := message(ce)
	switch ce.Code {
	case coffer.EUNVERIFIED:
		if handle != "" {
			return fmt.Sprintf("%s's keys are not verified: compare safety numbers with %s, then run: coffer contact verify %s <number>",
				handle, handle, handle)
		}
		return msg + "\n  compare safety numbers with them, then run: coffer contact verify HANDLE <number>"
	case coffer.EKEYCHANGED:
		return keyChanged(handle, ce)
	case coffer.EUNAVAILABLE:
		return msg + fmt.Sprintf("\n  is cofferd running at %s? (the server is set by coffer init --server)", orUnknown(server))
	case coffer.EUNAUTHORIZED:
		return msg + "\n  the server does not accept this profile's login; if the server was reset, start a new profile with coffer init"
	case coffer.ERATELIMITED:
		return msg
	case coffer.EFORBIDDEN:
		return msg + "\n  your role in this group does not allow it: ask an owner or admin (see coffer group members GROUP)"
	case coffer.ENOTFOUND:
		switch msg {
		case "no such group":
			return "no such group, or you are not a member of it (any more): see coffer group ls"
		case "no such resource":
			return "no such resource, or you cannot see it: check its id with coffer ls GROUP (if that fails too, you are no longer a member)"
		case "no such account":
			if handle != "" {
				return fmt.Sprintf("there is no account %q on %s: check the spelling with them", handle, orUnknown(server))
			}
		}
	case coffer.EROTATIONPENDING:
		return msg + "\n  an owner or admin rotates by syncing (coffer group members GROUP) or with coffer group rotate GROUP"
	case coffer.ESTALECHECKPOINT:
		return msg + "\n  the witnesses configured by coffer init --witness have not vouched for the group's current state recently enough;\n" +
			"  retry in a minute. If it persists, the server or its witnesses are down, or the server is withholding changes."
	case coffer.EINTERNAL:
		return msg + "\n  the server hit an internal error; its log has the details (retry later)"
	}
	return msg
}

// keyChanged explains a contact whose keys differ from the verified ones.
// In suite v1 an account's keys never change, so this is a server
// substituting keys until proven otherwise.
func keyChanged(handle string, err error) string {
	if handle == "" {
		return message(err) + "\n  compare safety numbers with them again, then run: coffer contact verify HANDLE <number>"
	}
	return fmt.Sprintf("%s's keys have changed: the keys the server shows for %s differ from the ones you verified, "+
		"which usually means the server is substituting keys.\n"+
		"  Nothing was wrapped for them. Compare safety numbers with %s again, in person or on a call, then run: coffer contact verify %s <number>",
		handle, handle, handle, handle)
}

// message is the user-facing text of an error inside a security error or
// from clientlib: an *coffer.Error's message (with the rule it broke), or
// the error's own text.
func message(err error) string {
	var ce *coffer.Error
	if errors.As(err, &ce) {
		if ce.Rule != "" {
			return fmt.Sprintf("%s (rule %s)", ce.Message, ce.Rule)
		}
		return ce.Message
	}
	return strings.TrimPrefix(err.Error(), "coffer: ")
}

func orUnknown(server string) string {
	if server == "" {
		return "the server"
	}
	return server
}

// errorJSON is an error as --json prints it on stderr, for scripts that
// branch on more than the exit code.
type errorJSON struct {
	Error struct {
		Exit    int    `json:"exit"`
		Code    string `json:"code"`            // a coffer error code, "usage", or "error"
		Check   string `json:"check,omitempty"` // the failed check of a security error
		Rule    string `json:"rule,omitempty"`  // the verifier rule, when one failed
		Message string `json:"message"`         // what describe prints
	} `json:"error"`
}

func (a *app) printErrorJSON(err error, server string, code int) {
	var out errorJSON
	e := &out.Error
	e.Exit, e.Message = code, describe(err, server)
	var se *coffer.SecurityError
	var ce *coffer.Error
	switch {
	case code == exitUsage:
		e.Code = "usage"
	case errors.As(err, &se):
		e.Code, e.Check = string(coffer.ESECURITY), se.Check
		if errors.As(se.Err, &ce) {
			e.Rule = ce.Rule
		}
	case errors.As(err, &ce):
		e.Code, e.Rule = string(ce.Code), ce.Rule
	default:
		e.Code = "error"
	}
	enc := json.NewEncoder(a.stderr)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}
