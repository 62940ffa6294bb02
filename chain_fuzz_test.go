package coffer_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/cofferhq/coffer"
)

// FuzzGroupStateUnmarshal: a stored verified state comes back from the
// device key store or the server's database. A corrupt one must be refused,
// never panic, and never leave a half-restored state behind.
func FuzzGroupStateUnmarshal(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	dk, _ := coffer.KEM().GenerateKey()
	owner := coffer.NewAccountID()
	c := &coffer.Commit{Group: coffer.NewGroupID(), Seq: 1, Epoch: 1, Author: owner, ShareHistory: true,
		Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: owner, Handle: "owner", Role: coffer.RoleOwner,
			SigningKey: key.Public().(ed25519.PublicKey), EncryptionKey: dk.PublicKey().Bytes()}}}
	c.KeyCommitment[0] = 1
	s, err := coffer.VerifyChain(nil, []coffer.SignedCommit{coffer.SignCommit(c, key)})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.MarshalBinary()
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var st coffer.GroupState
		if err := st.UnmarshalBinary(data); err != nil {
			return
		}
		// Whatever was accepted must re-encode and be usable.
		if _, err := st.MarshalBinary(); err != nil {
			t.Fatalf("accepted state does not re-encode: %v", err)
		}
		_ = st.SortedMembers()
		_, _ = st.KeyCommitment(st.Epoch)
	})
}
