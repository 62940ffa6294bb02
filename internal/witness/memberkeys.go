package witness

import (
	"bytes"

	"github.com/cofferhq/coffer"
)

// chainKeys is the coffer.MemberKeySource of the replayed account chains:
// the member keys of every user key they set. A chain's current keys share
// the parsed signing key of its state; retired ones, which only commits
// by an author whose entry predates a rotation need, are kept encoded and
// parsed when asked for, since a parsed hybrid key holds its expanded
// ML-DSA matrix (about 40 KB against 3.2 KB encoded). Lookups only read,
// so VerifyChainWith may call it from several goroutines while nothing
// else runs; set and retire run from apply, alone.
type chainKeys struct {
	current coffer.MemberKeyMap
	retired map[[32]byte][]byte
}

func newChainKeys() *chainKeys {
	return &chainKeys{current: coffer.MemberKeyMap{}, retired: map[[32]byte][]byte{}}
}

// set records next's current keys, retiring prev's (nil for a genesis or
// a restored state).
func (ks *chainKeys) set(prev, next *coffer.AccountState) {
	if prev != nil {
		old := prev.MemberKeys()
		h := old.Hash()
		delete(ks.current, h)
		ks.retire(h, old.Marshal())
	}
	ks.current.Add(next.MemberKeys())
}

// retire records the encoding of retired member keys under their hash.
func (ks *chainKeys) retire(h [32]byte, enc []byte) { ks.retired[h] = bytes.Clone(enc) }

// retiredEncodings lists the retired keys, for the snapshot.
func (ks *chainKeys) retiredEncodings() [][]byte {
	out := make([][]byte, 0, len(ks.retired))
	for _, b := range ks.retired {
		out = append(out, b)
	}
	return out
}

// MemberKeys implements coffer.MemberKeySource. The verifier checks what
// it returns against the hash, as it would the server's answer.
func (ks *chainKeys) MemberKeys(h [32]byte) (*coffer.MemberKeys, error) {
	if b, ok := ks.retired[h]; ok {
		return coffer.ParseMemberKeys(b)
	}
	return ks.current.MemberKeys(h)
}
