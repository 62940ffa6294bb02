package coffer_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// Suite v2 chains: ops name member keys by hash, signatures are hybrid,
// and the verifier takes the keys from a MemberKeySource it does not trust.

// v2Member is a deterministic suite v2 account at one key generation: its
// hybrid user signing key and X-Wing user key derive from (n, generation).
type v2Member struct {
	ID     coffer.AccountID
	Handle coffer.Handle
	Sign   *coffer.HybridPrivateKey
	Keys   *coffer.MemberKeys
}

const v2Origin = "https://coffer.example:443"

var v2Members sync.Map // [2]int → *v2Member

// mustV2Member returns test account n at key generation gen. The account
// id and handle are those of MustChainMember(n).
func mustV2Member(tb testing.TB, n, gen int) *v2Member {
	tb.Helper()
	if m, ok := v2Members.Load([2]int{n, gen}); ok {
		return m.(*v2Member)
	}
	base := MustChainMember(tb, n)
	seed := sha256.Sum256(fmt.Appendf(nil, "coffer v2 chain test %d generation %d signing", n, gen))
	ikm := sha256.Sum256(fmt.Appendf(nil, "coffer v2 chain test %d generation %d encryption", n, gen))
	sk, err := coffer.NewHybridKeyFromSeed(seed[:])
	if err != nil {
		tb.Fatal(err)
	}
	dk, err := coffer.KEM().DeriveKeyPair(ikm[:])
	if err != nil {
		tb.Fatal(err)
	}
	m := &v2Member{ID: base.ID, Handle: base.Handle, Sign: sk, Keys: &coffer.MemberKeys{
		Account: base.ID, Origin: v2Origin, Handle: base.Handle, Generation: uint64(gen),
		EncryptionKey: dk.PublicKey().Bytes(), SigningKey: sk.Public(),
	}}
	actual, _ := v2Members.LoadOrStore([2]int{n, gen}, m)
	return actual.(*v2Member)
}

func (m *v2Member) hash() [32]byte { return m.Keys.Hash() }

func addOp2(m *v2Member, r coffer.Role) coffer.Op {
	return coffer.Op{Kind: coffer.OpAdd, Member: m.ID, Handle: m.Handle, KeysHash: m.hash(), Role: r}
}

func updateOp2(m *v2Member) coffer.Op {
	return coffer.Op{Kind: coffer.OpUpdateKey, Member: m.ID, KeysHash: m.hash()}
}

// v2Chain builds a suite v2 chain on chainBuilder's positions; keys is
// every key set the cast holds, as an honest server would serve them.
type v2Chain struct {
	*chainBuilder
	keys coffer.MemberKeyMap
}

func newV2Chain(tb testing.TB, members ...*v2Member) *v2Chain {
	b := &v2Chain{chainBuilder: newChain(tb, 2), keys: coffer.MemberKeyMap{}}
	for _, m := range members {
		b.keys.Add(m.Keys)
	}
	return b
}

// next is chainBuilder.Next for a suite v2 commit.
func (b *v2Chain) next(author *v2Member, ops ...coffer.Op) *coffer.Commit {
	c := b.Next(&chainMember{ID: author.ID}, ops...)
	c.Suite = coffer.SuiteV2
	return c
}

// sign signs deterministically, so the vectors regenerate byte for byte.
func sign2(c *coffer.Commit, key *coffer.HybridPrivateKey) coffer.SignedCommit {
	c.Suite = coffer.SuiteV2
	body := c.Marshal()
	return coffer.SignedCommit{Body: body, Signature: key.SignDeterministic(coffer.LabelCommit, body)}
}

func (b *v2Chain) do(author *v2Member, ops ...coffer.Op) *v2Chain {
	c := b.next(author, ops...)
	b.PushSigned(c, sign2(c, author.Sign))
	return b
}

// v2Cast: owner 1 (generation 1 and 2), admin 2, writer 3, reader 4,
// outsider 5, and a base chain where the owner adds the other three.
type v2Cast struct{ owner, owner2, admin, writer, reader, m5 *v2Member }

