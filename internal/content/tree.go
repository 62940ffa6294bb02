package content

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// The chunk tree is an RFC 6962 Merkle tree, computed only with
// golang.org/x/mod/sumdb/tlog, over the leaves of a resource's age file:
//
//	leaf 0:     the age header and the 16-byte payload nonce after it
//	leaf 1+i:   STREAM chunk i exactly as stored (ciphertext and tag)
//
// The author signs its root, the number of STREAM chunks and the age file's
// size in the resource header. The leaf hashes travel as a list beside the
// ciphertext (see ChunkHashes); a reader proves the list against the signed
// root once, and then every chunk against its leaf hash before it decrypts
// it. Because the tree is a tlog tree, a later range read can instead prove
// a single chunk with tlog.ProveRecord / tlog.CheckRecord.

// ErrChunkHashes means the list of chunk hashes served beside the
// ciphertext is not the one whose root the author signed.
var ErrChunkHashes = errors.New("content: the chunk hash list does not match the signed tree root")

// leafHash is the tree's leaf hash of one leaf's bytes.
func leafHash(data []byte) tlog.Hash { return tlog.RecordHash(data) }

// treeBuilder accumulates tlog's stored hashes for leaves appended in order.
// It holds about two hashes per leaf: 1 MiB for a 1 GiB resource.
type treeBuilder struct {
	stored []tlog.Hash
	n      int64
}

func (t *treeBuilder) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.stored)) {
			return nil, fmt.Errorf("content: tree hash %d is not stored", x)
		}
		out[i] = t.stored[x]
	}
	return out, nil
}

func (t *treeBuilder) add(h tlog.Hash) {
	hs, err := tlog.StoredHashesForRecordHash(t.n, h, t)
	if err != nil {
		panic("content: building the chunk tree: " + err.Error()) // reads only hashes it stored
	}
	t.stored = append(t.stored, hs...)
	t.n++
}

func (t *treeBuilder) root() tlog.Hash {
	h, err := tlog.TreeHash(t.n, t)
	if err != nil {
		panic("content: hashing the chunk tree: " + err.Error())
	}
	return h
}

// TreeRoot returns the root of the tree whose leaf hashes are leaves, in
// order. It is what the resource header's TreeRoot must be.
func TreeRoot(leaves [][32]byte) [32]byte {
	var t treeBuilder
	for _, l := range leaves {
		t.add(tlog.Hash(l))
	}
	return t.root()
}

// ChunkHashes is a verified list of leaf hashes: Leaf(0) is the age
// header's, Leaf(1+i) chunk i's.
type ChunkHashes struct {
	leaves []tlog.Hash
	tree   treeBuilder
}

// Chunks is the number of STREAM chunks the list covers.
func (c *ChunkHashes) Chunks() uint64 { return uint64(len(c.leaves) - 1) }

// Prove returns the tlog record proof of leaf n against the root, for a
// range read that sends one chunk with its proof.
func (c *ChunkHashes) Prove(n int64) (tlog.RecordProof, error) {
	return tlog.ProveRecord(c.tree.n, n, &c.tree)
}

// ChunkHashListSize is the length of the encoded list of leaf hashes for a
// file of chunks STREAM chunks.
func ChunkHashListSize(chunks uint64) int64 { return int64(chunks+1) * tlog.HashSize }

// VerifyChunkHashes parses list, the concatenated leaf hashes served beside
// the ciphertext, and checks that it has exactly chunks+1 of them and that
// they hash to root. chunks must come from a verified header, which bounds
// it (see coffer.ParseResourceHeader). Errors match ErrChunkHashes.
func VerifyChunkHashes(list []byte, root [32]byte, chunks uint64) (*ChunkHashes, error) {
	if int64(len(list)) != ChunkHashListSize(chunks) {
		return nil, fmt.Errorf("%w: %d bytes for %d chunks, want %d", ErrChunkHashes, len(list), chunks, ChunkHashListSize(chunks))
	}
	c := &ChunkHashes{leaves: make([]tlog.Hash, chunks+1)}
	for i := range c.leaves {
		c.leaves[i] = tlog.Hash(list[i*tlog.HashSize:])
		c.tree.add(c.leaves[i])
	}
	got := c.tree.root()
	if subtle.ConstantTimeCompare(got[:], root[:]) != 1 {
		return nil, ErrChunkHashes
	}
	return c, nil
}

// leafOK reports whether data hashes to leaf n.
func (c *ChunkHashes) leafOK(n int, data []byte) bool {
	h := leafHash(data)
	return subtle.ConstantTimeCompare(h[:], c.leaves[n][:]) == 1
}
