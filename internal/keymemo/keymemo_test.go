package keymemo

import (
	"bytes"
	"testing"
)

// TestKnown: only the exact bytes remembered are known, and the memo
// stays bounded: the oldest are forgotten past Size.
func TestKnown(t *testing.T) {
	k := bytes.Repeat([]byte{7}, 1216)
	if Known(k) {
		t.Fatal("known before it was remembered")
	}
	Remember(k)
	if !Known(k) {
		t.Fatal("not known after it was remembered")
	}
	other := bytes.Clone(k)
	other[1215] ^= 1
	if Known(other) || Known(k[:1215]) {
		t.Fatal("bytes that differ from a remembered key are known")
	}
	for i := range Size {
		b := bytes.Clone(other)
		b[0], b[1], b[2] = byte(i), byte(i>>8), byte(i>>16)
		Remember(b)
	}
	if Known(k) || seen.Len() != Size {
		t.Fatalf("after %d more keys the first is still known (%d held)", Size, seen.Len())
	}
	Remember(k)
	Forget()
	if Known(k) || seen.Len() != 0 {
		t.Fatal("known after Forget")
	}
}
