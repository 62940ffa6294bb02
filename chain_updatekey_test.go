package coffer_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/cofferhq/coffer"
)

// rekeyed returns m with the keys of test account keys: the same id and
// handle, as after m's account rotated its key.
func rekeyed(tb testing.TB, m *chainMember, keys int) *chainMember {
	tb.Helper()
	k := MustChainMember(tb, keys)
	return &chainMember{ID: m.ID, Handle: m.Handle, Key: k.Key, EncryptionKey: k.EncryptionKey}
}

// updateKeyOp replaces m's entry keys with those of to.
func updateKeyOp(m, to *chainMember) coffer.Op {
	return coffer.Op{Kind: coffer.OpUpdateKey, Member: m.ID, SigningKey: to.Public(), EncryptionKey: to.EncryptionKey}
}

// selfUpdate is the reader's update to the keys of test account 40.
func selfUpdate(tb testing.TB, p chainCast) (*chainMember, coffer.Op) {
	nk := rekeyed(tb, p.reader, 40)
	return nk, updateKeyOp(p.reader, nk)
}

func init() {
	chainCases = append(chainCases, updateKeyCases...)
	allRules = append(allRules, coffer.RuleUpdateKey, coffer.RuleKeyReuse)
}

// updateKeyCases are the rules of OpUpdateKey, the self-update after an
// account rotates its key.
var updateKeyCases = []chainCase{
	// Chains that verify.
	{"update-key-reader", "a reader replaces its own keys with a rotation, then leaves, signing with its new key", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		nk, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, op, rotateOp).Do(nk, leaveOp(nk)).commits
	}},
	{"update-key-owner", "the owner updates its keys (rotation first), then adds a member with its new key", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		nk := rekeyed(tb, p.owner, 41)
		return p.base(tb).Do(p.owner, rotateOp, updateKeyOp(p.owner, nk)).Do(nk, addOp(p.m5, coffer.RoleReader)).commits
	}},
	{"update-key-twice", "a writer updates its keys twice, the second time from the keys of the first", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		k1, k2 := rekeyed(tb, p.writer, 42), rekeyed(tb, p.writer, 43)
		return p.base(tb).Do(p.writer, updateKeyOp(p.writer, k1), rotateOp).Do(k1, updateKeyOp(p.writer, k2), rotateOp).commits
	}},
	{"update-key-performs-pending-rotation", "a writer leaves; the reader's self-update performs the pending rotation", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.writer, leaveOp(p.writer)).Do(p.reader, op, rotateOp).commits
	}},
	{"update-key-no-history", "a reader of a group without shared history updates its keys", "", func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		b := newChain(tb, 1)
		b.share = false
		_, op := selfUpdate(tb, p)
		return b.Do(p.owner, addOp(p.owner, coffer.RoleOwner), addOp(p.reader, coffer.RoleReader)).Do(p.reader, op, rotateOp).commits
	}},

	// RuleUpdateKey: only one's own entry, only with one rotation, nothing else.
	{"update-key-other-member", "the owner replaces the reader's keys", coffer.RuleUpdateKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.owner, op, rotateOp).commits
	}},
	{"update-key-other-member-by-reader", "a reader replaces the writer's keys", coffer.RuleUpdateKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.reader, updateKeyOp(p.writer, rekeyed(tb, p.writer, 40)), rotateOp).commits
	}},
	{"update-key-without-rotation", "a reader updates its keys without a rotation", coffer.RuleUpdateKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, op).commits
	}},
	{"update-key-without-rotation-by-owner", "the owner updates its keys without a rotation", coffer.RuleUpdateKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, updateKeyOp(p.owner, rekeyed(tb, p.owner, 41))).commits
	}},
	{"update-key-with-add", "a reader updates its keys and adds an outsider in the rotating commit", coffer.RuleUpdateKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, op, addOp(p.m5, coffer.RoleOwner), rotateOp).commits
	}},
	{"update-key-with-remove-by-owner", "the owner updates its keys and removes the reader in the same commit", coffer.RuleUpdateKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, updateKeyOp(p.owner, rekeyed(tb, p.owner, 41)), removeOp(p.reader), rotateOp).commits
	}},
	{"update-key-with-self-promotion", "a reader updates its keys and makes itself owner", coffer.RuleUpdateKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, op, setRoleOp(p.reader, coffer.RoleOwner), rotateOp).commits
	}},
	{"update-key-two-in-commit", "a commit with two update-key ops of its author and a rotation", coffer.RuleUpdateKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, op, updateKeyOp(p.reader, rekeyed(tb, p.reader, 44)), rotateOp).commits
	}},
	{"update-key-two-rotations", "a self-update with two rotate ops", coffer.RuleUpdateKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, op, rotateOp, rotateOp).commits
	}},
	{"update-key-with-leave", "a reader updates its keys and leaves in one commit", coffer.RuleLeave, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, op, leaveOp(p.reader)).commits
	}},
	{"update-key-in-genesis", "a genesis that adds its owner and then updates the owner's keys", coffer.RuleGenesis, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return newChain(tb, 1).Do(p.owner, addOp(p.owner, coffer.RoleOwner), updateKeyOp(p.owner, rekeyed(tb, p.owner, 41))).commits
	}},
	{"update-key-by-outsider", "a non-member signs a self-update", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.m5, updateKeyOp(p.m5, rekeyed(tb, p.m5, 45)), rotateOp).commits
	}},
	{"update-key-by-leaver", "a reader who left signs a self-update", coffer.RuleAuthor, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, leaveOp(p.reader)).Do(p.owner, rotateOp).Do(p.reader, op, rotateOp).commits
	}},
	{"update-key-epoch-kept", "a self-update whose rotation keeps the epoch", coffer.RuleEpoch, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		b := p.base(tb)
		c := b.Next(p.reader, op, rotateOp)
		c.Epoch = b.head.Epoch
		return b.Push(c, p.reader.Key).commits
	}},
	{"update-key-history-flag-changed", "a self-update that turns history sharing off", coffer.RuleHistoryFlag, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		b := p.base(tb)
		c := b.Next(p.reader, op, rotateOp)
		c.ShareHistory = false
		return b.Push(c, p.reader.Key).commits
	}},

	// Signatures: the key before the update signs it; after it, only the new one.
	{"update-key-signed-with-new-key", "a self-update signed with the new key instead of the entry's current one", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		nk, op := selfUpdate(tb, p)
		b := p.base(tb)
		return b.Push(b.Next(p.reader, op, rotateOp), nk.Key).commits
	}},
	{"update-key-old-key-signs-after", "after the owner's self-update, a commit signed with its old key", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.owner, updateKeyOp(p.owner, rekeyed(tb, p.owner, 41)), rotateOp).Do(p.owner, addOp(p.m5, coffer.RoleReader)).commits
	}},
	{"update-key-old-key-leaves-after", "after the reader's self-update, a leave signed with its old key", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, op, rotateOp).Do(p.reader, leaveOp(p.reader)).commits
	}},
	{"update-key-old-key-updates-again", "after the reader's self-update, its old key signs another self-update", coffer.RuleSignature, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		return p.base(tb).Do(p.reader, op, rotateOp).Do(p.reader, updateKeyOp(p.reader, rekeyed(tb, p.reader, 44)), rotateOp).commits
	}},

	// RuleKeyReuse: both keys are new, and nobody else's.
	{"update-key-unchanged", "a reader 'updates' to the keys it already has", coffer.RuleKeyReuse, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.reader, updateKeyOp(p.reader, p.reader), rotateOp).commits
	}},
	{"update-key-same-signing-key", "a reader replaces only its encryption key", coffer.RuleKeyReuse, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		op.SigningKey = p.reader.Public()
		return p.base(tb).Do(p.reader, op, rotateOp).commits
	}},
	{"update-key-same-encryption-key", "a reader replaces only its signing key, so the old encryption key would get the new epoch", coffer.RuleKeyReuse, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		op.EncryptionKey = p.reader.EncryptionKey
		return p.base(tb).Do(p.reader, op, rotateOp).commits
	}},
	{"update-key-takes-other-signing-key", "a reader takes the writer's signing key", coffer.RuleKeyReuse, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		op.SigningKey = p.writer.Public()
		return p.base(tb).Do(p.reader, op, rotateOp).commits
	}},
	{"update-key-takes-other-encryption-key", "a reader takes the owner's encryption key", coffer.RuleKeyReuse, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		op.EncryptionKey = p.owner.EncryptionKey
		return p.base(tb).Do(p.reader, op, rotateOp).commits
	}},
	{"update-key-takes-other-keys", "a writer takes both keys of the admin", coffer.RuleKeyReuse, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		return p.base(tb).Do(p.writer, updateKeyOp(p.writer, p.admin), rotateOp).commits
	}},

	// The parser's key checks, as for add.
	{"update-key-small-order-key", "a self-update to the identity point as signing key", coffer.RuleWeakKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		op.SigningKey = mustHex(tb, "0100000000000000000000000000000000000000000000000000000000000000")
		return p.base(tb).Do(p.reader, op, rotateOp).commits
	}},
	{"update-key-non-canonical-key", "a self-update to a signing key that encodes y = p+3", coffer.RuleWeakKey, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		op.SigningKey = mustHex(tb, "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
		return p.base(tb).Do(p.reader, op, rotateOp).commits
	}},
	{"update-key-invalid-encryption-key", "a self-update to an encryption key that is not an X-Wing key", coffer.RuleMalformed, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		op.EncryptionKey = bytes.Repeat([]byte{0xff}, coffer.EncryptionKeySize)
		return p.base(tb).Do(p.reader, op, rotateOp).commits
	}},
	{"update-key-truncated", "a correctly signed self-update cut inside its encryption key", coffer.RuleMalformed, func(tb testing.TB, p chainCast) []coffer.SignedCommit {
		_, op := selfUpdate(tb, p)
		b := p.base(tb)
		return b.pushBody(b.Next(p.reader, rotateOp, op), func(body []byte) []byte { return body[:len(body)-1] }, p.reader.Key)
	}},
}

