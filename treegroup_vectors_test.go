package coffer_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// Tree group vectors: testdata/chaintree/NAME.txt, one case each:
//
//	expect: <rule, or success>
//	comment: <what the case is>
//
//	key <base64 MemberKeys encoding>          (the source's keys)
//	commit <base64 body> <base64 signature>
//	tkeys <base64 public keys, concatenated>  (beside the commit above: those its tree part names by digest)
//	cts <base64 ciphertexts>                  (beside the commit above, as the server accepted them)
//	served <base64 ciphertexts>               (what the receiver got instead, if the server changed it)
//	receiver <account id hex> <base64 X-Wing seed>
//
// Ciphertexts encode as count u32, then per ciphertext node u32,
// recipient u32, length u16, sealed (1168 bytes when well formed). The result is the first failure of, in
// order: VerifyChainWith over the commits; ApplyTree of each commit that
// has a cts line with its ciphertexts; WithMemberKeys of the final state;
// the receiver opening, from the commit that places it on, each tree
// commit with what it was served.
const chainTreeVectorDir = "testdata/chaintree"

type treeVector struct {
	commits  []coffer.SignedCommit
	keys     coffer.MemberKeyMap
	tkeys    map[int][][]byte
	cts      map[int][]ratchettree.Ciphertext
	served   map[int][]ratchettree.Ciphertext
	receiver *treeActor
}

func (b *treeChain) vector(receiver *treeActor) treeVector {
	v := treeVector{commits: b.commits, keys: b.keys, tkeys: b.tkeys, cts: map[int][]ratchettree.Ciphertext{}, served: map[int][]ratchettree.Ciphertext{}, receiver: receiver}
	for i, cts := range b.cts {
		if cts != nil {
			v.cts[i] = cts
		}
	}
	return v
}

