package coffer

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// compareIDs must order ids exactly as bytes.Compare does: stored states
// list members in that order.
func TestCompareIDsIsByteOrder(t *testing.T) {
	ids := make([]AccountID, 200)
	for i := range ids {
		rand.Read(ids[i][:])
	}
	ids[1] = ids[0]
	ids[2] = ids[0]
	ids[2][15]++ // differs in the last byte only
	ids[3] = ids[0]
	ids[3][7] ^= 0x80 // in the first half's last byte
	for _, a := range ids {
		for _, b := range ids {
			if got, want := compareIDs(a, b), bytes.Compare(a[:], b[:]); got != want {
				t.Fatalf("compareIDs(%x, %x) = %d, bytes.Compare = %d", a, b, got, want)
			}
		}
	}
}
