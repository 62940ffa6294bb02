package store

import (
	"testing"

	"github.com/cofferhq/coffer"
)

func testState(g coffer.GroupID, seq uint64, members int) *coffer.GroupState {
	s := &coffer.GroupState{Group: g, Seq: seq, Members: map[coffer.AccountID]*coffer.Member{}}
	s.Head[0] = byte(seq)
	for range members {
		id := coffer.NewAccountID()
		s.Members[id] = &coffer.Member{ID: id, Handle: coffer.Handle(id.String()), Role: coffer.RoleReader}
	}
	return s
}

// TestStateCache: a state is served only at the seq and head it was cached
// at, as a copy; an older state never replaces a newer one; the bytes
// bound evicts the least recently used.
func TestStateCache(t *testing.T) {
	g1, g2, g3 := coffer.NewGroupID(), coffer.NewGroupID(), coffer.NewGroupID()
	one := stateBytes(testState(g1, 1, 10))
	c := newStateCache(2*one + one/2)

	s := testState(g1, 5, 10)
	c.put(s)
	if c.get(g1, 5, s.Head[:]) == nil {
		t.Fatal("a cached state is not served at its head")
	}
	other := s.Head
	other[31] ^= 1
	if c.get(g1, 5, other[:]) != nil || c.get(g1, 6, s.Head[:]) != nil || c.get(g2, 5, s.Head[:]) != nil {
		t.Fatal("a state is served at another head, seq or group")
	}
	got := c.get(g1, 5, s.Head[:])
	for id := range got.Members {
		delete(got.Members, id)
	}
	got.Seq = 9
	if again := c.get(g1, 5, s.Head[:]); again == nil || len(again.Members) != 10 {
		t.Fatal("changing a served state changed the cache")
	}

	c.put(testState(g1, 4, 10))
	if c.get(g1, 5, s.Head[:]) == nil {
		t.Fatal("an older state replaced a newer one")
	}
	newer := testState(g1, 6, 10)
	c.put(newer)
	if c.get(g1, 6, newer.Head[:]) == nil || c.bytes != one {
		t.Fatalf("a newer state is not served (%d bytes held, want %d)", c.bytes, one)
	}

	// g1 and g2 fit; g3 evicts the least recently used, g1 (g2 was read).
	s2, s3 := testState(g2, 1, 10), testState(g3, 1, 10)
	c.put(s2)
	c.get(g2, 1, s2.Head[:])
	c.put(s3)
	if c.get(g1, 6, newer.Head[:]) != nil {
		t.Fatal("the bytes bound did not evict the least recently used state")
	}
	if c.get(g2, 1, s2.Head[:]) == nil || c.get(g3, 1, s3.Head[:]) == nil {
		t.Fatal("a recently used state was evicted")
	}
	if c.bytes != 2*one {
		t.Fatalf("%d bytes held, want %d", c.bytes, 2*one)
	}
	// A state over the bound is not cached, and drops its group's older one.
	c.put(testState(g2, 2, 30))
	if c.get(g2, 1, s2.Head[:]) != nil || c.bytes != one {
		t.Fatalf("a state over the bound: %d bytes held, want %d", c.bytes, one)
	}

	var off *stateCache
	off.put(s)
	if off.get(g1, 5, s.Head[:]) != nil {
		t.Fatal("a disabled cache served a state")
	}
}
