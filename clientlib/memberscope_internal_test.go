package clientlib

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/cofferdtest"
)

// TestSyncChecksChangedMembers: a sync from a state whose every member
// passed the checks proves and resolves the members its commits added or
// changed, and only those; a sync from a state this client did not check
// (another Client on the same key store) checks every member.
func TestSyncChecksChangedMembers(t *testing.T) {
	ctx := context.Background()
	srv := cofferdtest.Start(t, nil)
	account := func(handle string, ks KeyStore) *Client {
		t.Helper()
		c, err := New(srv.URL(), ks, &Options{LogKey: srv.LogKey(), TrustOnFirstUse: true, SuiteV2Groups: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateAccount(ctx, handle, "desk"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	owner := account("owner", NewMemoryKeyStore())
	readerKS := NewMemoryKeyStore()
	reader := account("reader", readerKS)
	account("bob", NewMemoryKeyStore())
	account("newcomer", NewMemoryKeyStore())
	g, err := owner.CreateGroup(ctx, "scope", &GroupOptions{Tree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.AddMembers(ctx, g, []string{"reader", "bob"}, coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	first, err := reader.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := reader.checked.lookup(first.State); !ok {
		t.Fatal("the state a sync checked is not marked as checked")
	}
	bob := first.State.MemberByHandle("bob")
	proven := func(c *Client, m *coffer.Member) bool {
		c.fresh.mu.Lock()
		defer c.fresh.mu.Unlock()
		return c.fresh.provenEntries[m]
	}
	if bob == nil || bob.Keys == nil || !proven(reader, bob) {
		t.Fatalf("after a full sync bob is %+v, proven %v", bob, bob != nil && proven(reader, bob))
	}
	// Forget that bob's entry was proven: a sync that passes over every
	// member proves it again, one that checks only what changed does not.
	reader.fresh.mu.Lock()
	delete(reader.fresh.provenEntries, bob)
	reader.fresh.mu.Unlock()

	if err := owner.AddMember(ctx, g, "newcomer", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	second, err := reader.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	nc := second.State.MemberByHandle("newcomer")
	if nc == nil || nc.Keys == nil || !proven(reader, nc) {
		t.Fatal("a member added since the last sync was not resolved and proven")
	}
	if second.State.Members[bob.ID] != bob {
		t.Fatal("an unchanged member's entry was replaced")
	}
	if proven(reader, bob) {
		t.Fatal("a sync from a checked state proved an unchanged member again")
	}
	if _, ok := reader.checked.lookup(second.State); !ok {
		t.Fatal("the state an incremental sync checked is not marked")
	}
	// A member noted unlogged (an account that had not reached the
	// witnessed map yet, say) is asked again by every sync, changed or not.
	reader.fresh.mu.Lock()
	delete(reader.fresh.provenIDs, bob.ID)
	reader.fresh.mu.Unlock()
	reader.noteUnlogged(bob, identityKey(bob.Handle, bob.SigningKey, bob.EncryptionKey))
	if _, err := reader.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	if !proven(reader, bob) || len(reader.unloggedMembers(second.State)) != 0 {
		t.Fatal("a member noted unlogged was not proven again by the next sync")
	}

	// A second Client on the reader's key store loads the stored state,
	// which it did not check: it checks every member.
	again, err := New(srv.URL(), readerKS, &Options{LogKey: srv.LogKey(), TrustOnFirstUse: true, SuiteV2Groups: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.RemoveMember(ctx, g, "newcomer"); err != nil {
		t.Fatal(err)
	}
	third, err := again.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	for id, m := range third.State.Members {
		if m.Keys == nil || !proven(again, m) {
			t.Errorf("member %s (%s) was not checked by a sync from an unchecked state", id, m.Handle)
		}
	}

	// A state the owner made by committing from a checked state is
	// checked but for the entries its commit changed, which the owner's
	// next sync checks.
	before, err := owner.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	readerEntry := before.State.MemberByHandle("reader")
	owner.fresh.mu.Lock()
	delete(owner.fresh.provenEntries, readerEntry)
	owner.fresh.mu.Unlock()
	if err := owner.ChangeRole(ctx, g, "bob", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	after, err := owner.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if after.New != 0 {
		t.Fatalf("the owner's sync after its own commit verified %d commits", after.New)
	}
	if nb := after.State.MemberByHandle("bob"); nb == bob || nb.Keys == nil || !proven(owner, nb) {
		t.Fatal("the entry the owner's commit replaced was not checked by its next sync")
	}
	if after.State.MemberByHandle("reader") != readerEntry || proven(owner, readerEntry) {
		t.Fatal("the owner's sync after its own commit checked an unchanged member again")
	}
}
