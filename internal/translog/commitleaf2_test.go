package translog_test

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// TestSuiteV2CommitLeaf: a suite v2 commit's leaf carries its hybrid
// signature and parses back; a leaf whose signature has the other suite's
// size does not parse.
func TestSuiteV2CommitLeaf(t *testing.T) {
	seed := make([]byte, 32)
	rand.Read(seed)
	sk, err := coffer.NewHybridKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	author, g := coffer.NewAccountID(), coffer.NewGroupID()
	c := &coffer.Commit{Group: g, Seq: 1, Epoch: 1, Author: author, KeyCommitment: [32]byte{1},
		Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: author, Handle: "alice", KeysHash: [32]byte{2}, Role: coffer.RoleOwner}}}
	sc := coffer.SignCommitHybrid(c, sk)
	leaf := translog.CommitLeaf(g, 1, sc)
	l, err := translog.ParseLeaf(leaf)
	if err != nil {
		t.Fatalf("a suite v2 commit leaf does not parse: %v", err)
	}
	if !bytes.Equal(l.Commit.Signature, sc.Signature) || !bytes.Equal(l.Marshal(), leaf) {
		t.Fatal("a suite v2 commit leaf does not round-trip")
	}
	if _, err := l.ParseCommit(); err != nil {
		t.Fatal(err)
	}
	// The Ed25519 half alone, or a suite v1 body with a hybrid signature.
	cut := translog.CommitLeaf(g, 1, coffer.SignedCommit{Body: sc.Body, Signature: sc.Signature[:coffer.SignatureSize]})
	if _, err := translog.ParseLeaf(cut); err == nil {
		t.Fatal("a suite v2 commit leaf with a 64-byte signature parses")
	}
	v1 := bytes.Clone(sc.Body)
	v1[0] = coffer.SuiteV1
	if _, err := translog.ParseLeaf(translog.CommitLeaf(g, 1, coffer.SignedCommit{Body: v1, Signature: sc.Signature})); err == nil {
		t.Fatal("a suite v1 commit leaf with a hybrid signature parses")
	}
}