func mustV2Cast(tb testing.TB) v2Cast {
	return v2Cast{
		owner: mustV2Member(tb, 1, 1), owner2: mustV2Member(tb, 1, 2),
		admin: mustV2Member(tb, 2, 1), writer: mustV2Member(tb, 3, 1),
		reader: mustV2Member(tb, 4, 1), m5: mustV2Member(tb, 5, 1),
	}
}

func (p v2Cast) base(tb testing.TB) *v2Chain {
	b := newV2Chain(tb, p.owner, p.owner2, p.admin, p.writer, p.reader, p.m5)
	return b.do(p.owner, addOp2(p.owner, coffer.RoleOwner), addOp2(p.admin, coffer.RoleAdmin),
		addOp2(p.writer, coffer.RoleWriter), addOp2(p.reader, coffer.RoleReader))
}

// v2Case is one suite v2 chain and what the verifier must say of it: rule
// "" for success. keys is the source the verifier gets (the chain's own
// when nil).
type v2Case struct {
	name, comment, rule string
	build               func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap)
}

func v2ok(b *v2Chain) ([]coffer.SignedCommit, coffer.MemberKeyMap) { return b.commits, b.keys }

var v2Cases = []v2Case{
	{"genesis", "a genesis adds its owner and three members by keys hash", "", func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		return v2ok(p.base(tb))
	}},
	{"lifecycle", "add, demote with rotation, remove with rotation, a reader's self-update, a leave and the pending rotation", "", func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb)
		b.do(p.admin, addOp2(p.m5, coffer.RoleWriter))
		b.do(p.owner, setRoleOp(&chainMember{ID: p.writer.ID}, coffer.RoleReader), rotateOp)
		b.do(p.admin, removeOp(&chainMember{ID: p.writer.ID}), rotateOp)
		reader2 := mustV2Member(tb, 4, 2)
		b.keys.Add(reader2.Keys)
		b.do(p.reader, updateOp2(reader2), rotateOp)
		b.do(reader2, leaveOp(&chainMember{ID: p.reader.ID}))
		b.do(p.owner, rotateOp)
		return v2ok(b)
	}},
	{"owner-self-update", "the owner moves to its next key generation, then signs with it", "", func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb).do(p.owner, updateOp2(p.owner2), rotateOp)
		return v2ok(b.do(p.owner2, addOp2(p.m5, coffer.RoleReader)))
	}},
	{"old-key-after-update", "after its self-update the owner signs with its previous keys", coffer.RuleSignature, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb).do(p.owner, updateOp2(p.owner2), rotateOp)
		return v2ok(b.do(p.owner, addOp2(p.m5, coffer.RoleReader)))
	}},
	{"update-same-keys", "a self-update names the keys the entry already has", coffer.RuleKeyReuse, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		return v2ok(p.base(tb).do(p.reader, updateOp2(p.reader), rotateOp))
	}},
	{"update-older-generation", "the owner at generation 2 updates back to generation 1", coffer.RuleKeyReuse, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := newV2Chain(tb, p.owner, p.owner2)
		b.do(p.owner2, addOp2(p.owner2, coffer.RoleOwner))
		return v2ok(b.do(p.owner2, updateOp2(p.owner), rotateOp))
	}},
	{"update-to-other-account", "the reader's self-update names the outsider's keys", coffer.RuleMemberKeys, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		op := updateOp2(p.reader)
		op.KeysHash = p.m5.hash()
		return v2ok(p.base(tb).do(p.reader, op, rotateOp))
	}},
	{"update-keys-unavailable", "a self-update names keys the source does not have", coffer.RuleMemberKeys, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		return v2ok(p.base(tb).do(p.reader, updateOp2(mustV2Member(tb, 4, 9)), rotateOp))
	}},
	{"author-keys-unavailable", "the source lacks the author's keys", coffer.RuleMemberKeys, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb).do(p.admin, addOp2(p.m5, coffer.RoleReader))
		delete(b.keys, p.admin.hash())
		return v2ok(b)
	}},
	{"added-as-other-account", "the owner adds member 5 by the keys hash of the admin's account; member 5's commit then fails", coffer.RuleMemberKeys, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		op := addOp2(p.m5, coffer.RoleAdmin)
		op.KeysHash = mustV2Member(tb, 2, 3).hash()
		b := p.base(tb)
		b.keys.Add(mustV2Member(tb, 2, 3).Keys)
		b.do(p.owner, op)
		return v2ok(b.do(p.m5, rotateOp))
	}},
	{"added-as-reset-account", "the owner adds member 5 by keys that name its handle but another account (a reset under the same handle); its commit then fails", coffer.RuleMemberKeys, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		reset := *p.m5.Keys
		reset.Account = mustV2Member(tb, 6, 1).ID
		op := addOp2(p.m5, coffer.RoleAdmin)
		b := p.base(tb)
		op.KeysHash = b.keys.Add(&reset)
		b.do(p.owner, op)
		return v2ok(b.do(p.m5, rotateOp))
	}},
	{"added-under-other-handle", "the owner adds member 5 under another handle than its keys name; its commit then fails", coffer.RuleMemberKeys, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		op := addOp2(p.m5, coffer.RoleAdmin)
		op.Handle = "someone-else"
		b := p.base(tb).do(p.owner, op)
		return v2ok(b.do(p.m5, rotateOp))
	}},
	{"genesis-keys-of-other-account", "the genesis adds its author with another account's keys", coffer.RuleMemberKeys, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := newV2Chain(tb, p.owner, p.admin)
		op := addOp2(p.owner, coffer.RoleOwner)
		op.KeysHash = p.admin.hash()
		return v2ok(b.do(p.owner, op))
	}},
	{"signed-by-other-member", "a commit by the admin is signed with the writer's hybrid key", coffer.RuleSignature, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb)
		c := b.next(p.admin, addOp2(p.m5, coffer.RoleReader))
		return v2ok(b.PushSigned2(c, sign2(c, p.writer.Sign)))
	}},
	{"ed25519-signature", "a suite v2 commit signed with the Ed25519 half alone", coffer.RuleSignature, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb)
		c := b.next(p.admin, addOp2(p.m5, coffer.RoleReader))
		sc := sign2(c, p.admin.Sign)
		ed, _ := coffer.HybridHalves(p.admin.Sign)
		sc.Signature = coffer.Sign(ed, coffer.LabelCommit, sc.Body)
		return v2ok(b.PushSigned2(c, sc))
	}},
	{"ml-dsa-half-forged", "the Ed25519 half verifies, the ML-DSA-65 half is the member's signature of another commit", coffer.RuleSignature, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb)
		c := b.next(p.admin, addOp2(p.m5, coffer.RoleReader))
		sc := sign2(c, p.admin.Sign)
		other := p.admin.Sign.SignDeterministic(coffer.LabelCommit, append(slices.Clone(sc.Body), 0))
		copy(sc.Signature[64:], other[64:])
		return v2ok(b.PushSigned2(c, sc))
	}},
	{"ed25519-half-forged", "the ML-DSA-65 half verifies, the Ed25519 half is the member's signature of another commit", coffer.RuleSignature, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb)
		c := b.next(p.admin, addOp2(p.m5, coffer.RoleReader))
		sc := sign2(c, p.admin.Sign)
		other := p.admin.Sign.SignDeterministic(coffer.LabelCommit, append(slices.Clone(sc.Body), 0))
		copy(sc.Signature[:64], other[:64])
		return v2ok(b.PushSigned2(c, sc))
	}},
	{"other-label", "a commit hybrid-signed under the resource header label", coffer.RuleSignature, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb)
		c := b.next(p.admin, addOp2(p.m5, coffer.RoleReader))
		sc := sign2(c, p.admin.Sign)
		sc.Signature = p.admin.Sign.SignDeterministic(coffer.LabelResourceHeader, sc.Body)
		return v2ok(b.PushSigned2(c, sc))
	}},
	{"v1-commit-in-v2-group", "a suite v1 commit, Ed25519-signed by the admin's v1 key, follows a suite v2 genesis", coffer.RuleVersion, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		b := p.base(tb)
		c := b.Next(MustChainMember(tb, 2), addOp(MustChainMember(tb, 5), coffer.RoleReader))
		return v2ok(b.PushSigned2(c, coffer.SignCommit(c, MustChainMember(tb, 2).Key)))
	}},
	{"zero-keys-hash", "an add op with a zero keys hash", coffer.RuleMalformed, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		op := addOp2(p.m5, coffer.RoleReader)
		op.KeysHash = [32]byte{}
		return v2ok(p.base(tb).do(p.admin, op))
	}},
	{"reader-adds", "a reader adds a member (the rules of suite v1 hold in v2)", coffer.RuleAuthor, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		return v2ok(p.base(tb).do(p.reader, addOp2(p.m5, coffer.RoleReader)))
	}},
	{"update-for-other", "the admin updates the writer's keys", coffer.RuleUpdateKey, func(tb testing.TB, p v2Cast) ([]coffer.SignedCommit, coffer.MemberKeyMap) {
		w2 := mustV2Member(tb, 3, 2)
		b := p.base(tb)
		b.keys.Add(w2.Keys)
		return v2ok(b.do(p.admin, updateOp2(w2), rotateOp))
	}},
}

