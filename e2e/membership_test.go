package e2e_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// TestNoHistoryJoinerCannotReadEarlierEpoch: in a group created without
// history sharing, a member added in the middle of an epoch must not read
// what was written in that epoch before the join. The add rotates, so the
// joiner receives only the new epoch's key.
func TestNoHistoryJoinerCannotReadEarlierEpoch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	bob := MustClient(t, srv, "bob")
	carol := MustClient(t, srv, "carol")
	g := mustGroup(t, alice, "private", &clientlib.GroupOptions{NoHistory: true})
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	// Written before carol joins, with no rotation since: under the key
	// carol would receive if an add did not rotate.
	before := mustPut(t, bob, g, "before carol", []byte("before the join"))
	epochBefore := mustEpoch(t, alice, g)
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	if e := mustEpoch(t, carol, g); e != epochBefore+1 {
		t.Fatalf("carol joined at epoch %d; the add should have rotated from %d", e, epochBefore)
	}
	if got, err := carol.ReadableEpochs(ctx, g); err != nil || !slices.Equal(got, []uint64{epochBefore + 1}) {
		t.Fatalf("carol can read epochs %v (%v), want only %d", got, err, epochBefore+1)
	}
	_, err := readResource(carol, g, before.ID)
	wantCode(t, err, coffer.EFORBIDDEN)
	if list, err := carol.List(ctx, g); err != nil || len(list) != 1 || !list[0].Locked || list[0].Meta.Name != "" {
		t.Fatalf("carol lists %+v (%v): want the earlier resource locked, without its name", list, err)
	}
	// What is written after the join, carol reads; members from before
	// read everything.
	after := mustPut(t, bob, g, "after carol", []byte("after the join"))
	if got := mustReadResource(t, carol, g, after.ID); string(got) != "after the join" {
		t.Fatalf("carol read %q", got)
	}
	if got := mustReadResource(t, alice, g, before.ID); string(got) != "before the join" {
		t.Fatalf("alice read %q", got)
	}
	// Adding several members at once rotates once.
	dave, erin := MustClient(t, srv, "dave"), MustClient(t, srv, "erin")
	mustVerify(t, alice, dave)
	mustVerify(t, alice, erin)
	e := mustEpoch(t, alice, g)
	if err := alice.AddMembers(ctx, g, []string{"dave", "erin"}, coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	if got := mustEpoch(t, dave, g); got != e+1 {
		t.Fatalf("dave joined at epoch %d, want %d", got, e+1)
	}
	_, err = readResource(erin, g, after.ID)
	wantCode(t, err, coffer.EFORBIDDEN)
}

