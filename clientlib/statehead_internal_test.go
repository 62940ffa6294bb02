package clientlib

import (
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// TestPeekStateHeadMatchesEncoding: saveState compares heads through
// peekStateHead without decoding the state; it must read exactly what
// GroupState.MarshalBinary wrote, and fall back to decoding anything else.
func TestPeekStateHeadMatchesEncoding(t *testing.T) {
	id, err := GenerateIdentity("alice")
	if err != nil {
		t.Fatal(err)
	}
	me, g := coffer.NewAccountID(), coffer.NewGroupID()
	k := groupkey.NewEpochKey()
	pub := id.Public()
	sc := coffer.SignCommit(&coffer.Commit{
		Group: g, Seq: 1, Epoch: 1, Author: me, Time: time.Now().UnixMilli(),
		KeyCommitment: groupkey.Commitment(k, g, 1),
		Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: me, Handle: id.Handle(), Role: coffer.RoleOwner,
			SigningKey: pub.SigningKey, EncryptionKey: pub.EncryptionKey}},
	}, id.signing)
	s, err := coffer.VerifyChain(nil, []coffer.SignedCommit{sc})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	seq, head, ok := peekStateHead(b, g)
	if !ok || seq != s.Seq || head != s.Head {
		t.Fatalf("peekStateHead = %d, %x, %v; the state is at %d, %x", seq, head, ok, s.Seq, s.Head)
	}
	if _, _, ok := peekStateHead(b, coffer.NewGroupID()); ok {
		t.Fatal("peekStateHead read the state of another group")
	}
	for _, bad := range [][]byte{nil, b[:stateHeadSize-1], append([]byte{stateVersionMax + 1}, b[1:]...), append([]byte{0}, b[1:]...)} {
		if _, _, ok := peekStateHead(bad, g); ok {
			t.Fatalf("peekStateHead accepted %x", bad[:min(len(bad), 8)])
		}
	}

	// Through the key store: the fallback decodes, and names a corrupt
	// state.
	c := &Client{ks: NewMemoryKeyStore()}
	if _, _, found, err := c.storedHead(g); found || err != nil {
		t.Fatalf("no stored state: found %v, %v", found, err)
	}
	c.ks.Put(stateKey(g), b)
	if seq, head, found, err := c.storedHead(g); !found || err != nil || seq != s.Seq || head != s.Head {
		t.Fatalf("storedHead = %d, %x, %v, %v", seq, head, found, err)
	}
	c.ks.Put(stateKey(g), append([]byte{9}, b[1:]...))
	if _, _, _, err := c.storedHead(g); err == nil {
		t.Fatal("storedHead accepted a state of an unknown version")
	}
}
