package ratchettree

import (
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// benchSizes are the member counts of the issue-15 benchmarks; a sub-
// benchmark's name ends in its count.
var benchSizes = []struct {
	name string
	n    uint32
}{{"1k", 1000}, {"10k", 10_000}, {"100k", 100_000}}

// keyPool is a fixed set of X-Wing key pairs that a benchmark tree reuses
// across nodes (node x holds pool[x % len]). Deriving 200,000 distinct
// keys would dominate the fixture and change nothing measured: a seal
// costs the same whichever key it is to, and the tree hash still hashes
// every node's 1216 bytes.
type keyPool struct {
	secrets [][]byte
	priv    []hpke.PrivateKey
	pub     [][]byte
}

func newKeyPool(tb testing.TB, size int) *keyPool {
	p := &keyPool{}
	for i := range size {
		s := sha256.Sum256(fmt.Appendf(nil, "bench/%d", i))
		k, err := nodeKey(s[:])
		if err != nil {
			tb.Fatal(err)
		}
		p.secrets = append(p.secrets, s[:])
		p.priv = append(p.priv, k)
		p.pub = append(p.pub, k.PublicKey().Bytes())
	}
	return p
}

// benchTree is a full group of n members after a genesis by leaf 0: every
// node has a key, and every parent node not above leaf 0 is tainted by 0.
func benchTree(p *keyPool, n uint32) *Tree {
	t := newTree()
	t.resize(n)
	for x := uint32(0); x < Width(n); x++ {
		t.mut(x).set(known(p.pub[int(x)%len(p.pub)]))
		if Level(x) > 0 && !IsAncestor(x, 0) {
			t.mut(x).taint = []uint32{0}
		}
	}
	t.rehashAll()
	return t
}

// benchMember is the private view of the member at leaf, consistent with
// benchTree.
func benchMember(p *keyPool, leaf, n uint32) *Member {
	x := LeafNode(leaf)
	m := NewMember(leaf, p.priv[int(x)%len(p.priv)])
	for _, a := range DirectPath(x, n) {
		m.secrets[a] = p.secrets[int(a)%len(p.secrets)]
	}
	return m
}

// BenchmarkRemoveMemberTree: admin 0 removes one member of an n-member
// tree group. ns/op is the committer's build (path secrets, key
// derivations, seals on every core, tree hash). It also reports the
// bytes the committer uploads (the encoded commit), the bytes the
// receiving member that needs the most downloads (the removed leaf's
// sibling: every path key, its one ciphertext, the header and the tree
// hash), the public verifier's time over the full tree, and that
// member's time from the commit to the new epoch key.
func BenchmarkRemoveMemberTree(b *testing.B) {
	pool := newKeyPool(b, 256)
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			t := benchTree(pool, sz.n)
			ctx := Context{Epoch: 2}
			removed := sz.n/2 + 1 // odd, so its sibling leaf is removed-1
			recv := benchMember(pool, removed-1, sz.n)
			ch := make([]byte, 32)
			var up, down int
			var verify, receive time.Duration
			b.ResetTimer()
			for b.Loop() {
				c, _, _, err := Create(t, ctx, 0, Spec{Path: &PathSpec{Op: OpRemove, Leaf: removed}})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				enc, _ := c.MarshalBinary()
				up = len(enc)
				down = 4 + 1 + 4 + len(c.Path.PublicKeys)*PublicKeySize + 8 + CiphertextSize + 32
				start := time.Now()
				if _, err := Verify(t, 0, c, nil); err != nil {
					b.Fatal(err)
				}
				verify += time.Since(start)
				start = time.Now()
				if _, err := recv.Receive(ctx, c, ch); err != nil {
					b.Fatal(err)
				}
				receive += time.Since(start)
				b.StartTimer()
			}
			b.ReportMetric(float64(up), "B-uploaded/op")
			b.ReportMetric(float64(down), "B-downloaded/op")
			b.ReportMetric(float64(verify.Nanoseconds())/float64(b.N), "ns-verify/op")
			b.ReportMetric(float64(receive.Nanoseconds())/float64(b.N), "ns-receive/op")
			b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
		})
	}
}

// BenchmarkRemoveMemberPairwiseSeal is the pairwise scheme's raw cost in
// the same run: n-1 HPKE seals of a 32-byte epoch key, on every core as
// groupkey.WrapEach does, and n-1 wraps of 1168 bytes uploaded.
func BenchmarkRemoveMemberPairwiseSeal(b *testing.B) {
	pool := newKeyPool(b, 256)
	pks := make([]hpke.PublicKey, len(pool.pub))
	for i, k := range pool.pub {
		pks[i], _ = kem.NewPublicKey(k)
	}
	epochKey := make([]byte, 32)
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			n := int(sz.n) - 1
			for b.Loop() {
				err := parallel(n, func(i int) error {
					_, err := hpke.Seal(pks[i%len(pks)], kdf, aead, []byte("coffer/v1/wrap"), epochKey)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*CiphertextSize), "B-uploaded/op")
			b.ReportMetric(float64(CiphertextSize), "B-downloaded/op")
		})
	}
}

// BenchmarkBuildTree: genesis of an n-member tree group by one commit
// (bulk add, a rekey of every parent node: about 2n seals on every core).
func BenchmarkBuildTree(b *testing.B) {
	pool := newKeyPool(b, 256)
	for _, sz := range benchSizes[:2] {
		b.Run(sz.name, func(b *testing.B) {
			t0, _ := NewTree([][]byte{pool.pub[0]})
			adds := make([]LeafKey, sz.n-1)
			for i := range adds {
				adds[i] = LeafKey{Leaf: uint32(i + 1), Key: pool.pub[(i+1)%len(pool.pub)]}
			}
			var up int
			for b.Loop() {
				c, _, _, err := Create(t0, Context{Epoch: 1}, 0, Spec{Adds: adds})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				enc, _ := c.MarshalBinary()
				up = len(enc)
				b.StartTimer()
			}
			b.ReportMetric(float64(up), "B-uploaded/op")
			b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
		})
	}
}
