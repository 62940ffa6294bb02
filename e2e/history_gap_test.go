package e2e_test

import (
	"context"
	"slices"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// TestHistoryAfterTwoGapsWithWithheldLink: bob is a member in epochs 1, 3
// to 4, and 6, with gaps between, so he holds wraps for epochs 1, 3, 4 and
// 6 only. The server withholds the link to epoch 5. Everything the walk can
// still reach, it reaches: epoch 2 from the wrap of 3, below the missing
// link. Only epoch 5 stays closed, and a resource under it is a security
// error (the group shares history), not a silent lock.
func TestHistoryAfterTwoGapsWithWithheldLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	bob := MustClient(t, srv, "bob")
	g := mustGroup(t, alice, "gaps", nil)
	mustAdd(t, alice, bob, g, coffer.RoleReader)
	byEpoch := map[uint64]*clientlib.Resource{}
	put := func(name string) {
		r := mustPut(t, alice, g, name, []byte("content of "+name))
		byEpoch[r.Epoch] = r
	}
	do := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	put("epoch 1")
	do(alice.RemoveMember(ctx, g, "bob")) // epoch 2
	put("epoch 2")
	do(alice.Rotate(ctx, g)) // epoch 3
	do(alice.AddMember(ctx, g, "bob", coffer.RoleReader))
	put("epoch 3")
	do(alice.Rotate(ctx, g)) // epoch 4
	put("epoch 4")
	do(alice.RemoveMember(ctx, g, "bob")) // epoch 5
	put("epoch 5")
	do(alice.Rotate(ctx, g)) // epoch 6
	do(alice.AddMember(ctx, g, "bob", coffer.RoleReader))
	put("epoch 6")
	if e := mustEpoch(t, alice, g); e != 6 || len(byEpoch) != 6 {
		t.Fatalf("epoch %d with %d resources, want 6 and 6", e, len(byEpoch))
	}

	if got, err := bob.ReadableEpochs(ctx, g); err != nil || !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("before the link is withheld bob reads epochs %v (%v), want 1 to 6", got, err)
	}
	db := mustDB(t, srv)
	if tag, err := db.Exec(ctx, `DELETE FROM history_links WHERE group_id = $1 AND epoch = 5`, g); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("withholding the link to epoch 5: %v (%d rows)", err, tag.RowsAffected())
	}
	if got, err := bob.ReadableEpochs(ctx, g); err != nil || !slices.Equal(got, []uint64{1, 2, 3, 4, 6}) {
		t.Fatalf("bob reads epochs %v (%v), want all but 5", got, err)
	}
	for e, r := range byEpoch {
		got, err := readResource(bob, g, r.ID)
		if e == 5 {
			if !coffer.IsSecurity(err) {
				t.Fatalf("the epoch 5 resource, whose link is withheld: %v, want a security error", err)
			}
			continue
		}
		if err != nil || string(got) != "content of "+r.Meta.Name {
			t.Fatalf("bob reads the epoch %d resource: %q, %v", e, got, err)
		}
	}
}