// PushSigned2 appends sc (of c) and returns the chain.
func (b *v2Chain) PushSigned2(c *coffer.Commit, sc coffer.SignedCommit) *v2Chain {
	b.PushSigned(c, sc)
	return b
}

// verifyBothWays verifies commits with VerifyChainWith and one by one with
// ApplyWith, and fails the test unless both give the same result.
func verifyBothWays(tb testing.TB, commits []coffer.SignedCommit, src coffer.MemberKeySource) (*coffer.GroupState, error) {
	tb.Helper()
	s, err := coffer.VerifyChainWith(nil, commits, src)
	one := new(coffer.GroupState)
	var oneErr error
	for _, sc := range commits {
		if oneErr = one.ApplyWith(sc, src); oneErr != nil {
			break
		}
	}
	if (err == nil) != (oneErr == nil) || err != nil && ruleOf(err) != ruleOf(oneErr) {
		tb.Fatalf("VerifyChainWith: %v; ApplyWith one by one: %v", err, oneErr)
	}
	// A client's verifier gives the same answer, except where a tree key
	// does not parse: it leaves that to the seal (TestChainKeysOnUse).
	if ruleOf(err) != string(ratchettree.RulePublicKey) {
		c, cErr := coffer.VerifyChainKeysOnUse(nil, commits, src)
		if (err == nil) != (cErr == nil) || err != nil && ruleOf(err) != ruleOf(cErr) || err == nil && c.Head != s.Head {
			tb.Fatalf("VerifyChainWith: %v; VerifyChainKeysOnUse: %v", err, cErr)
		}
	}
	return s, err
}

