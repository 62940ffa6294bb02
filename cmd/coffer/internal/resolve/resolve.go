// Package resolve turns what a user types for a group or a resource (an id,
// or a name) into one item. Names are the decrypted names this device can
// read, so they are only unique locally: a name that matches several items
// is refused with every candidate's id, rather than picking one, because
// acting on the wrong group (adding someone, removing a file) is not
// undoable.
package resolve

import (
	"strings"

	"github.com/cofferhq/coffer"
)

// Item is something with an id and a (possibly empty) name.
type Item struct {
	ID   string
	Name string
}

// ByName returns the index in items of the one item named name. kind
// ("group", "resource") and listCmd (the command that lists them) make the
// errors say what to do:
//   - no match: ENOTFOUND, pointing at listCmd;
//   - several: EINVALID, listing the ids to use instead.
func ByName(kind, name, listCmd string, items []Item) (int, error) {
	if name == "" {
		// Locked resources have no readable name: "" must not pick one.
		return -1, coffer.Errorf(coffer.EINVALID, "an empty %s name: give a name or an id (see %s)", kind, listCmd)
	}
	var matches []int
	for i, it := range items {
		if it.Name == name {
			matches = append(matches, i)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return -1, coffer.Errorf(coffer.ENOTFOUND, "no %s named %q: see %s for names and ids", kind, name, listCmd)
	}
	ids := make([]string, len(matches))
	for i, m := range matches {
		ids[i] = items[m].ID
	}
	return -1, coffer.Errorf(coffer.EINVALID, "%d %ss are named %q; use one of their ids instead: %s",
		len(matches), kind, name, strings.Join(ids, ", "))
}

// SafetyNumber joins the arguments a user gave for a safety number. The
// shell splits "12345 67890 …" into twelve arguments unless it is quoted,
// so every remaining argument belongs to the number; clientlib accepts it
// with or without spaces.
func SafetyNumber(args []string) (string, error) {
	s := strings.Join(args, " ")
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == ' ' || r == '-' || r == '\t':
		default:
			// A QR payload (coffer:v1:…) is also a verification code.
			if strings.HasPrefix(strings.TrimSpace(s), "coffer:") {
				return strings.TrimSpace(s), nil
			}
			return "", coffer.Errorf(coffer.EINVALID, "a safety number is 60 digits (12 groups of 5); %q is not one", truncate(s, 80))
		}
	}
	if digits != 60 {
		return "", coffer.Errorf(coffer.EINVALID, "a safety number is 60 digits (12 groups of 5); got %d digits", digits)
	}
	return s, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
