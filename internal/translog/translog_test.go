package translog_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

func testLeaves(t *testing.T) (identity, commit []byte) {
	t.Helper()
	dk, err := coffer.KEM().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	id := coffer.PublicIdentity{Handle: "alice", SigningKey: pub, EncryptionKey: dk.PublicKey().Bytes()}
	acct := coffer.NewAccountID()
	identity = translog.IdentityLeaf(acct, id.Marshal(), coffer.Sign(priv, coffer.LabelIdentity, id.Marshal()))
	c := &coffer.Commit{Group: coffer.NewGroupID(), Seq: 1, Epoch: 1, Author: acct, Time: 1, ShareHistory: true,
		Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: acct, Handle: "alice", SigningKey: pub, EncryptionKey: id.EncryptionKey, Role: coffer.RoleOwner}}}
	rand.Read(c.KeyCommitment[:])
	commit = translog.CommitLeaf(c.Group, 1, coffer.SignCommit(c, priv))
	return identity, commit
}

func TestLeafRoundTripAndVerify(t *testing.T) {
	identity, commit := testLeaves(t)
	l, err := translog.ParseLeaf(identity)
	if err != nil || l.Kind != translog.KindIdentity {
		t.Fatalf("identity leaf: %v", err)
	}
	if !bytes.Equal(l.Marshal(), identity) {
		t.Fatal("identity leaf does not round-trip")
	}
	if _, err := l.VerifyIdentity(); err != nil {
		t.Fatal(err)
	}
	l, err = translog.ParseLeaf(commit)
	if err != nil || l.Kind != translog.KindCommit {
		t.Fatalf("commit leaf: %v", err)
	}
	if !bytes.Equal(l.Marshal(), commit) {
		t.Fatal("commit leaf does not round-trip")
	}
	if _, err := l.ParseCommit(); err != nil {
		t.Fatal(err)
	}
	// A leaf whose group or seq is not its commit's is refused.
	l.Seq = 2
	if _, err := l.ParseCommit(); err == nil {
		t.Fatal("a commit leaf under another seq parses")
	}
}

// TestLeafMangling changes every byte of valid leaves: each variant must
// fail to parse, fail to verify, or (for the commit body, checked by the
// chain verifier and the signature) parse as a different leaf.
func TestLeafMangling(t *testing.T) {
	identity, commit := testLeaves(t)
	for i := range identity {
		m := bytes.Clone(identity)
		m[i] ^= 0x01
		l, err := translog.ParseLeaf(m)
		if err != nil {
			continue
		}
		if _, err := l.VerifyIdentity(); err == nil && !bytes.Equal(l.Marshal(), identity) {
			// Only the account id is not covered by the self-signature:
			// it is bound by the log position and the server's records.
			if i < len(coffer.SignedMessage(coffer.LabelLogLeaf, nil))+1 || i >= len(coffer.SignedMessage(coffer.LabelLogLeaf, nil))+1+16 {
				t.Errorf("identity leaf with byte %d changed still verifies", i)
			}
		}
	}
	for _, cut := range []int{0, 1, 10, len(commit) - 1} {
		if _, err := translog.ParseLeaf(commit[:cut]); err == nil {
			t.Errorf("commit leaf truncated to %d bytes parses", cut)
		}
	}
	if _, err := translog.ParseLeaf(append(bytes.Clone(commit), 0)); err == nil {
		t.Error("commit leaf with a trailing byte parses")
	}
}