func ruleOf(err error) string {
	var e *coffer.Error
	if errors.As(err, &e) {
		return e.Rule
	}
	return ""
}

func TestSuiteV2Chains(t *testing.T) {
	p := mustV2Cast(t)
	for _, tc := range v2Cases {
		t.Run(tc.name, func(t *testing.T) {
			commits, keys := tc.build(t, p)
			s, err := verifyBothWays(t, commits, keys)
			if tc.rule == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.Suite != coffer.SuiteV2 {
					t.Fatalf("suite %d", s.Suite)
				}
				return
			}
			if got := ruleOf(err); got != tc.rule {
				t.Fatalf("rule %q (%v), want %q", got, err, tc.rule)
			}
		})
	}
}

// TestSuiteV2NeedsKeys: a suite v2 chain never verifies without a source,
// and a source that substitutes keys (another account's, or the right
// account's other generation, returned for the hash asked) is caught by
// the hash, whatever it claims.
func TestSuiteV2NeedsKeys(t *testing.T) {
	p := mustV2Cast(t)
	commits, keys := p.base(t).do(p.admin, addOp2(p.m5, coffer.RoleReader)).commits, p.base(t).keys
	if _, err := coffer.VerifyChain(nil, commits); ruleOf(err) != coffer.RuleMemberKeys {
		t.Fatalf("VerifyChain without keys: %v", err)
	}
	if err := new(coffer.GroupState).Apply(commits[0]); ruleOf(err) != coffer.RuleMemberKeys {
		t.Fatalf("Apply without keys: %v", err)
	}
	for name, sub := range map[string]*coffer.MemberKeys{
		"other account":    p.writer.Keys,
		"other generation": mustV2Member(t, 2, 2).Keys,
		"edited copy":      editedKeys(p.admin.Keys),
	} {
		lying := coffer.MemberKeyMap{}
		for h, k := range keys {
			lying[h] = k
		}
		lying[p.admin.hash()] = sub
		if _, err := verifyBothWays(t, commits, lying); ruleOf(err) != coffer.RuleMemberKeys {
			t.Errorf("a source substituting %s: %v", name, err)
		}
	}
}

