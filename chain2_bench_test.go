package coffer_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/cofferhq/coffer"
)

// mustLongChainV2 is mustLongChain in suite v2: the same shape of commits
// (a genesis with an admin and 16 readers, then members of a pool of 32
// added, promoted and removed with a rotation, in turn), with keys hashes
// in the ops and hybrid signatures.
func mustLongChainV2(tb testing.TB, n int) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
	tb.Helper()
	owner, admin := mustV2Member(tb, 1, 1), mustV2Member(tb, 2, 1)
	b := newV2Chain(tb, owner, admin)
	ops := []coffer.Op{addOp2(owner, coffer.RoleOwner), addOp2(admin, coffer.RoleAdmin)}
	for i := range 16 {
		m := mustV2Member(tb, 10+i, 1)
		b.keys.Add(m.Keys)
		ops = append(ops, addOp2(m, coffer.RoleReader))
	}
	b.do(owner, ops...)
	for k := 0; len(b.commits) < n; k++ {
		x := mustV2Member(tb, 100+(k/3)%32, 1)
		b.keys.Add(x.Keys)
		switch k % 3 {
		case 0:
			b.do(owner, addOp2(x, coffer.RoleReader))
		case 1:
			b.do(admin, setRoleOp(&chainMember{ID: x.ID}, coffer.RoleWriter))
		case 2:
			b.do(admin, removeOp(&chainMember{ID: x.ID}), rotateOp)
		}
	}
	return b.commits, b.keys
}

// BenchmarkSyncSuites verifies the same 10,000-commit history in suite v1
// (Ed25519, keys in the ops) and suite v2 (hybrid, keys hashes, keys from
// an in-memory source), beside the limits issue 16 measures sync against:
// 10,000 signature verifications on one goroutine, Ed25519 alone and
// hybrid. ns/commit is comparable across all four.
func BenchmarkSyncSuites(b *testing.B) {
	const n = 10000
	v1 := mustLongChain(b, n)
	v2, keys := mustLongChainV2(b, n)
	b.Run("v1-verify-chain", func(b *testing.B) {
		for b.Loop() {
			if s, err := coffer.VerifyChain(nil, v1); err != nil || s.Seq != n {
				b.Fatal(err)
			}
		}
		perCommit(b, n)
	})
	b.Run("v2-verify-chain", func(b *testing.B) {
		for b.Loop() {
			if s, err := coffer.VerifyChainWith(nil, v2, keys); err != nil || s.Seq != n {
				b.Fatal(err)
			}
		}
		perCommit(b, n)
	})
	owner1, owner2 := MustChainMember(b, 1), mustV2Member(b, 1, 1)
	b.Run("ed25519-verify-1-goroutine", func(b *testing.B) {
		pub := owner1.Public()
		for b.Loop() {
			for _, sc := range v1 {
				ed25519.Verify(pub, coffer.SignedMessage(coffer.LabelCommit, sc.Body), sc.Signature)
			}
		}
		perCommit(b, n)
	})
	b.Run("hybrid-verify-1-goroutine", func(b *testing.B) {
		pub := owner2.Sign.Public()
		for b.Loop() {
			for _, sc := range v2 {
				_ = pub.Verify(coffer.LabelCommit, sc.Body, sc.Signature)
			}
		}
		perCommit(b, n)
	})
}

func perCommit(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/commit")
}

// BenchmarkSuiteSizes reports the sizes that suite v2 changes, beside suite
// v1's, as metrics (B): what a member's entry carries of its keys, a signed
// commit adding one member, and a group checkpoint per member. The loop
// re-encodes the checkpoints, so the benchmark also times that.
func BenchmarkSuiteSizes(b *testing.B) {
	o1, m1 := MustChainMember(b, 1), MustChainMember(b, 5)
	g1 := MustGenesis(b, o1)
	c1 := g1.Next(o1, addOp(m1, coffer.RoleReader))
	sc1 := coffer.SignCommit(c1, o1.Key)
	p := mustV2Cast(b)
	g2 := newV2Chain(b, p.owner, p.m5).do(p.owner, addOp2(p.owner, coffer.RoleOwner))
	c2 := g2.next(p.owner, addOp2(p.m5, coffer.RoleReader))
	sc2 := sign2(c2, p.owner.Sign)

	long1 := mustLongChain(b, 300)
	long2, keys := mustLongChainV2(b, 300)
	s1, err1 := coffer.VerifyChain(nil, long1)
	s2, err2 := coffer.VerifyChainWith(nil, long2, keys)
	if err1 != nil || err2 != nil {
		b.Fatal(err1, err2)
	}
	var cp1, cp2 []byte
	for b.Loop() {
		cp1, _ = s1.MarshalBinary()
		cp2, _ = s2.MarshalBinary()
	}
	v1Keys := coffer.PublicIdentity{Handle: o1.Handle, SigningKey: o1.Public(), EncryptionKey: o1.EncryptionKey}.Marshal()
	b.ReportMetric(float64(len(v1Keys)), "v1-identity-B")
	b.ReportMetric(float64(len(p.owner.Keys.Marshal())), "v2-member-keys-B")
	b.ReportMetric(float64(len(sc1.Body)+len(sc1.Signature)), "v1-add-commit-B")
	b.ReportMetric(float64(len(sc2.Body)+len(sc2.Signature)), "v2-add-commit-B")
	b.ReportMetric(float64(len(cp1))/float64(len(s1.Members)), "v1-checkpoint-B/member")
	b.ReportMetric(float64(len(cp2))/float64(len(s2.Members)), "v2-checkpoint-B/member")
}
