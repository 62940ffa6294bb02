package clientlib

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// TestTreeCommitUnusableKey: a client verifies a chain's tree keys for
// size only (coffer.VerifyChainKeysOnUse), so a key of its verified tree
// that does not parse is first met when a commit seals to it. That seal is
// the check, and its failure is a security error, as the chain's would
// have been, not a plain invalid-input error.
func TestTreeCommitUnusableKey(t *testing.T) {
	var keys [][]byte
	for range 2 {
		priv, err := coffer.KEM().GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, priv.PublicKey().Bytes())
	}
	good, err := ratchettree.NewTree(keys)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := good.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(enc, keys[1])
	if at < 0 {
		t.Fatal("the encoding does not hold leaf 1's key")
	}
	copy(enc[at:], bytes.Repeat([]byte{0xff}, len(keys[1])))
	bad, err := ratchettree.ParseTree(enc)
	if err != nil {
		t.Fatalf("ParseTree checks sizes only, yet: %v", err)
	}

	me := coffer.AccountID{1}
	for _, tc := range []struct {
		name     string
		tree     *ratchettree.Tree
		security bool
	}{{"parsing keys", good, false}, {"a key that does not parse", bad, true}} {
		s := &coffer.GroupState{Group: coffer.GroupID{2}, Suite: coffer.SuiteV2, Epoch: 1, Tree: tc.tree,
			Members: map[coffer.AccountID]*coffer.Member{me: {ID: me, Leaf: 0}}}
		commit := &coffer.Commit{Group: s.Group, Epoch: 2}
		_, _, _, err := treeCommit(s, me, commit, &ratchettree.Spec{Rekey: []uint32{ratchettree.Root(2)}}, nil)
		var se *coffer.SecurityError
		switch {
		case !tc.security && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.security && (!errors.As(err, &se) || se.Check != "tree"):
			t.Errorf("%s: %v, want a tree security error", tc.name, err)
		}
	}
}
