package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/blobtest"
)

// uploadTree is upload with a stored chunk tree, as the server finalizes a
// blob-backed version.
func (f *resourceFixture) uploadTree(t *testing.T, id coffer.ResourceID, version uint64, data string, tree []byte) *coffer.Resource {
	t.Helper()
	ctx := context.Background()
	u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: id, Group: f.g, Version: version}
	if err := f.db.CreateUpload(ctx, f.writer, u, 100); err != nil {
		t.Fatal(err)
	}
	key := coffer.NewBlobKey()
	blobtest.MustPut(t, f.blobs, key, []byte(data))
	hash := sha256.Sum256([]byte(data))
	if _, err := f.db.SetUploadContent(ctx, f.writer, u.ID, key, int64(len(data)), hash); err != nil {
		t.Fatal(err)
	}
	r := &coffer.Resource{
		ID: id, Group: f.g, Version: version, Author: f.writer, Epoch: 1,
		Header: f.header(t, id, version, f.writer),
		Meta:   []byte("sealed meta"), ContentHash: hash, Size: int64(len(data)), BlobKey: key, ChunkTree: tree,
	}
	if _, err := f.db.FinalizeUpload(ctx, f.writer, u.ID, r, 100); err != nil {
		t.Fatal(err)
	}
	return r
}

// fakeTree is n distinct 32-byte hashes, hash i starting with seed and i.
func fakeTree(seed byte, n int) []byte {
	b := make([]byte, 32*n)
	for i := range n {
		b[32*i] = seed
		binary.BigEndian.PutUint32(b[32*i+1:], uint32(i))
	}
	return b
}

func wantTreeHashes(t *testing.T, f *resourceFixture, id coffer.ResourceID, blobKey string, tree []byte, indexes ...int64) {
	t.Helper()
	hs, n, found, err := f.db.ChunkTreeHashes(context.Background(), f.g, id, blobKey, indexes)
	if err != nil || !found || n != int64(len(tree)) {
		t.Fatalf("ChunkTreeHashes: %d bytes, found %v, %v; want the %d-byte tree", n, found, err, len(tree))
	}
	for i, x := range indexes {
		if !bytes.Equal(hs[i][:], tree[32*x:32*x+32]) {
			t.Fatalf("stored hash %d differs", x)
		}
	}
}

func wantNoTree(t *testing.T, f *resourceFixture, id coffer.ResourceID, blobKey string) {
	t.Helper()
	if _, _, found, err := f.db.ChunkTreeHashes(context.Background(), f.g, id, blobKey, []int64{0}); err != nil || found {
		t.Fatalf("ChunkTreeHashes of blob %s: found %v, %v; want none", blobKey, found, err)
	}
}

// TestChunkTreeStored: the tree finalized with a version is read back in
// slices, in the order asked; it follows the row's blob through replaces
// (a read for the old blob finds nothing), a version finalized without
// one has none until SetChunkTree, which fills in only a missing tree of
// the blob it names, and the tree goes with the row.
func TestChunkTreeStored(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	id := coffer.NewResourceID()
	// Large enough to be stored out of line (TOAST), as real trees are.
	tree1 := fakeTree(1, 4001)
	r1 := f.uploadTree(t, id, 1, "version one", tree1)
	wantTreeHashes(t, f, id, r1.BlobKey, tree1, 0, 4000, 17, 2048, 17)
	wantNoTree(t, f, id, coffer.NewBlobKey())
	wantNoTree(t, f, coffer.NewResourceID(), r1.BlobKey)
	if _, _, _, err := f.db.ChunkTreeHashes(ctx, f.g, id, r1.BlobKey, []int64{4001}); err == nil {
		t.Error("a hash past the stored tree was read")
	}

	tree2 := fakeTree(2, 11)
	r2 := f.uploadTree(t, id, 2, "version two", tree2)
	wantTreeHashes(t, f, id, r2.BlobKey, tree2, 10, 0)
	wantNoTree(t, f, id, r1.BlobKey)

	r3 := f.uploadTree(t, id, 3, "version three", nil)
	wantNoTree(t, f, id, r3.BlobKey)
	if err := f.db.SetChunkTree(ctx, f.g, id, r2.BlobKey, tree2); err != nil {
		t.Fatal(err)
	}
	wantNoTree(t, f, id, r3.BlobKey)
	tree3 := fakeTree(3, 3)
	if err := f.db.SetChunkTree(ctx, f.g, id, r3.BlobKey, tree3); err != nil {
		t.Fatal(err)
	}
	wantTreeHashes(t, f, id, r3.BlobKey, tree3, 0, 1, 2)
	if err := f.db.SetChunkTree(ctx, f.g, id, r3.BlobKey, fakeTree(4, 3)); err != nil {
		t.Fatal(err)
	}
	wantTreeHashes(t, f, id, r3.BlobKey, tree3, 0, 1, 2)

	f.exec(t, `DELETE FROM resources WHERE id = $1`, id)
	var left int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM resources WHERE chunk_tree IS NOT NULL`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d stored trees left after the delete, %v", left, err)
	}
}