func encodeCiphertexts(cts []ratchettree.Ciphertext) string {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(cts)))
	for _, ct := range cts {
		b = binary.BigEndian.AppendUint32(b, ct.Node)
		b = binary.BigEndian.AppendUint32(b, ct.Recipient)
		b = binary.BigEndian.AppendUint16(b, uint16(len(ct.Sealed)))
		b = append(b, ct.Sealed...)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeCiphertexts(tb testing.TB, s string) []ratchettree.Ciphertext {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 4 {
		tb.Fatalf("bad ciphertexts %.20q", s)
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	var cts []ratchettree.Ciphertext
	for range n {
		if len(b) < 10 || len(b) < 10+int(binary.BigEndian.Uint16(b[8:])) {
			tb.Fatal("truncated ciphertexts")
		}
		size := 10 + int(binary.BigEndian.Uint16(b[8:]))
		cts = append(cts, ratchettree.Ciphertext{Node: binary.BigEndian.Uint32(b), Recipient: binary.BigEndian.Uint32(b[4:]), Sealed: bytes.Clone(b[10:size])})
		b = b[size:]
	}
	if len(b) != 0 {
		tb.Fatal("trailing bytes after the ciphertexts")
	}
	return cts
}

func encodeTreeVector(tc treeCase, v treeVector) []byte {
	var buf bytes.Buffer
	expect := tc.rule
	if expect == "" {
		expect = "success"
	}
	fmt.Fprintf(&buf, "expect: %s\ncomment: %s\n\n", expect, tc.comment)
	var encs []string
	for _, k := range v.keys {
		encs = append(encs, base64.StdEncoding.EncodeToString(k.Marshal()))
	}
	slices.Sort(encs)
	for _, e := range encs {
		fmt.Fprintf(&buf, "key %s\n", e)
	}
	for i, sc := range v.commits {
		fmt.Fprintf(&buf, "commit %s %s\n", base64.StdEncoding.EncodeToString(sc.Body), base64.StdEncoding.EncodeToString(sc.Signature))
		if keys, ok := v.tkeys[i]; ok {
			fmt.Fprintf(&buf, "tkeys %s\n", base64.StdEncoding.EncodeToString(bytes.Join(keys, nil)))
		}
		if cts, ok := v.cts[i]; ok {
			fmt.Fprintf(&buf, "cts %s\n", encodeCiphertexts(cts))
		}
		if cts, ok := v.served[i]; ok {
			fmt.Fprintf(&buf, "served %s\n", encodeCiphertexts(cts))
		}
	}
	if r := v.receiver; r != nil {
		seed := sha256.Sum256(fmt.Appendf(nil, "coffer v2 chain test %d generation %d encryption", r.n, r.gen))
		fmt.Fprintf(&buf, "receiver %s %s\n", hex.EncodeToString(r.ID[:]), base64.StdEncoding.EncodeToString(seed[:]))
	}
	return buf.Bytes()
}

type parsedTreeVector struct {
	expect   string
	commits  []coffer.SignedCommit
	keys     coffer.MemberKeyMap
	tkeys    map[int][][]byte
	cts      map[int][]ratchettree.Ciphertext
	served   map[int][]ratchettree.Ciphertext
	receiver coffer.AccountID
	seed     []byte
}

func parseTreeVector(tb testing.TB, data []byte) parsedTreeVector {
	tb.Helper()
	h := parseVectorHeader(tb, data)
	_, rest, _ := bytes.Cut(data, []byte("\n\n"))
	v := parsedTreeVector{expect: h["expect"], keys: coffer.MemberKeyMap{}, tkeys: map[int][][]byte{}, cts: map[int][]ratchettree.Ciphertext{}, served: map[int][]ratchettree.Ciphertext{}}
	dec := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	for _, line := range strings.Split(strings.TrimSpace(string(rest)), "\n") {
		f := strings.Fields(line)
		last := len(v.commits) - 1
		switch {
		case len(f) == 2 && f[0] == "key":
			k, err := coffer.ParseMemberKeys(dec(f[1]))
			if err != nil {
				tb.Fatal(err)
			}
			v.keys.Add(k)
		case len(f) == 3 && f[0] == "commit":
			v.commits = append(v.commits, coffer.SignedCommit{Body: dec(f[1]), Signature: dec(f[2])})
		case len(f) == 2 && f[0] == "tkeys" && last >= 0:
			b := dec(f[1])
			if len(b)%ratchettree.PublicKeySize != 0 {
				tb.Fatal("tree keys are not whole keys")
			}
			for len(b) > 0 {
				v.tkeys[last] = append(v.tkeys[last], b[:ratchettree.PublicKeySize])
				b = b[ratchettree.PublicKeySize:]
			}
		case len(f) == 2 && f[0] == "cts" && last >= 0:
			v.cts[last] = decodeCiphertexts(tb, f[1])
		case len(f) == 2 && f[0] == "served" && last >= 0:
			v.served[last] = decodeCiphertexts(tb, f[1])
		case len(f) == 3 && f[0] == "receiver":
			id, err := hex.DecodeString(f[1])
			if err != nil || len(id) != 16 {
				tb.Fatal("bad receiver id")
			}
			copy(v.receiver[:], id)
			v.seed = dec(f[2])
		default:
			tb.Fatalf("bad vector line %.40q", line)
		}
	}
	return v
}

// run is the vector's result: "success" or the first failure's rule.
func (v parsedTreeVector) run(tb testing.TB) string {
	tb.Helper()
	if _, err := verifyBothWays(tb, v.commits, v.keys); err != nil {
		return ruleOf(err)
	}
	s := new(coffer.GroupState)
	states := make([]*coffer.GroupState, len(v.commits))
	for i, sc := range v.commits {
		var err error
		if cts, ok := v.cts[i]; ok {
			err = s.ApplyTree(sc, v.tkeys[i], cts, v.keys)
		} else {
			err = s.ApplyWith(sc, v.keys)
		}
		if err != nil {
			return ruleOf(err)
		}
		states[i] = s.Clone()
	}
	if _, err := s.WithMemberKeys(v.keys); err != nil {
		return ruleOf(err)
	}
	if v.seed == nil {
		return "success"
	}
	priv, err := coffer.KEM().DeriveKeyPair(v.seed)
	if err != nil {
		tb.Fatal(err)
	}
	var view *ratchettree.Member
	for i, sc := range v.commits {
		m := states[i].Members[v.receiver]
		c, err := coffer.ParseCommit(sc.Body)
		if err != nil {
			tb.Fatal(err)
		}
		if m == nil || c.Tree == nil || c.Tree.Commit == nil || len(c.Tree.Commit.Adds)+len(c.Tree.Commit.Rekey) == 0 && c.Tree.Commit.Path == nil {
			continue
		}
		if view == nil {
			view = ratchettree.NewMember(m.Leaf, priv)
		}
		cts, ok := v.served[i]
		if !ok {
			cts = v.cts[i]
		}
		h := sc.Hash()
		if _, err := view.Receive(coffer.TreeContext(c), c.Tree.Commit.Attach(cts), h[:]); err != nil {
			return treeRuleOf(err)
		}
	}
	return "success"
}

func treeRuleOf(err error) string {
	var e *ratchettree.Error
	if errors.As(err, &e) {
		return string(e.Rule)
	}
	return ruleOf(err)
}

// treeCase is one tree group chain and the rule its vector expects.
type treeCase struct {
	name, comment, rule string
	build               func(tb testing.TB, p treeCast) treeVector
}

// TestChainTreeVectors checks every vector file, that the files are what
// treeCases generate (with deterministic randomness), and that no case
// lacks its file. -update rewrites them.
func TestChainTreeVectors(t *testing.T) {
	p := mustTreeCast(t)
	if updateVectors() {
		os.RemoveAll(chainTreeVectorDir)
		if err := os.MkdirAll(chainTreeVectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range treeCases {
		t.Run(tc.name, func(t *testing.T) {
			// Sealing runs on every core, and so would draw the fixed
			// randomness in a varying order.
			cryptotest.SetGlobalRandom(t, 15)
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			want := encodeTreeVector(tc, tc.build(t, p))
			path := filepath.Join(chainTreeVectorDir, tc.name+".txt")
			if updateVectors() {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v: run go test -run TestChainTreeVectors -update", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from what its case generates: run go test -run TestChainTreeVectors -update", path)
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join(chainTreeVectorDir, "*.txt"))
	if len(files) != len(treeCases) {
		t.Errorf("%d vector files for %d cases", len(files), len(treeCases))
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		v := parseTreeVector(t, data)
		if got := v.run(t); got != v.expect {
			t.Errorf("%s: got %s, want %s", path, got, v.expect)
		}
	}
}