func editedKeys(k *coffer.MemberKeys) *coffer.MemberKeys {
	c := *k
	c.Generation++
	return &c
}

// TestSuiteV1RefusesV2Commit: a correctly signed suite v2 commit cannot
// continue a suite v1 group, whatever keys come with it.
func TestSuiteV1RefusesV2Commit(t *testing.T) {
	owner := MustChainMember(t, 1)
	b := MustGenesis(t, owner)
	admin2 := mustV2Member(t, 1, 1)
	c := b.Next(owner, addOp2(mustV2Member(t, 5, 1), coffer.RoleReader))
	sc := sign2(c, admin2.Sign)
	commits := append(slices.Clone(b.commits), sc)
	_, err := verifyBothWays(t, commits, coffer.MemberKeyMap{admin2.hash(): admin2.Keys})
	if ruleOf(err) != coffer.RuleVersion {
		t.Fatalf("v2 commit in a v1 group: %v", err)
	}
}

// TestSuiteV2Checkpoint: a suite v2 state survives MarshalBinary and
// UnmarshalBinary (holding hashes, not keys), verification continues from
// the restored state, and the restored state resolves a member's keys.
func TestSuiteV2Checkpoint(t *testing.T) {
	p := mustV2Cast(t)
	commits, keys := v2Cases[1].build(t, p)
	for cut := 1; cut < len(commits); cut++ {
		s, err := coffer.VerifyChainWith(nil, commits[:cut], keys)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r coffer.GroupState
		if err := r.UnmarshalBinary(enc); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if again, _ := r.MarshalBinary(); !bytes.Equal(again, enc) {
			t.Fatalf("cut %d: the checkpoint does not re-encode to itself", cut)
		}
		if len(enc) > 2000 {
			t.Fatalf("cut %d: a checkpoint of %d members is %d bytes: it holds keys, not hashes", cut, len(s.Members), len(enc))
		}
		end, err := coffer.VerifyChainWith(&r, commits[cut:], keys)
		if err != nil {
			t.Fatalf("continuing from cut %d: %v", cut, err)
		}
		full, _ := coffer.VerifyChainWith(nil, commits, keys)
		if end.Head != full.Head || end.Epoch != full.Epoch || len(end.Members) != len(full.Members) {
			t.Fatalf("cut %d: continuing gives another state", cut)
		}
	}
	s, _ := coffer.VerifyChainWith(nil, commits, keys)
	k, err := s.MemberKeys(p.owner.ID, keys)
	if err != nil || !bytes.Equal(k.EncryptionKey, p.owner.Keys.EncryptionKey) {
		t.Fatalf("MemberKeys of the owner: %v", err)
	}
	if _, err := s.MemberKeys(p.m5.ID, coffer.MemberKeyMap{p.m5.hash(): p.writer.Keys}); ruleOf(err) != coffer.RuleMemberKeys {
		t.Fatalf("MemberKeys from a lying source: %v", err)
	}
	if _, err := s.MemberKeys(p.writer.ID, keys); err == nil {
		t.Fatal("MemberKeys of a removed member")
	}
}