func TestCheckpointSignVerify(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := translog.NewSigner("coffer.example.com", key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := translog.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	var root, mapRoot tlog.Hash
	rand.Read(root[:])
	rand.Read(mapRoot[:])
	in := translog.Checkpoint{Size: 42, Root: root, MapSize: 7, MapRoot: mapRoot, Time: 1_800_000_000}
	note, err := s.Sign(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(note, "coffer.example.com\n42\n") {
		t.Fatalf("checkpoint body is not origin, size, root:\n%s", note)
	}
	cp, err := v.Open(note)
	in.Origin = "coffer.example.com"
	if err != nil || cp != in {
		t.Fatalf("Open = %+v, %v", cp, err)
	}
	// Signing is deterministic: the sequencer relies on it.
	if again, _ := s.Sign(in); again != note {
		t.Fatal("signing the same tree twice gives different notes")
	}
	// Every changed byte of the note fails, or opens to exactly the same
	// checkpoint: the signature line is base64 decoded without strictness
	// (golang.org/x/mod/sumdb/note), so flipping a padding bit of its last
	// character leaves the signature bytes, and the meaning, unchanged.
	// Which bits are padding depends on the signature, so checking "fails"
	// alone would fail at random.
	for i := range note {
		m := []byte(note)
		m[i] ^= 0x01
		got, err := v.Open(string(m))
		if err == nil && got != cp {
			t.Errorf("note with byte %d changed verifies as another checkpoint: %+v", i, got)
		}
		if err == nil && i < strings.Index(note, "\n\n") {
			t.Errorf("note with byte %d of its signed text changed verifies", i)
		}
	}
	// Another key with the same origin does not verify.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	s2, _ := translog.NewSigner("coffer.example.com", other)
	note2, _ := s2.Sign(in)
	if _, err := v.Open(note2); err == nil {
		t.Fatal("a checkpoint by another key verifies")
	}
	// The origin line must be the key's name.
	body := note[:strings.Index(note, "\n\n")+1]
	if _, err := translog.ParseCheckpointText(strings.Replace(body, "\n42\n", "\n042\n", 1)); err == nil {
		t.Fatal("a non-canonical size parses")
	}
	// The extension lines are required, exactly, and canonical.
	for _, bad := range []string{
		strings.Replace(body, "coffer-map 7 ", "coffer-map 07 ", 1),
		strings.Replace(body, "coffer-map 7 ", "coffer-map  7 ", 1),
		strings.Replace(body, "coffer-map", "coffer-mop", 1),
		strings.Replace(body, "coffer-time 1800000000", "coffer-time -1", 1),
		strings.Replace(body, "coffer-time 1800000000\n", "", 1),
		strings.Replace(body, "coffer-time 1800000000\n", "coffer-time 1800000000\nextra\n", 1),
		strings.Join(strings.Split(body, "\n")[:3], "\n") + "\n",
	} {
		if _, err := translog.ParseCheckpointText(bad); err == nil {
			t.Errorf("malformed checkpoint parses:\n%s", bad)
		}
	}
	if got, err := translog.ParseCheckpointText(body); err != nil || got != in {
		t.Fatalf("ParseCheckpointText(Text) = %+v, %v", got, err)
	}
}

func TestConsistencyAndInclusion(t *testing.T) {
	var hashes []tlog.Hash
	r := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, j := range ix {
			out[i] = hashes[j]
		}
		return out, nil
	})
	var leaves [][]byte
	var cps []translog.Checkpoint
	for n := range int64(40) {
		leaf := []byte{byte(n)}
		leaves = append(leaves, leaf)
		hs, err := tlog.StoredHashes(n, leaf, r)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
		root, _ := tlog.TreeHash(n+1, r)
		cps = append(cps, translog.Checkpoint{Origin: "o", Size: n + 1, Root: root})
		// The frontier is all TreeHash needs.
		front := map[int64]tlog.Hash{}
		for _, ix := range translog.Frontier(n + 1) {
			front[ix] = hashes[ix]
		}
		got, err := tlog.TreeHash(n+1, tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(ix))
			for i, j := range ix {
				h, ok := front[j]
				if !ok {
					t.Fatalf("TreeHash(%d) reads %d, not in the frontier", n+1, j)
				}
				out[i] = h
			}
			return out, nil
		}))
		if err != nil || got != root {
			t.Fatalf("frontier root of %d: %v", n+1, err)
		}
	}
	for _, pair := range [][2]int{{0, 39}, {5, 6}, {16, 31}, {7, 7}} {
		older, newer := cps[pair[0]], cps[pair[1]]
		p, err := tlog.ProveTree(newer.Size, older.Size, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := translog.CheckConsistency(older, newer, p); err != nil {
			t.Fatalf("%d → %d: %v", older.Size, newer.Size, err)
		}
		forked := newer
		forked.Root[0] ^= 1
		if err := translog.CheckConsistency(older, forked, p); err == nil {
			t.Fatalf("%d → forked %d passes", older.Size, newer.Size)
		}
	}
	cp := cps[39]
	for i, leaf := range leaves {
		p, err := tlog.ProveRecord(cp.Size, int64(i), r)
		if err != nil {
			t.Fatal(err)
		}
		if err := translog.CheckInclusion(cp, int64(i), leaf, p); err != nil {
			t.Fatal(err)
		}
		if err := translog.CheckInclusion(cp, int64(i), []byte("other"), p); err == nil {
			t.Fatal("another leaf is included")
		}
	}
}
