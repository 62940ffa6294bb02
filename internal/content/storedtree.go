package content

import (
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// A range read needs the inclusion proofs of a few leaves of a chunk tree.
// Rebuilding them from the chunk hash list costs a read of the whole list
// and about two hashes per leaf on every request (512 KiB and 32,000 hashes
// for 1 GiB). The server instead keeps the tree's stored hashes, laid out as
// golang.org/x/mod/sumdb/tlog lays them out (tlog.StoredHashIndex), which
// the list proven against the signed root yields at no extra cost when an
// upload is finalized; a proof then reads about log2(leaves) of them.
// Readers trust none of it: every proof is checked against the signed root.

// A Prover gives the tlog record proofs of leaves of a chunk tree.
type Prover interface {
	// Proofs returns the proofs of the leaves (0 for the age header, 1+i
	// for chunk i), in order.
	Proofs(leaves []int64) ([]tlog.RecordProof, error)
}

// Proofs implements Prover from the verified list.
func (c *ChunkHashes) Proofs(leaves []int64) ([]tlog.RecordProof, error) {
	out := make([]tlog.RecordProof, len(leaves))
	for i, n := range leaves {
		p, err := c.Prove(n)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// StoredTree returns the tree's stored hashes, concatenated in
// tlog.StoredHashIndex order: tlog.StoredHashCount(leaves) hashes of 32
// bytes. NewStoredProver proves leaves from them.
func (c *ChunkHashes) StoredTree() []byte {
	b := make([]byte, 0, len(c.tree.stored)*tlog.HashSize)
	for _, h := range c.tree.stored {
		b = append(b, h[:]...)
	}
	return b
}

// StoredTreeSize is the length of StoredTree for a file of chunks STREAM
// chunks.
func StoredTreeSize(chunks uint64) int64 {
	return tlog.StoredHashCount(int64(chunks)+1) * tlog.HashSize
}

// NewStoredProver returns a Prover for the tree of chunks+1 leaves whose
// stored hashes read returns, by tlog.StoredHashIndex: read gets every
// index one call of Proofs needs at once, sorted and without repeats, and
// must return their hashes in that order. Nothing it returns is trusted by
// a reader, so a damaged store yields proofs that fail, never a forgery.
func NewStoredProver(chunks uint64, read func(indexes []int64) ([]tlog.Hash, error)) Prover {
	return &storedProver{leaves: int64(chunks) + 1, read: read}
}

type storedProver struct {
	leaves int64
	read   func(indexes []int64) ([]tlog.Hash, error)
}

func (p *storedProver) Proofs(leaves []int64) ([]tlog.RecordProof, error) {
	// tlog.ProveRecord asks for all the hashes of one proof in a single
	// ReadHashes; the indexes depend only on the tree size and the leaf, so
	// a first pass collects them for every leaf and one read fetches them.
	var want indexCollector
	for _, n := range leaves {
		if _, err := tlog.ProveRecord(p.leaves, n, &want); err != nil {
			return nil, err
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	var got []tlog.Hash
	if len(want) > 0 {
		var err error
		if got, err = p.read(want); err != nil {
			return nil, err
		}
		if len(got) != len(want) {
			return nil, fmt.Errorf("content: %d stored tree hashes read for %d asked", len(got), len(want))
		}
	}
	r := sortedHashes{want, got}
	out := make([]tlog.RecordProof, len(leaves))
	for i, n := range leaves {
		proof, err := tlog.ProveRecord(p.leaves, n, r)
		if err != nil {
			return nil, err
		}
		out[i] = proof
	}
	return out, nil
}

// indexCollector is a tlog.HashReader that records what it is asked for
// and answers zero hashes.
type indexCollector []int64

func (c *indexCollector) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	*c = append(*c, indexes...)
	return make([]tlog.Hash, len(indexes)), nil
}

// sortedHashes is a tlog.HashReader over hashes read for sorted indexes.
type sortedHashes struct {
	index []int64
	hash  []tlog.Hash
}

func (s sortedHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		j, ok := slices.BinarySearch(s.index, x)
		if !ok {
			return nil, fmt.Errorf("content: stored tree hash %d was not read", x)
		}
		out[i] = s.hash[j]
	}
	return out, nil
}
