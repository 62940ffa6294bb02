package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
)

// The server proves range reads from the chunk tree's stored hashes kept in
// the resource's row (resources.chunk_tree), not from the chunk hash list
// in the blob. These tests change that stored tree through the database:
// the client proves every frame against the signed root, so a read either
// returns exactly the range's plaintext or stops with a security error at
// the header or the chunk concerned, never with other bytes.

func (f *resourceTamper) storedTree(t *testing.T, id coffer.ResourceID) []byte {
	t.Helper()
	var tree []byte
	if err := f.db.QueryRow(context.Background(), `SELECT chunk_tree FROM resources WHERE id = $1`, id).Scan(&tree); err != nil {
		t.Fatal(err)
	}
	return tree
}

func (f *resourceTamper) setStoredTree(t *testing.T, id coffer.ResourceID, tree []byte) {
	t.Helper()
	mustExec(t, f.db, `UPDATE resources SET chunk_tree = $2 WHERE id = $1`, id, tree)
}

// rangeOutcome reads [off, off+n) of a as carol and reports whether it
// failed, requiring a security error at the header or a chunk of the range
// with exactly the plaintext before it, or else exactly the range.
func (f *resourceTamper) rangeOutcome(t *testing.T, name string, off, n int64) (failed bool) {
	t.Helper()
	got, err := readRange(f.carol, f.g, f.a.ID, off, n)
	if err == nil {
		if !bytes.Equal(got, f.dataA[off:off+n]) {
			t.Fatalf("%s: the range read returned other bytes", name)
		}
		return false
	}
	if !coffer.IsSecurity(err) || !errors.Is(err, content.ErrTampered) {
		t.Fatalf("%s: %v, want a security error", name, err)
	}
	var ce *content.ChunkError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v names no chunk", name, err)
	}
	first, count := content.ChunkSpan(off, n)
	if ce.Chunk != -1 && (ce.Chunk < int64(first) || ce.Chunk >= int64(first+count)) {
		t.Fatalf("%s: stopped at chunk %d, outside the range's chunks %d+%d", name, ce.Chunk, first, count)
	}
	want := []byte{}
	if ce.Chunk > int64(first) {
		want = f.dataA[off : ce.Chunk*ptChunk]
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: the caller received %d bytes before chunk %d, want %d", name, len(got), ce.Chunk, len(want))
	}
	return true
}

// TestRangeReadFromStoredTree: finalize stores the tree's stored hashes
// with the row, and a range read is proven from them: with the chunk hash
// list in the blob damaged (which a whole read refuses), range reads still
// return exactly the plaintext.
func TestRangeReadFromStoredTree(t *testing.T) {
	t.Parallel()
	f := newChunkTamper(t)
	tree := f.storedTree(t, f.a.ID)
	if int64(len(tree)) != content.StoredTreeSize(5) {
		t.Fatalf("a 5-chunk resource was finalized with a stored tree of %d bytes, want %d", len(tree), content.StoredTreeSize(5))
	}
	b := f.chunkBlob(t, f.a.ID, f.a.ContentSize)
	for i := range 6 {
		b.leaf(i)[3] ^= 0xff
	}
	b.store(t)
	_, err := readResource(f.carol, f.g, f.a.ID)
	wantSecurity(t, err)
	for _, rg := range [][2]int64{{0, 10}, {ptChunk + 100, 3*ptChunk - 200}, {4 * ptChunk, 1234}} {
		if f.rangeOutcome(t, "damaged list", rg[0], rg[1]) {
			t.Fatalf("range %d+%d failed: it was proven from the blob's list, not the stored tree", rg[0], rg[1])
		}
	}
}

// TestTamperStoredTree changes the stored tree in every way the database
// allows: each stored hash in turn, another resource's tree of the same
// shape, zeros. A tree of the wrong length or none at all is set aside by
// the server, which proves from the blob's list (and stores the tree again
// where there was none): the read is then exact.
func TestTamperStoredTree(t *testing.T) {
	t.Parallel()
	f := newChunkTamper(t)
	tree := f.storedTree(t, f.a.ID)
	off, n := int64(ptChunk+100), int64(3*ptChunk-200)
	failures := 0
	for i := 0; i < len(tree)/32; i++ {
		bad := bytes.Clone(tree)
		bad[32*i+9] ^= 0x10
		f.setStoredTree(t, f.a.ID, bad)
		if f.rangeOutcome(t, "one stored hash changed", off, n) {
			failures++
		}
	}
	// The frames are leaves 0, 2, 3 and 4 of a 6-leaf tree, whose 10 stored
	// hashes are the 6 leaves, the 3 nodes over pairs and the node over
	// leaves 0-3. The four proofs use all but the hashes of leaves 0 and 4,
	// which the reader computes from the frames themselves.
	if failures != 8 {
		t.Errorf("%d of %d changed stored hashes stopped the read, want 8", failures, len(tree)/32)
	}
	for _, tc := range []struct {
		name string
		tree []byte
	}{
		{"another resource's stored tree", f.storedTree(t, f.b.ID)},
		{"zeros", make([]byte, len(tree))},
	} {
		f.setStoredTree(t, f.a.ID, tc.tree)
		if !f.rangeOutcome(t, tc.name, off, n) {
			t.Errorf("%s: the range read succeeded", tc.name)
		}
	}
	for _, tc := range []struct {
		name string
		tree []byte
	}{
		{"truncated", tree[:len(tree)-32]},
		{"extended", append(bytes.Clone(tree), make([]byte, 32)...)},
		{"absent", nil},
	} {
		f.setStoredTree(t, f.a.ID, tc.tree)
		if f.rangeOutcome(t, tc.name, off, n) {
			t.Errorf("%s: the server did not fall back to the blob's list", tc.name)
		}
	}
	if !bytes.Equal(f.storedTree(t, f.a.ID), tree) {
		t.Error("a version without a stored tree did not get it back at its first range read")
	}
}
