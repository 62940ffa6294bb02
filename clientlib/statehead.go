package clientlib

import (
	"encoding/binary"

	"github.com/cofferhq/coffer"
)

// The stored group state starts with a fixed header (coffer.GroupState's
// MarshalBinary, every version so far: 1 to 3 suite v1, 4 suite v2, 5 a
// tree group): version uint8, group [16]byte, seq uint64, head [32]byte.
// Checking a snapshot against the tail that extends it needs only seq and
// head.
const (
	stateHeadSize   = 1 + 16 + 8 + 32
	stateVersionMax = 5
)

// peekStateHead reads seq and head from an encoded state of group g. ok is
// false for anything it does not recognise, which the caller then decodes
// whole.
func peekStateHead(b []byte, g coffer.GroupID) (seq uint64, head [32]byte, ok bool) {
	if len(b) < stateHeadSize || b[0] < 1 || b[0] > stateVersionMax || string(b[1:17]) != string(g[:]) {
		return 0, head, false
	}
	seq = binary.BigEndian.Uint64(b[17:25])
	copy(head[:], b[25:57])
	return seq, head, seq != 0
}