// TestMemberKeysRoundTrip: the encoding is canonical and every field is
// checked.
func TestMemberKeysRoundTrip(t *testing.T) {
	k := mustV2Member(t, 1, 1).Keys
	enc := k.Marshal()
	got, err := coffer.ParseMemberKeys(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), enc) || got.Hash() != k.Hash() {
		t.Fatal("round trip changed the keys")
	}
	set := func(off int, b ...byte) []byte { e := slices.Clone(enc); copy(e[off:], b); return e }
	hdr := 1 + 16 + 1 + len(k.Origin) + 1 + len(k.Handle)
	for name, bad := range map[string][]byte{
		"empty":            nil,
		"version 1":        set(0, 1),
		"zero account":     set(1, make([]byte, 16)...),
		"bad origin":       set(1+16+1, 'f', 't', 'p'),
		"bad handle":       set(1+16+1+len(k.Origin)+1, 'U'),
		"generation 0":     set(hdr, make([]byte, 8)...),
		"bad x-wing key":   set(hdr+8, bytes.Repeat([]byte{0xff}, coffer.EncryptionKeySize)...),
		"small-order ed":   set(hdr+8+coffer.EncryptionKeySize, make([]byte, 32)...),
		"truncated":        enc[:len(enc)-1],
		"trailing byte":    append(slices.Clone(enc), 0),
		"over the maximum": make([]byte, coffer.MemberKeysSize+1),
	} {
		if _, err := coffer.ParseMemberKeys(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseMemberKeys(f *testing.F) {
	f.Add(mustV2Member(f, 1, 1).Keys.Marshal())
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := coffer.ParseMemberKeys(data)
		if err != nil {
			return
		}
		if !bytes.Equal(k.Marshal(), data) {
			t.Fatal("accepted a non-canonical encoding")
		}
	})
}

// Suite v2 vectors: testdata/chain2/NAME.txt, one case each:
//
//	expect: <rule, or success>
//	comment: <what the case is>
//
//	key <base64 MemberKeys encoding>      (the source's keys, one per line)
//	commit <base64 body> <base64 signature>
//
// In a failing vector every commit but the last verifies.
const chain2VectorDir = "testdata/chain2"

func encodeChain2Vector(tc v2Case, commits []coffer.SignedCommit, keys coffer.MemberKeyMap) []byte {
	var buf bytes.Buffer
	expect := tc.rule
	if expect == "" {
		expect = "success"
	}
	fmt.Fprintf(&buf, "expect: %s\ncomment: %s\n\n", expect, tc.comment)
	var encs []string
	for _, k := range keys {
		encs = append(encs, base64.StdEncoding.EncodeToString(k.Marshal()))
	}
	slices.Sort(encs)
	for _, e := range encs {
		fmt.Fprintf(&buf, "key %s\n", e)
	}
	for _, sc := range commits {
		fmt.Fprintf(&buf, "commit %s %s\n", base64.StdEncoding.EncodeToString(sc.Body), base64.StdEncoding.EncodeToString(sc.Signature))
	}
	return buf.Bytes()
}

