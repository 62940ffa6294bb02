package e2e_test

import (
	"errors"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// groupStateNames are the key store names that hold a group's verified
// state (clientlib/statetail.go): the snapshot's two slots and the tail
// record, which names the current slot and holds the head.
func groupStateNames(g coffer.GroupID) []string {
	return []string{"group/" + g.String() + "/state", "group/" + g.String() + "/state.1", "group/" + g.String() + "/tail"}
}

// storedGroupState returns the first of groupStateNames that ks holds, ""
// when it holds none: the device saved no state of g.
func storedGroupState(ks clientlib.KeyStore, g coffer.GroupID) string {
	for _, name := range groupStateNames(g) {
		if _, err := ks.Get(name); !errors.Is(err, clientlib.ErrNotFound) {
			return name
		}
	}
	return ""
}
