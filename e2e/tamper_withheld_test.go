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
	if _, err := bob.Put(ctx, g, strings.NewReader("written at epoch 1"), clientlib.Meta{Name: "old.txt"}); err != nil {
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
	mustExec(t, db, `DELETE FROM wrapped_keys WHERE group_id = $1 AND member_id = $2 AND epoch = 1`, g, bob.AccountID())
	fresh := MustNewClient(t, srv.URL(), KeyStore(t, bob)) // no cached keys
	_, err = fresh.List(ctx, g)
	wantSecurity(t, err)
}
