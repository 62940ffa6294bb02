package coffer_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// Suite v2 tombstones: a delete in a suite v2 group is signed with the
// deleter's hybrid key and carries its own version byte, so that neither
// suite's verifier takes the other's tombstone.

func TestSuiteV2Tombstones(t *testing.T) {
	p := mustV2Cast(t)
	b := p.base(t)
	s, err := coffer.VerifyChainWith(nil, b.commits, b.keys)
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := s.WithMemberKeys(b.keys)
	if err != nil {
		t.Fatal(err)
	}
	res := testResourceID(1)
	prev := &coffer.ResourceLogState{Version: 1, HeaderHash: [32]byte{1}, Author: p.writer.ID}
	d := &coffer.ResourceDelete{Group: s.Group, Resource: res, Version: 1, Deleter: p.writer.ID}
	good := coffer.SignResourceDeleteHybrid(d, p.writer.Sign)
	if len(good.Signature) != coffer.HybridSignatureSize || good.Body[0] != coffer.ResourceDeleteSuiteHybrid {
		t.Fatalf("hybrid tombstone: version %d, %d-byte signature", good.Body[0], len(good.Signature))
	}

	// Accepted through a source, and with the keys resolved in the state.
	for name, c := range map[string]struct {
		s   *coffer.GroupState
		src coffer.MemberKeySource
	}{"through the source": {s, b.keys}, "resolved in the state": {resolved, nil}} {
		next, err := coffer.CheckLoggedDelete(c.s, prev, good, c.src)
		if err != nil || !next.Deleted {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// The leaf carries the hybrid signature whole and parses back to it.
	leaf, err := translog.ParseLeaf(translog.ResourceDeleteLeaf(good))
	if err != nil || !bytes.Equal(leaf.Delete.Signature, good.Signature) || !bytes.Equal(leaf.Delete.Body, good.Body) {
		t.Fatalf("leaf round trip: %v", err)
	}
	if _, err := translog.ParseLeaf(translog.ResourceDeleteLeaf(coffer.SignedDelete{Body: good.Body, Signature: good.Signature[:coffer.SignatureSize]})); err == nil {
		t.Fatal("a suite v2 tombstone leaf with a 64-byte signature parsed")
	}

	flip := func(i int) coffer.SignedDelete {
		sd := coffer.SignedDelete{Body: good.Body, Signature: bytes.Clone(good.Signature)}
		sd.Signature[i] ^= 1
		return sd
	}
	v1Body := bytes.Clone(good.Body)
	v1Body[0] = coffer.ResourceDeleteSuite
	refused := map[string]struct {
		sd   coffer.SignedDelete
		rule string
	}{
		"an Ed25519 tombstone by the deleter's Ed25519 half": {coffer.SignResourceDelete(d, p.writer.Sign.Ed25519PrivateKey()), coffer.RuleDeleteSignature},
		"the Ed25519 half forged":                            {flip(3), coffer.RuleDeleteSignature},
		"the ML-DSA half forged":                             {flip(coffer.SignatureSize + 3), coffer.RuleDeleteSignature},
		"cut to its Ed25519 half":                            {coffer.SignedDelete{Body: good.Body, Signature: good.Signature[:coffer.SignatureSize]}, coffer.RuleDeleteSignature},
		"the version byte set to suite v1":                   {coffer.SignedDelete{Body: v1Body, Signature: good.Signature}, coffer.RuleDeleteSignature},
		"signed by another member":                           {coffer.SignResourceDeleteHybrid(d, p.admin.Sign), coffer.RuleDeleteSignature},
		"signed with the deleter's next generation":          {coffer.SignResourceDeleteHybrid(d, mustV2Member(t, 3, 2).Sign), coffer.RuleDeleteSignature},
	}
	for name, c := range refused {
		for _, st := range []*coffer.GroupState{s, resolved} {
			src := coffer.MemberKeySource(b.keys)
			if st == resolved {
				src = nil
			}
			if _, err := coffer.CheckLoggedDelete(st, prev, c.sd, src); ruleOf(err) != c.rule {
				t.Errorf("%s: got %v, want rule %s", name, err, c.rule)
			}
		}
	}
	// No keys to check under is a member-keys failure, not a pass.
	if _, err := coffer.CheckLoggedDelete(s, prev, good, nil); ruleOf(err) != coffer.RuleMemberKeys {
		t.Fatalf("unresolved keys, no source: %v", err)
	}
	lying := coffer.MemberKeyMap{}
	for h, k := range b.keys {
		lying[h] = k
	}
	lying[p.writer.hash()] = p.admin.Keys
	if _, err := coffer.CheckLoggedDelete(s, prev, coffer.SignResourceDeleteHybrid(d, p.admin.Sign), lying); ruleOf(err) != coffer.RuleMemberKeys {
		t.Fatalf("a source that answers with another member's keys: %v", err)
	}
}

// TestSuiteV1RefusesHybridTombstone: a suite v1 group takes Ed25519
// tombstones only, whatever signs a hybrid one.
func TestSuiteV1RefusesHybridTombstone(t *testing.T) {
	d := &coffer.ResourceDelete{Group: coffer.NewGroupID(), Resource: testResourceID(1), Version: 1, Deleter: coffer.NewAccountID()}
	k := mustV2Member(t, 1, 1).Sign
	hybrid := coffer.SignResourceDeleteHybrid(d, k)
	if _, err := hybrid.Verify(k.Public().Ed25519()); ruleOf(err) != coffer.RuleDeleteSignature {
		t.Fatalf("a hybrid tombstone passed as Ed25519: %v", err)
	}
	// Its Ed25519 half alone signs the same bytes, but under the suite v2
	// version byte, which the suite v1 verifier refuses.
	cut := coffer.SignedDelete{Body: hybrid.Body, Signature: hybrid.Signature[:coffer.SignatureSize]}
	if _, err := cut.Verify(k.Public().Ed25519()); ruleOf(err) != coffer.RuleDeleteSignature {
		t.Fatalf("a hybrid tombstone's Ed25519 half passed as a suite v1 tombstone: %v", err)
	}
	v1 := coffer.SignResourceDelete(d, k.Ed25519PrivateKey())
	if _, err := v1.Verify(k.Public().Ed25519()); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.VerifyHybrid(k.Public()); ruleOf(err) != coffer.RuleDeleteSignature {
		t.Fatalf("a suite v1 tombstone passed as hybrid: %v", err)
	}
}
