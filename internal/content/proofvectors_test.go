package content_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer/internal/content"
)

// The chunk proof vectors live in testdata/chunkproof, one case per file, as
// "name: value" lines. Each is one frame of a verified range read:
//
//	expect: success | mismatch
//	comment: what the case models
//	root: hex of the signed tree root
//	leaves: the number of leaves in the tree (chunks + 1)
//	index: the leaf the reader asked for (0 is the age header, 1+i chunk i)
//	data: hex of the leaf's bytes as served
//	proof: hex of one proof hash, in order; repeated (tlog.RecordProof)
//
// A reader accepts the frame exactly when CheckChunkProof does. Leaves are
// short stand-ins: the proof does not depend on their length. -update
// regenerates them.
const proofVectorDir = "../../testdata/chunkproof"

type proofVector struct {
	expect, comment string
	root            [32]byte
	leaves, index   int64
	data            []byte
	proof           [][32]byte
}

func TestProofVectors(t *testing.T) {
	if *update {
		writeProofVectors(t)
	}
	files, _ := filepath.Glob(filepath.Join(proofVectorDir, "*.txt"))
	if len(files) == 0 {
		t.Fatal("no chunk proof vectors; run go test -run TestProofVectors -update")
	}
	seen := map[string]bool{}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			v := mustReadProofVector(t, f)
			seen[v.expect] = true
			got := "mismatch"
			if content.CheckChunkProof(v.proof, v.root, v.leaves, v.index, v.data) {
				got = "success"
			}
			if got != v.expect {
				t.Fatalf("outcome %q, want %q", got, v.expect)
			}
		})
	}
	for _, o := range []string{"success", "mismatch"} {
		if !seen[o] {
			t.Errorf("no vector expects %q", o)
		}
	}
}

// TestProofRFC6962 checks a proof from tlog against RFC 6962 computed by
// hand: leaf 2 of 5 is proven by leaf 3, the node over 0 and 1, and leaf 4.
func TestProofRFC6962(t *testing.T) {
	var l [5][32]byte
	var hs []tlog.Hash
	for i := range l {
		l[i] = rfc6962Leaf([]byte{byte(i)})
		hs = append(hs, tlog.Hash(l[i]))
	}
	root := content.TreeRoot(l[:])
	proof := [][32]byte{l[3], rfc6962Node(l[0], l[1]), l[4]}
	if !content.CheckChunkProof(proof, root, 5, 2, []byte{2}) {
		t.Fatal("the hand-made RFC 6962 proof of leaf 2 of 5 does not check")
	}
	if got := proveLeaf(t, hs, 2); fmt.Sprint(got) != fmt.Sprint(proof) {
		t.Fatalf("tlog's proof %x, want %x", got, proof)
	}
}

// proveLeaf is the proof an honest server sends for leaf n of leaves.
func proveLeaf(tb testing.TB, leaves []tlog.Hash, n int64) [][32]byte {
	tb.Helper()
	var list []byte
	for _, h := range leaves {
		list = append(list, h[:]...)
	}
	var ls [][32]byte
	for _, h := range leaves {
		ls = append(ls, h)
	}
	hs, err := content.VerifyChunkHashes(list, content.TreeRoot(ls), uint64(len(leaves)-1))
	if err != nil {
		tb.Fatal(err)
	}
	p, err := hs.Prove(n)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][32]byte
	for _, h := range p {
		out = append(out, h)
	}
	return out
}

func mustReadProofVector(tb testing.TB, path string) *proofVector {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	v := &proofVector{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			tb.Fatalf("malformed line %q", sc.Text())
		}
		var b []byte
		switch name {
		case "expect":
			v.expect = value
		case "comment":
			v.comment = value
		case "root", "proof":
			if b, err = hex.DecodeString(value); err == nil && len(b) != 32 {
				err = fmt.Errorf("%d bytes", len(b))
			}
			if name == "root" {
				copy(v.root[:], b)
			} else {
				v.proof = append(v.proof, [32]byte(b))
			}
		case "leaves":
			v.leaves, err = strconv.ParseInt(value, 10, 64)
		case "index":
			v.index, err = strconv.ParseInt(value, 10, 64)
		case "data":
			v.data, err = hex.DecodeString(value)
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			tb.Fatalf("field %q: %v", name, err)
		}
	}
	if v.expect != "success" && v.expect != "mismatch" {
		tb.Fatalf("unknown expect %q", v.expect)
	}
	return v
}

