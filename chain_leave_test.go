package coffer_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/cofferhq/coffer"
)

// TestLeavePendingRotation follows the pending-rotation flag through a
// chain, and the leaver's role history: the leaver held their role for all
// of the epoch they left in, and none from the next.
func TestLeavePendingRotation(t *testing.T) {
	p := MustChainCast(t)
	b := p.base(t).Do(p.writer, leaveOp(p.writer))
	s := checkChain(t, b.commits, "")
	if !s.PendingRotation || s.Epoch != 1 {
		t.Fatalf("after a leave: pending %t, epoch %d; want pending at epoch 1", s.PendingRotation, s.Epoch)
	}
	if s.Members[p.writer.ID] != nil {
		t.Fatalf("the leaver is still a member")
	}
	if got := s.RoleAt(p.writer.ID, 1); got != coffer.RoleWriter {
		t.Errorf("RoleAt(leaver, epoch left in) = %s, want writer", got)
	}

	// The pending state survives a checkpoint, with its role change at
	// the next epoch.
	data := mustMarshalState(t, s)
	var u coffer.GroupState
	if err := u.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if !u.PendingRotation || !bytes.Equal(mustMarshalState(t, &u), data) {
		t.Fatalf("pending state does not round-trip")
	}
	// A reader leaving keeps it pending; a reader's leave is no admin commit.
	b.Do(p.reader, leaveOp(p.reader))
	n := len(b.commits)
	b.Do(p.admin, rotateOp)
	s2, err := coffer.VerifyChain(&u, b.commits[n-1:])
	if err != nil {
		t.Fatal(err)
	}
	if s2.PendingRotation || s2.Epoch != 2 {
		t.Fatalf("after the rotation: pending %t, epoch %d", s2.PendingRotation, s2.Epoch)
	}
	for _, m := range []*chainMember{p.writer, p.reader} {
		if s2.RoleAt(m.ID, 1) == coffer.RoleNone || s2.RoleAt(m.ID, 2) != coffer.RoleNone {
			t.Errorf("%s: RoleAt 1 = %s, 2 = %s; want a role, then none", m.Handle, s2.RoleAt(m.ID, 1), s2.RoleAt(m.ID, 2))
		}
	}
	// Re-added by the rotating commit: the pending "none" gives way.
	b2 := p.base(t).Do(p.writer, leaveOp(p.writer)).Do(p.owner, addOp(p.writer, coffer.RoleReader), rotateOp)
	s3 := checkChain(t, b2.commits, "")
	if s3.RoleAt(p.writer.ID, 1) != coffer.RoleWriter || s3.RoleAt(p.writer.ID, 2) != coffer.RoleReader {
		t.Errorf("re-added leaver: RoleAt 1 = %s, 2 = %s", s3.RoleAt(p.writer.ID, 1), s3.RoleAt(p.writer.ID, 2))
	}
}

// TestGroupStateVersion1StillLoads: checkpoints written before leave ops
// (version 1, no pending flag) and before update-key ops (version 2, no key
// epochs) load as the same state, and a version 3 checkpoint that claims a
// future role change without a pending rotation is refused.
func TestGroupStateVersion1StillLoads(t *testing.T) {
	p := MustChainCast(t)
	s := checkChain(t, mustRoleHistoryChain(t, p).commits, "")
	v3 := mustMarshalState(t, s)
	const pendingAt = 1 + 16 + 8 + 32 + 8 + 1
	if v3[0] != 3 || v3[pendingAt] != 0 || !bytes.Equal(v3[len(v3)-4:], []byte{0, 0, 0, 0}) {
		t.Fatalf("unexpected layout")
	}
	v2 := append([]byte{2}, v3[1:len(v3)-4]...)
	v1 := append([]byte{1}, v2[1:pendingAt]...)
	v1 = append(v1, v2[pendingAt+1:]...)
	for _, old := range [][]byte{v1, v2} {
		var u coffer.GroupState
		if err := u.UnmarshalBinary(old); err != nil {
			t.Fatal(err)
		}
		if u.PendingRotation || !bytes.Equal(mustMarshalState(t, &u), v3) {
			t.Fatalf("version %d checkpoint does not load as the same state", old[0])
		}
	}

	pend := checkChain(t, p.base(t).Do(p.writer, leaveOp(p.writer)).commits, "")
	data := mustMarshalState(t, pend)
	cleared := slices.Clone(data)
	cleared[pendingAt] = 0
	if err := new(coffer.GroupState).UnmarshalBinary(cleared); err == nil {
		t.Fatalf("a state with a future role change but no pending rotation loads")
	}
}
