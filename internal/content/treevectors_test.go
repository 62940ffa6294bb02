package content_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/content"
)

// The chunk tree vectors live in testdata/chunktree, one case per file, as
// "name: value" lines:
//
//	expect: success | mismatch
//	comment: what the case models
//	root: hex of the tree root the author signed
//	chunks: the STREAM chunk count the author signed
//	leaf: hex of one leaf's bytes, in the order served (leaf 0 is the age
//	  header); repeated
//
// A reader hashes each leaf (RFC 6962 leaf hash), concatenates the hashes
// into the chunk hash list and checks it with VerifyChunkHashes. Leaves are
// short stand-ins for the age header and chunks: the tree does not depend
// on their length. -update regenerates them.
const treeVectorDir = "../../testdata/chunktree"

type treeVector struct {
	expect, comment string
	root            [32]byte
	chunks          uint64
	leaves          [][]byte
}

func (v *treeVector) list() []byte {
	var l []byte
	for _, d := range v.leaves {
		h := rfc6962Leaf(d)
		l = append(l, h[:]...)
	}
	return l
}

// rfc6962Leaf and rfc6962Node restate RFC 6962 §2.1 with crypto/sha256,
// only to check tlog's answers in these tests independently.
func rfc6962Leaf(d []byte) [32]byte { return sha256.Sum256(append([]byte{0}, d...)) }
func rfc6962Node(l, r [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func TestTreeVectors(t *testing.T) {
	if *update {
		writeTreeVectors(t)
	}
	files, _ := filepath.Glob(filepath.Join(treeVectorDir, "*.txt"))
	if len(files) == 0 {
		t.Fatal("no chunk tree vectors; run go test -run TestTreeVectors -update")
	}
	seen := map[string]bool{}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			v := mustReadTreeVector(t, f)
			seen[v.expect] = true
			_, err := content.VerifyChunkHashes(v.list(), v.root, v.chunks)
			got := "success"
			if errors.Is(err, content.ErrChunkHashes) {
				got = "mismatch"
			} else if err != nil {
				got = err.Error()
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

// TestTreeRootRFC6962 checks tlog's root against RFC 6962 computed by hand
// for small trees, including the unbalanced ones.
func TestTreeRootRFC6962(t *testing.T) {
	l := make([][32]byte, 5)
	for i := range l {
		l[i] = rfc6962Leaf([]byte{byte(i)})
	}
	n := rfc6962Node
	want := map[int][32]byte{
		1: l[0],
		2: n(l[0], l[1]),
		3: n(n(l[0], l[1]), l[2]),
		4: n(n(l[0], l[1]), n(l[2], l[3])),
		5: n(n(n(l[0], l[1]), n(l[2], l[3])), l[4]),
	}
	for size, w := range want {
		if got := content.TreeRoot(l[:size]); got != w {
			t.Errorf("%d leaves: root %x, want %x", size, got, w)
		}
	}
}

func mustReadTreeVector(tb testing.TB, path string) *treeVector {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	v := &treeVector{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			tb.Fatalf("malformed line %q", sc.Text())
		}
		switch name {
		case "expect":
			v.expect = value
		case "comment":
			v.comment = value
		case "root":
			var b []byte
			if b, err = hex.DecodeString(value); err == nil && len(b) != 32 {
				err = fmt.Errorf("%d bytes", len(b))
			}
			copy(v.root[:], b)
		case "chunks":
			v.chunks, err = strconv.ParseUint(value, 10, 64)
		case "leaf":
			var b []byte
			b, err = hex.DecodeString(value)
			v.leaves = append(v.leaves, b)
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

func writeTreeVectors(t *testing.T) {
	leaves := func(n int) [][]byte {
		out := [][]byte{[]byte("age-encryption.org/v1 header stand-in")}
		for i := range n {
			out = append(out, []byte(fmt.Sprintf("chunk %d ciphertext stand-in", i)))
		}
		return out
	}
	rootOf := func(ls [][]byte) [32]byte {
		var hs [][32]byte
		for _, d := range ls {
			hs = append(hs, rfc6962Leaf(d))
		}
		return content.TreeRoot(hs)
	}
	swap := func(ls [][]byte, i, j int) [][]byte {
		ls = append([][]byte(nil), ls...)
		ls[i], ls[j] = ls[j], ls[i]
		return ls
	}
	l7 := leaves(7)
	r7 := rootOf(l7)
	cases := []struct {
		name, expect, comment string
		root                  [32]byte
		chunks                uint64
		leaves                [][]byte
	}{
		{"good-1-chunk", "success", "the smallest file: header and one final chunk", rootOf(leaves(1)), 1, leaves(1)},
		{"good-2-chunks", "success", "a balanced tree of 3 leaves", rootOf(leaves(2)), 2, leaves(2)},
		{"good-7-chunks", "success", "8 leaves: a full tree", r7, 7, l7},
		{"good-12-chunks", "success", "13 leaves: an unbalanced tree", rootOf(leaves(12)), 12, leaves(12)},
		{"swapped-chunk", "mismatch", "chunks 2 and 3 served in each other's place", r7, 7, swap(l7, 3, 4)},
		{"swapped-header", "mismatch", "the header leaf and chunk 0 exchanged", r7, 7, swap(l7, 0, 1)},
		{"truncated-tree", "mismatch", "the last leaf dropped, count as signed", r7, 7, l7[:7]},
		{"truncated-tree-and-count", "mismatch", "the last leaf dropped and the count lowered to match", r7, 6, l7[:7]},
		{"extended-tree", "mismatch", "a leaf appended, count as signed", r7, 7, append(append([][]byte(nil), l7...), []byte("extra"))},
		{"extended-tree-and-count", "mismatch", "a leaf appended and the count raised to match", r7, 8, append(append([][]byte(nil), l7...), []byte("extra"))},
		{"wrong-count-high", "mismatch", "honest leaves, count one higher", r7, 8, l7},
		{"wrong-count-low", "mismatch", "honest leaves, count one lower", r7, 6, l7},
		{"modified-chunk", "mismatch", "one byte of chunk 5 changed", r7, 7, func() [][]byte {
			ls := append([][]byte(nil), l7...)
			ls[6] = append([]byte(nil), ls[6]...)
			ls[6][0] ^= 1
			return ls
		}()},
	}
	old, _ := filepath.Glob(filepath.Join(treeVectorDir, "*.txt"))
	for _, f := range old {
		os.Remove(f)
	}
	if err := os.MkdirAll(treeVectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		var b bytes.Buffer
		fmt.Fprintf(&b, "expect: %s\ncomment: %s\nroot: %x\nchunks: %d\n", c.expect, c.comment, c.root[:], c.chunks)
		for _, l := range c.leaves {
			fmt.Fprintf(&b, "leaf: %x\n", l)
		}
		if err := os.WriteFile(filepath.Join(treeVectorDir, c.name+".txt"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