func parseChain2Vector(tb testing.TB, data []byte) (string, []coffer.SignedCommit, coffer.MemberKeyMap) {
	tb.Helper()
	h := parseVectorHeader(tb, data)
	_, rest, _ := bytes.Cut(data, []byte("\n\n"))
	keys := coffer.MemberKeyMap{}
	var commits []coffer.SignedCommit
	for _, line := range strings.Split(strings.TrimSpace(string(rest)), "\n") {
		f := strings.Fields(line)
		dec := func(s string) []byte {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				tb.Fatal(err)
			}
			return b
		}
		switch {
		case len(f) == 2 && f[0] == "key":
			k, err := coffer.ParseMemberKeys(dec(f[1]))
			if err != nil {
				tb.Fatal(err)
			}
			keys.Add(k)
		case len(f) == 3 && f[0] == "commit":
			commits = append(commits, coffer.SignedCommit{Body: dec(f[1]), Signature: dec(f[2])})
		default:
			tb.Fatalf("bad vector line %.40q", line)
		}
	}
	return h["expect"], commits, keys
}

// TestChain2Vectors checks every vector file on its own, that the files are
// what v2Cases generate, and that no case lacks its file. -update rewrites
// them.
func TestChain2Vectors(t *testing.T) {
	p := mustV2Cast(t)
	if updateVectors() {
		os.RemoveAll(chain2VectorDir)
		if err := os.MkdirAll(chain2VectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range v2Cases {
		commits, keys := tc.build(t, p)
		want := encodeChain2Vector(tc, commits, keys)
		path := filepath.Join(chain2VectorDir, tc.name+".txt")
		if updateVectors() {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v: run go test -run TestChain2Vectors -update", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what its case generates: run go test -run TestChain2Vectors -update", path)
		}
	}
	files, _ := filepath.Glob(filepath.Join(chain2VectorDir, "*.txt"))
	if len(files) != len(v2Cases) {
		t.Errorf("%d vector files for %d cases", len(files), len(v2Cases))
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		expect, commits, keys := parseChain2Vector(t, data)
		_, err = verifyBothWays(t, commits, keys)
		got := "success"
		if err != nil {
			got = ruleOf(err)
		}
		if got != expect {
			t.Errorf("%s: got %s (%v), want %s", path, got, err, expect)
		}
	}
}

// TestSuiteV2WithMemberKeys: resolving a state's member keys fills every
// entry with keys checked against its hash, refuses a lying source, and an
// entry a later self-update changed holds its new hash alone until
// resolved again.
func TestSuiteV2WithMemberKeys(t *testing.T) {
	p := mustV2Cast(t)
	b := p.base(t)
	s, err := coffer.VerifyChainWith(nil, b.commits, b.keys)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.WithMemberKeys(b.keys)
	if err != nil {
		t.Fatal(err)
	}
	for id, m := range r.Members {
		if m.Keys == nil || m.Keys.Hash() != m.KeysHash || !bytes.Equal(m.EncryptionKey, m.Keys.EncryptionKey) || !bytes.Equal(m.SigningKey, m.Keys.SigningKey.Ed25519()) {
			t.Fatalf("member %s not resolved", id)
		}
		if s.Members[id].Keys != nil {
			t.Fatal("WithMemberKeys changed the state it was given")
		}
	}
	lying := coffer.MemberKeyMap{}
	for h, k := range b.keys {
		lying[h] = k
	}
	lying[p.reader.hash()] = p.m5.Keys
	if _, err := s.WithMemberKeys(lying); ruleOf(err) != coffer.RuleMemberKeys {
		t.Fatalf("a lying source: %v", err)
	}
	reader2 := mustV2Member(t, 4, 2)
	b.keys.Add(reader2.Keys)
	b.do(p.reader, updateOp2(reader2), rotateOp)
	if err := r.ApplyWith(b.commits[len(b.commits)-1], b.keys); err != nil {
		t.Fatal(err)
	}
	if m := r.Members[p.reader.ID]; m.Keys != nil || m.EncryptionKey != nil {
		t.Fatal("a self-update left the old keys resolved on the entry")
	}
	if r, err = r.WithMemberKeys(b.keys); err != nil || r.Members[p.reader.ID].Keys.Generation != 2 {
		t.Fatalf("resolving again: %v", err)
	}
}
