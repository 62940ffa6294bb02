package clientlib

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer"
)

// Errors name what broke: a *coffer.SecurityError that leaves a public
// method names the group (and the resource) it concerns, so that an app
// showing it, or a listing that reports one broken group beside the
// others, can say which.

// inGroup names g, and id unless it is zero, in a security error that does
// not name them yet. Other errors are returned as they are.
func inGroup(err error, g coffer.GroupID, id coffer.ResourceID) error {
	var se *coffer.SecurityError
	if err == nil || !errors.As(err, &se) {
		return err
	}
	msg := se.Error()
	needGroup := !strings.Contains(msg, g.String())
	needResource := !id.IsZero() && !strings.Contains(msg, id.String())
	if !needGroup && !needResource {
		return err
	}
	what := "group " + g.String()
	if !id.IsZero() {
		what += ", resource " + id.String()
	}
	return &coffer.SecurityError{Check: se.Check, Err: fmt.Errorf("%s: %w", what, se.Err)}
}
