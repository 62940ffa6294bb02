package coffer_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cofferhq/coffer"
)

// FuzzParseCommit checks that ParseCommit never panics, fails only with a
// rule violation, and is canonical: whatever it accepts, Marshal reproduces
// byte for byte, so a commit has exactly one encoding and one hash.
func FuzzParseCommit(f *testing.F) {
	p := MustChainCast(f)
	f.Add(MustSampleCommit(f).Marshal())
	for _, tc := range chainCases {
		if cs := tc.build(f, p); len(cs) > 0 {
			f.Add(cs[len(cs)-1].Body)
		}
	}
	// Suite v2 bodies, whose ops carry keys hashes.
	p2 := mustV2Cast(f)
	for _, tc := range v2Cases {
		if cs, _ := tc.build(f, p2); len(cs) > 0 {
			f.Add(cs[len(cs)-1].Body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := coffer.ParseCommit(body)
		if err != nil {
			var e *coffer.Error
			if !errors.As(err, &e) || e.Code != coffer.EINVALID || e.Rule == "" {
				t.Fatalf("error without a rule: %v", err)
			}
			return
		}
		if got := c.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("not canonical:\n in  %x\n out %x", body, got)
		}
	})
}

// FuzzApply drives the verifier with correctly signed commits whose ops
// come from the fuzzer, so the rules (not the signature) decide. It checks
// that Apply never panics, leaves the state unchanged when it fails, and
// that every state it accepts keeps the invariants: an owner, a key
// commitment per epoch, and a checkpoint that round-trips.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 1, 0x15, 1, 2, 0x42, 2, 1, 0x73, 0x04})
	f.Add([]byte{1, 2, 0x24, 0x33, 0x04, 0, 1, 0x52})
	f.Add([]byte{0, 3, 0x11, 0x21, 0x04, 2, 1, 0x34})
	// The reader leaves (0x37: member 4, leave), the writer leaves, then the
	// admin rotates; and a leave followed by a non-rotating add.
	f.Add([]byte{3, 1, 0x37, 2, 1, 0x27, 1, 1, 0x03})
	f.Add([]byte{3, 1, 0x37, 0, 1, 0x44})
	// The reader updates its keys with a rotation (0x3b: member 4,
	// update-key), then signs with its new keys (author 3+8).
	f.Add([]byte{3, 2, 0x3b, 0x03, 11, 1, 0x37})
	members := make([]*chainMember, 8)
	for i := range members {
		members[i] = MustChainMember(f, i+1)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		p := MustChainCast(t)
		b := p.base(t)
		s := checkChain(t, b.commits, "")
		// Each step: author byte, op count byte, then one byte per op:
		// high nibble picks the member, low nibble the kind and role
		// (kind 3 is a rotation, a leave when bit 2 is set, or else an
		// update-key to the member's second keys when bit 3 is set). An
		// author byte of 8 and up signs with the member's second keys.
		for len(prog) >= 2 && len(b.commits) < 16 {
			author := members[int(prog[0])%len(members)]
			if int(prog[0])%(2*len(members)) >= len(members) {
				author = rekeyed(t, author, 100+int(prog[0])%len(members))
			}
			n := min(int(prog[1])%5, len(prog)-2)
			ops := make([]coffer.Op, 0, n)
			for _, x := range prog[2 : 2+n] {
				m := members[int(x>>4)%len(members)]
				role := coffer.Role(1 + (x>>2)%4)
				switch x & 3 {
				case 0:
					ops = append(ops, addOp(m, role))
				case 1:
					ops = append(ops, removeOp(m))
				case 2:
					ops = append(ops, setRoleOp(m, role))
				case 3:
					if x&4 != 0 {
						ops = append(ops, leaveOp(m))
					} else if x&8 != 0 {
						ops = append(ops, updateKeyOp(m, rekeyed(t, m, 100+int(x>>4)%len(members))))
					} else {
						ops = append(ops, rotateOp)
					}
				}
			}
			prog = prog[2+n:]

			c := b.Next(author, ops...)
			sc := coffer.SignCommit(c, author.Key)
			before := mustMarshalState(t, s)
			if err := s.Apply(sc); err != nil {
				var e *coffer.Error
				if !errors.As(err, &e) || e.Code != coffer.EINVALID || e.Rule == "" {
					t.Fatalf("error without a rule: %v", err)
				}
				if !bytes.Equal(before, mustMarshalState(t, s)) {
					t.Fatalf("failed Apply changed the state")
				}
				continue
			}
			b.PushSigned(c, sc)

			owners := 0
			for _, m := range s.Members {
				if m.Role == coffer.RoleOwner {
					owners++
				}
				if !m.Role.Valid() || s.RoleAt(m.ID, s.Epoch) != m.Role {
					t.Fatalf("member %s: role %s, RoleAt %s", m.Handle, m.Role, s.RoleAt(m.ID, s.Epoch))
				}
			}
			if owners == 0 {
				t.Fatalf("no owner left")
			}
			if _, ok := s.KeyCommitment(s.Epoch); !ok {
				t.Fatalf("no key commitment for epoch %d", s.Epoch)
			}
			data := mustMarshalState(t, s)
			var u coffer.GroupState
			if err := u.UnmarshalBinary(data); err != nil {
				t.Fatalf("checkpoint does not load: %v", err)
			}
			if !bytes.Equal(mustMarshalState(t, &u), data) {
				t.Fatalf("checkpoint does not round-trip")
			}
		}
		if got := checkChain(t, b.commits, ""); !bytes.Equal(mustMarshalState(t, got), mustMarshalState(t, s)) {
			t.Fatalf("VerifyChain disagrees with Apply")
		}
	})
}
