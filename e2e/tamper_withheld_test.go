package e2e_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// TestTamperWithheldOldWrap: in a group without shared history a member
// holds keys only from the epoch it joined, and resources from before are
// shown as locked. A server that hides the wrap of an epoch in which the
// verified log shows the reader as a member must not get the same quiet
// "locked": that is withheld data, a security error.
func TestTamperWithheldOldWrap(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, bob := MustClient(t, srv, "alice"), MustClient(t, srv, "bob")
	g := mustGroup(t, alice, "private", &clientlib.GroupOptions{NoHistory: true})
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	// bob's add rotated (the group does not share history): he wrote at
	// the epoch it started.
	old, err := bob.Put(ctx, g, strings.NewReader("written before the rotation"), clientlib.Meta{Name: "old.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	// The control: bob reads it while his epoch-1 wrap is there.
	list, err := bob.List(ctx, g)
	if err != nil || len(list) != 1 || list[0].Locked {
		t.Fatalf("before tampering bob lists %+v (err %v), want one readable resource", list, err)
	}
	db := mustDB(t, srv)
	mustExec(t, db, `DELETE FROM wrapped_keys WHERE group_id = $1 AND member_id = $2 AND epoch = $3`, g, bob.AccountID(), int64(old.Epoch))
	fresh := MustNewClient(t, srv.URL(), KeyStore(t, bob)) // no cached keys
	_, err = fresh.List(ctx, g)
	wantSecurity(t, err)
}