func writeProofVectors(t *testing.T) {
	data := func(tree string, i int) []byte {
		if i == 0 {
			return []byte(tree + ": age-encryption.org/v1 header stand-in")
		}
		return []byte(fmt.Sprintf("%s: chunk %d ciphertext stand-in", tree, i-1))
	}
	tree := func(name string, n int) (root [32]byte, leaves []tlog.Hash) {
		var ls [][32]byte
		for i := range n {
			h := rfc6962Leaf(data(name, i))
			ls = append(ls, h)
			leaves = append(leaves, tlog.Hash(h))
		}
		return content.TreeRoot(ls), leaves
	}
	r13, l13 := tree("a", 13)
	rOther, lOther := tree("b", 13)
	r8, l8 := tree("a", 8)
	forged := proveLeaf(t, l13, 6)
	forged[1][0] ^= 1
	p5 := proveLeaf(t, l13, 5)
	type vcase struct {
		name, expect, comment string
		root                  [32]byte
		leaves, index         int64
		data                  []byte
		proof                 [][32]byte
	}
	cases := []vcase{
		{"good-header", "success", "the age header leaf of a 12-chunk file", r13, 13, 0, data("a", 0), proveLeaf(t, l13, 0)},
		{"good-middle-chunk", "success", "chunk 5 of 12", r13, 13, 6, data("a", 6), proveLeaf(t, l13, 6)},
		{"good-final-chunk", "success", "the final chunk of an unbalanced tree", r13, 13, 12, data("a", 12), proveLeaf(t, l13, 12)},
		{"good-full-tree", "success", "chunk 3 of a full tree of 8 leaves", r8, 8, 4, data("a", 4), proveLeaf(t, l8, 4)},
		{"proof-for-another-offset", "mismatch", "chunk 4 with its honest proof, served where chunk 5 was asked for", r13, 13, 6, data("a", 5), proveLeaf(t, l13, 5)},
		{"swapped-chunk", "mismatch", "chunk 4's bytes with chunk 5's proof", r13, 13, 6, data("a", 5), proveLeaf(t, l13, 6)},
		{"chunk-from-another-resource", "mismatch", "chunk 5 of another file, with that file's proof", r13, 13, 6, data("b", 6), proveLeaf(t, lOther, 6)},
		{"another-resource-root", "mismatch", "chunk 5 of this file checked against another file's root", rOther, 13, 6, data("a", 6), proveLeaf(t, l13, 6)},
		{"forged-tree-node", "mismatch", "one bit of the second proof hash flipped", r13, 13, 6, data("a", 6), forged},
		{"truncated-proof", "mismatch", "the last proof hash dropped", r13, 13, 6, data("a", 6), proveLeaf(t, l13, 6)[:len(p5)-1]},
		{"extended-proof", "mismatch", "a proof hash appended", r13, 13, 6, data("a", 6), append(proveLeaf(t, l13, 6), p5[0])},
		{"wrong-tree-size", "mismatch", "the final chunk's honest proof checked as if the tree had one leaf more", r13, 14, 12, data("a", 12), proveLeaf(t, l13, 12)},
		{"modified-chunk", "mismatch", "one byte of chunk 5 changed", r13, 13, 6, append([]byte("A"), data("a", 6)[1:]...), proveLeaf(t, l13, 6)},
		{"header-as-chunk", "mismatch", "the header leaf and its proof served as chunk 0", r13, 13, 1, data("a", 0), proveLeaf(t, l13, 0)},
	}
	old, _ := filepath.Glob(filepath.Join(proofVectorDir, "*.txt"))
	for _, f := range old {
		os.Remove(f)
	}
	if err := os.MkdirAll(proofVectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		var b bytes.Buffer
		fmt.Fprintf(&b, "expect: %s\ncomment: %s\nroot: %x\nleaves: %d\nindex: %d\ndata: %x\n", c.expect, c.comment, c.root[:], c.leaves, c.index, c.data)
		for _, p := range c.proof {
			fmt.Fprintf(&b, "proof: %x\n", p[:])
		}
		if err := os.WriteFile(filepath.Join(proofVectorDir, c.name+".txt"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