// TestUpdateKeyState checks what a self-update leaves: the entry holds the
// new keys, with the same id, handle, role and join epoch, and a new epoch
// starts; and that a checkpoint taken after it resumes with the new keys.
func TestUpdateKeyState(t *testing.T) {
	p := MustChainCast(t)
	nk, op := selfUpdate(t, p)
	b := p.base(t)
	before := checkChain(t, b.commits, "")
	b.Do(p.reader, op, rotateOp)
	after := checkChain(t, b.commits, "")
	old, m := before.Members[p.reader.ID], after.Members[p.reader.ID]
	if !bytes.Equal(m.SigningKey, nk.Public()) || !bytes.Equal(m.EncryptionKey, nk.EncryptionKey) {
		t.Fatalf("the entry does not hold the new keys")
	}
	if m.Handle != old.Handle || m.Role != old.Role || m.JoinedEpoch != old.JoinedEpoch {
		t.Fatalf("the update changed more than the keys: %+v → %+v", old, m)
	}
	if old.KeyEpoch != old.JoinedEpoch || m.KeyEpoch != after.Epoch {
		t.Fatalf("key epoch %d before (joined %d), %d after; want the joined epoch, then %d", old.KeyEpoch, old.JoinedEpoch, m.KeyEpoch, after.Epoch)
	}
	if after.Epoch != before.Epoch+1 || after.RoleAt(p.reader.ID, after.Epoch) != coffer.RoleReader {
		t.Fatalf("epoch %d → %d, role at new epoch %s", before.Epoch, after.Epoch, after.RoleAt(p.reader.ID, after.Epoch))
	}
	if !bytes.Equal(before.Members[p.reader.ID].SigningKey, p.reader.Public()) {
		t.Fatalf("the update changed the state it was verified from")
	}
	var cp coffer.GroupState
	data := mustMarshalState(t, after)
	if err := cp.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if cp.Members[p.reader.ID].KeyEpoch != after.Epoch || !bytes.Equal(mustMarshalState(t, &cp), data) {
		t.Fatalf("the checkpoint does not keep the key epoch")
	}
	// A key epoch at or below the joined epoch, or beyond the head, is refused.
	for _, bad := range []uint64{m.JoinedEpoch, after.Epoch + 1} {
		b := slices.Clone(data)
		binary.BigEndian.PutUint64(b[len(b)-8:], bad)
		if err := new(coffer.GroupState).UnmarshalBinary(b); err == nil {
			t.Fatalf("a checkpoint with key epoch %d loads", bad)
		}
	}
	b.Do(nk, leaveOp(nk))
	if _, err := coffer.VerifyChain(&cp, b.commits[len(b.commits)-1:]); err != nil {
		t.Fatalf("a commit signed with the new key does not verify from a checkpoint: %v", err)
	}
}

// TestUpdateKeyRoundTrip checks the update-key encoding: Marshal and
// ParseCommit agree, and every truncation fails.
func TestUpdateKeyRoundTrip(t *testing.T) {
	p := MustChainCast(t)
	_, op := selfUpdate(t, p)
	c := p.base(t).Next(p.reader, op, rotateOp)
	body := c.Marshal()
	got, err := coffer.ParseCommit(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), body) || got.Ops[0].Kind != coffer.OpUpdateKey || got.Ops[0].Member != p.reader.ID ||
		!bytes.Equal(got.Ops[0].SigningKey, op.SigningKey) || !bytes.Equal(got.Ops[0].EncryptionKey, op.EncryptionKey) {
		t.Fatalf("update-key does not round-trip")
	}
	if coffer.OpUpdateKey.String() != "update-key" {
		t.Fatalf("OpUpdateKey.String() = %q", coffer.OpUpdateKey.String())
	}
	for n := len(body) - 1; n > len(body)-1-(1+16+coffer.SigningKeySize+coffer.EncryptionKeySize+1); n-- {
		if _, err := coffer.ParseCommit(body[:n]); err == nil {
			t.Fatalf("a commit cut to %d of %d bytes parses", n, len(body))
		}
	}
}
