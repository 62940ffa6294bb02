package content_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer/internal/content"
)

// storedReader reads hashes from a stored tree as the server's store does,
// counting the reads and checking what it is asked for.
type storedReader struct {
	tb    testing.TB
	tree  []byte
	reads int
}

func (r *storedReader) read(indexes []int64) ([]tlog.Hash, error) {
	r.reads++
	if !slices.IsSorted(indexes) || len(slices.Compact(slices.Clone(indexes))) != len(indexes) {
		r.tb.Errorf("indexes not sorted and unique: %v", indexes)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || (x+1)*32 > int64(len(r.tree)) {
			return nil, errors.New("no such stored hash")
		}
		copy(out[i][:], r.tree[x*32:])
	}
	return out, nil
}

func serveStored(tb testing.TB, s sealed, tree []byte, first, count uint64) ([]byte, int) {
	tb.Helper()
	r := &storedReader{tb: tb, tree: tree}
	var b bytes.Buffer
	if err := content.WriteRange(&b, bytes.NewReader(s.blob), s.size, s.chunks, content.NewStoredProver(s.chunks, r.read), first, count); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes(), r.reads
}

// TestStoredProverMatchesList: proofs from the stored tree are the proofs
// from the list, byte for byte, for spans inside one proof batch and
// across several, and a span of up to 256 chunks costs one read.
func TestStoredProverMatchesList(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, plaintextOf(600*content.ChunkSize+5)) // 601 chunks
	hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	if err != nil {
		t.Fatal(err)
	}
	tree := hs.StoredTree()
	if int64(len(tree)) != content.StoredTreeSize(s.chunks) {
		t.Fatalf("stored tree of %d bytes, want %d", len(tree), content.StoredTreeSize(s.chunks))
	}
	for _, sp := range [][3]uint64{{0, 1, 1}, {600, 1, 1}, {299, 2, 1}, {0, 256, 1}, {0, 257, 2}, {10, 591, 3}, {0, 601, 3}} {
		want := encodeFrames(serveRange(t, s, sp[0], sp[1]))
		got, reads := serveStored(t, s, tree, sp[0], sp[1])
		if !bytes.Equal(got, want) {
			t.Errorf("chunks %d+%d: the stored tree's frames differ from the list's", sp[0], sp[1])
		}
		if reads != int(sp[2]) {
			t.Errorf("chunks %d+%d: %d reads of the stored tree, want %d", sp[0], sp[1], reads, sp[2])
		}
	}
}

// TestStoredTreeTampered changes every stored hash in turn, and replaces
// the tree by another upload's: a range read either proves (the hash is
// not on the path of any leaf served) and returns exactly the plaintext,
// or stops with a security error at the header or the chunk concerned,
// never with other bytes.
func TestStoredTreeTampered(t *testing.T) {
	const c = content.ChunkSize
	tg := newTarget()
	plaintext := plaintextOf(40*c + 99)
	s := MustEncrypt(t, tg, plaintext)
	hs, _ := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	tree := hs.StoredTree()
	other := MustEncrypt(t, tg, plaintextOf(40*c+99))
	otherList, _ := content.VerifyChunkHashes(other.list(), other.root, other.chunks)
	off, l := int64(7*c+10), int64(2*c)
	first, count := content.ChunkSpan(off, l)
	check := func(name string, bad []byte) (failed bool) {
		t.Helper()
		wire, _ := serveStored(t, s, bad, first, count)
		got, err := readRange(tg, s, wire, off, l)
		if err == nil {
			if !bytes.Equal(got, plaintext[off:off+l]) {
				t.Fatalf("%s: the range read returned other bytes", name)
			}
			return false
		}
		var ce *content.ChunkError
		if !errors.As(err, &ce) || !errors.Is(err, content.ErrTampered) {
			t.Fatalf("%s: %v, want a ChunkError", name, err)
		}
		if want := plaintext[off:max(off, ce.Chunk*c)]; ce.Chunk >= 0 && !bytes.Equal(got, want) || ce.Chunk < 0 && len(got) != 0 {
			t.Fatalf("%s: %d bytes before the error at chunk %d", name, len(got), ce.Chunk)
		}
		return true
	}
	failures := 0
	for i := 0; i < len(tree)/32; i++ {
		bad := bytes.Clone(tree)
		bad[i*32+5] ^= 0x40
		if check("stored hash changed", bad) {
			failures++
		}
	}
	// Each leaf's proof is about log2(42) hashes, which the tree stores: the
	// header's and the two chunks' paths must all have been caught.
	if failures < 10 {
		t.Errorf("only %d of %d changed stored hashes were caught", failures, len(tree)/32)
	}
	if !check("another upload's stored tree", otherList.StoredTree()) {
		t.Error("another upload's stored tree proved")
	}
	if !check("all zero", make([]byte, len(tree))) {
		t.Error("a zero tree proved")
	}
}
