package witness_test

import (
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// BenchmarkWitnessCosign is the witness's cost per cosigned change: each op
// is one push of a checkpoint one group commit bigger (over HTTP: parse,
// log signature, consistency proof, leaf fetch, replay through
// coffer.VerifyChain, root and heads map, journal append and fsync,
// checkpoint file, cosignature). The log holds 1,000 groups
// first, so that the cost shown is the cost per change, at that size.
func BenchmarkWitnessCosign(b *testing.B) {
	const groups = 1000
	h := newHarness(b)
	owner := mustMember(b, 1)
	h.log.append(owner.identityLeaf())
	chains := make([]*chain, groups)
	for i := range chains {
		chains[i] = newChain(1000 + i)
		h.log.append(chains[i].next(owner, owner.add(coffer.RoleOwner)))
	}
	h.pushHonest(0)

	// Every op's leaf and checkpoint, made before the clock runs: one new
	// commit (a rotation) of one of the groups.
	hs := treeHashes(b, h.log.snapshot())
	m := translog.NewMemoryMap()
	for i, raw := range h.log.snapshot() {
		l, _ := translog.ParseLeaf(raw)
		if err := m.ApplyLeaf(int64(i), raw, l); err != nil {
			b.Fatal(err)
		}
	}
	type step struct {
		signed string
		proof  []tlog.Hash
	}
	steps := make([]step, b.N)
	old := h.log.size()
	for i := range steps {
		leaf := chains[i%groups].next(owner, coffer.Op{Kind: coffer.OpRotate})
		n := h.log.size()
		more, err := tlog.StoredHashes(n, leaf, hs)
		if err != nil {
			b.Fatal(err)
		}
		hs = append(hs, more...)
		l, _ := translog.ParseLeaf(leaf)
		if err := m.ApplyLeaf(n, leaf, l); err != nil {
			b.Fatal(err)
		}
		h.log.append(leaf)
		root, _ := tlog.TreeHash(n+1, hs)
		mroot, _ := m.Root()
		p, err := tlog.ProveTree(n+1, old, hs)
		if err != nil {
			b.Fatal(err)
		}
		steps[i] = step{h.log.sign(translog.Checkpoint{Size: n + 1, Root: root, MapSize: m.Size(), MapRoot: mroot, Time: h.log.clock}), p}
		old = n + 1
	}
	b.ResetTimer()
	old = int64(groups + 1)
	for i := range steps {
		if _, err := h.push(old, steps[i].proof, steps[i].signed); err != nil {
			b.Fatal(err)
		}
		old++
	}
}
