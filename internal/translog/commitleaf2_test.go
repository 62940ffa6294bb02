package translog_test

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
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

// TestTreeCommitLeaf: a tree group's commit (version 3, hybrid-signed)
// has a leaf that parses back; with a 64-byte signature it does not. (A
// tree commit's leaf that did not parse stopped the log's integration.)
func TestTreeCommitLeaf(t *testing.T) {
	seed := make([]byte, 32)
	rand.Read(seed)
	sk, err := coffer.NewHybridKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := coffer.KEM().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	leafKey := dk.PublicKey().Bytes()
	tree, err := ratchettree.NewTree([][]byte{leafKey})
	if err != nil {
		t.Fatal(err)
	}
	author, g := coffer.NewAccountID(), coffer.NewGroupID()
	c := &coffer.Commit{Group: g, Seq: 1, Epoch: 1, Author: author, KeyCommitment: [32]byte{1},
		Ops:  []coffer.Op{{Kind: coffer.OpAdd, Member: author, Handle: "alice", KeysHash: [32]byte{2}, Role: coffer.RoleOwner}},
		Tree: &coffer.TreePart{Kind: coffer.TreeStart, StartKey: leafKey, Commit: &ratchettree.Commit{Leaves: 1, TreeHash: tree.Hash()}}}
	sc := coffer.SignCommitHybrid(c, sk)
	if sc.Body[0] != coffer.CommitVersionTree {
		t.Fatalf("version %d", sc.Body[0])
	}
	leaf := translog.CommitLeaf(g, 1, sc)
	l, err := translog.ParseLeaf(leaf)
	if err != nil {
		t.Fatalf("a tree commit leaf does not parse: %v", err)
	}
	if !bytes.Equal(l.Marshal(), leaf) {
		t.Fatal("a tree commit leaf does not round-trip")
	}
	if _, err := l.ParseCommit(); err != nil {
		t.Fatal(err)
	}
	cut := translog.CommitLeaf(g, 1, coffer.SignedCommit{Body: sc.Body, Signature: sc.Signature[:coffer.SignatureSize]})
	if _, err := translog.ParseLeaf(cut); err == nil {
		t.Fatal("a tree commit leaf with a 64-byte signature parses")
	}
}