// TestLeave: any member leaves with a commit that does not rotate; until an
// admin rotates, nobody encrypts under the key the leaver still holds, and
// the first admin to sync rotates. The leaver never learns the next key.
func TestLeave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice") // owner
	bob := MustClient(t, srv, "bob")     // admin
	carol := MustClient(t, srv, "carol") // writer, leaves
	dave := MustClient(t, srv, "dave")   // writer
	g := mustGroup(t, alice, "team", nil)
	mustAdd(t, alice, bob, g, coffer.RoleAdmin)
	mustAdd(t, alice, carol, g, coffer.RoleWriter)
	mustAdd(t, alice, dave, g, coffer.RoleWriter)
	r1 := mustPut(t, carol, g, "carol's", []byte("written before leaving"))
	db := mustDB(t, srv)

	if err := carol.Leave(ctx, g); err != nil {
		t.Fatalf("a writer leaves: %v", err)
	}
	// The leave did not rotate, and nobody wrapped a key for carol since.
	res, err := dave.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if !res.State.PendingRotation || res.State.Epoch != 1 || res.State.Members[carol.AccountID()] != nil {
		t.Fatalf("after carol's leave dave sees epoch %d, pending %t, carol member %t", res.State.Epoch, res.State.PendingRotation,
			res.State.Members[carol.AccountID()] != nil)
	}
	// dave (a writer) may not encrypt under the epoch carol still holds.
	_, err = dave.Put(ctx, g, strings.NewReader("secret"), clientlib.Meta{Name: "too early"})
	wantCode(t, err, coffer.EROTATIONPENDING)
	// Reading goes on.
	if got := mustReadResource(t, dave, g, r1.ID); string(got) != "written before leaving" {
		t.Fatalf("dave read %q", got)
	}
	// carol is out: the server shows her nothing.
	_, err = carol.Sync(ctx, g)
	wantCode(t, err, coffer.ENOTFOUND)

	// bob, an admin, rotates on his next sync.
	res, err = bob.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if res.State.PendingRotation || res.State.Epoch != 2 {
		t.Fatalf("after bob's sync: epoch %d, pending %t; want the rotation done", res.State.Epoch, res.State.PendingRotation)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM wrapped_keys WHERE group_id = $1 AND member_id = $2 AND epoch >= 2`,
		g, carol.AccountID()).Scan(&n); err != nil || n != 0 {
		t.Fatalf("carol has %d wraps of later epochs (%v)", n, err)
	}
	r2 := mustPut(t, dave, g, "after", []byte("after carol left"))
	if r2.Epoch != 2 {
		t.Fatalf("dave wrote at epoch %d, want 2", r2.Epoch)
	}
	if got := mustReadResource(t, alice, g, r2.ID); string(got) != "after carol left" {
		t.Fatalf("alice read %q", got)
	}

	// An admin leaves the same way; the owner's next change rotates with it.
	if err := bob.Leave(ctx, g); err != nil {
		t.Fatalf("an admin leaves: %v", err)
	}
	erin := MustClient(t, srv, "erin")
	mustVerify(t, alice, erin)
	if err := alice.AddMember(ctx, g, "erin", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	if e := mustEpoch(t, erin, g); e != 3 {
		t.Fatalf("the add after bob's leave is at epoch %d, want 3 (it must rotate)", e)
	}

	// The last owner cannot leave; after handing over, she can.
	err = alice.Leave(ctx, g)
	wantCode(t, err, coffer.EFORBIDDEN)
	if err := alice.ChangeRole(ctx, g, "dave", coffer.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if err := alice.Leave(ctx, g); err != nil {
		t.Fatalf("an owner with a co-owner leaves: %v", err)
	}
	if e := mustEpoch(t, dave, g); e != 4 {
		t.Fatalf("dave's sync after alice left is at epoch %d, want 4", e)
	}

	// Every commit verifies for the members who stay, and the leaves are in
	// the log as leaves, none rotating.
	commits, err := dave.History(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	leaves := 0
	for _, c := range commits {
		if len(c.Ops) == 1 && c.Ops[0].Kind == coffer.OpLeave {
			leaves++
			if c.Ops[0].Member != c.Author || c.Rotates() {
				t.Fatalf("commit %d is a leave of %s by %s", c.Seq, c.Ops[0].Member, c.Author)
			}
		}
	}
	if leaves != 3 {
		t.Fatalf("%d leave commits, want 3", leaves)
	}
}

// TestLeaveReaderDoesNotRotate: a reader's Sync never rotates (only admins
// and owners may), and a reader who leaves needs no role to do so.
func TestLeaveReaderDoesNotRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	bob := MustClient(t, srv, "bob")
	carol := MustClient(t, srv, "carol")
	g := mustGroup(t, alice, "readers", nil)
	mustAdd(t, alice, bob, g, coffer.RoleReader)
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	if err := bob.Leave(ctx, g); err != nil {
		t.Fatal(err)
	}
	res, err := carol.Sync(ctx, g)
	if err != nil || !res.State.PendingRotation || res.State.Epoch != 1 {
		t.Fatalf("a reader's sync: %v; want the rotation still pending", err)
	}
	// The owner adds in a group with a pending rotation: the add rotates.
	dave := MustClient(t, srv, "dave")
	mustAdd(t, alice, dave, g, coffer.RoleReader)
	if e := mustEpoch(t, dave, g); e != 2 {
		t.Fatalf("dave joined at epoch %d, want 2", e)
	}
}

// TestHistoryAfterGap: a member removed and later added back holds wraps
// for non-adjacent epochs. In a group that shares history, every epoch is
// reachable through the links from the newest key, and an honest server
// never causes a security error for this member.
func TestHistoryAfterGap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	bob := MustClient(t, srv, "bob")
	g := mustGroup(t, alice, "gap", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	var written []*clientlib.Resource
	put := func(c *clientlib.Client, name string) {
		written = append(written, mustPut(t, c, g, name, []byte("content of "+name)))
	}
	put(alice, "epoch 1, bob a member")
	put(bob, "epoch 1, by bob")
	if err := alice.RemoveMember(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	put(alice, "epoch 2, bob out")
	if err := alice.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	put(alice, "epoch 3, bob out")
	if err := alice.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	// bob returns at epoch 4: he holds wraps for epochs 1 and 4 only.
	if err := alice.AddMember(ctx, g, "bob", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	put(alice, "epoch 4, bob back")
	if err := alice.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	put(bob, "epoch 5, by bob")

	if got, err := bob.ReadableEpochs(ctx, g); err != nil || !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("bob can read epochs %v (%v), want 1 to 5", got, err)
	}
	list, err := bob.List(ctx, g)
	if err != nil {
		t.Fatalf("bob lists the group: %v", err)
	}
	if len(list) != len(written) {
		t.Fatalf("bob lists %d resources, want %d", len(list), len(written))
	}
	for _, r := range list {
		if r.Locked {
			t.Fatalf("resource %q of epoch %d is locked for bob", r.Meta.Name, r.Epoch)
		}
	}
	for _, r := range written {
		if got := mustReadResource(t, bob, g, r.ID); !bytes.Equal(got, []byte("content of "+r.Meta.Name)) {
			t.Fatalf("bob read %q for %q", got, r.Meta.Name)
		}
	}
}
