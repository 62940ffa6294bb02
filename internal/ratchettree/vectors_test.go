package ratchettree

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Vectors in testdata/ratchettree, one case per file:
//
//	expect: success | <rule>
//	comment: ...
//	check: verify | receive | both
//	group: <hex 16 bytes>          epoch: <n>       committer: <leaf>
//	untrusted: <leaf>,<leaf>       (optional)
//	tree: <base64 public tree>     (verify, both)
//	commit: <base64 commit>
//	receiver: <leaf>               receiver-seed: <hex>   (receive, both)
//	receiver-secret: <node> <hex>  (repeated)
//	commit-hash: <hex>             epoch-key: <hex>  (success)
//
// A receiver's leaf key is DeriveKeyPair(receiver-seed).
const vectorDir = "../../testdata/ratchettree"

type vector struct {
	fields  map[string]string
	secrets map[uint32][]byte
}

func readVector(tb testing.TB, path string) vector {
	tb.Helper()
	f, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	v := vector{fields: map[string]string{}, secrets: map[uint32][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(f))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		k, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			tb.Fatalf("%s: bad line %q", path, sc.Text())
		}
		if k == "receiver-secret" {
			ns, hx, _ := strings.Cut(val, " ")
			x, _ := strconv.Atoi(ns)
			s, _ := hex.DecodeString(hx)
			v.secrets[uint32(x)] = s
			continue
		}
		v.fields[k] = val
	}
	return v
}

func (v vector) u(tb testing.TB, k string) uint64 {
	n, err := strconv.ParseUint(v.fields[k], 10, 64)
	if err != nil {
		tb.Fatalf("%s: %v", k, err)
	}
	return n
}

func (v vector) hex(tb testing.TB, k string) []byte {
	b, err := hex.DecodeString(v.fields[k])
	if err != nil {
		tb.Fatalf("%s: %v", k, err)
	}
	return b
}

func (v vector) b64(tb testing.TB, k string) []byte {
	b, err := base64.StdEncoding.DecodeString(v.fields[k])
	if err != nil {
		tb.Fatalf("%s: %v", k, err)
	}
	return b
}

// run returns "success" or the failing rule.
func (v vector) run(tb testing.TB) string {
	var ctx Context
	copy(ctx.Group[:], v.hex(tb, "group"))
	ctx.Epoch = v.u(tb, "epoch")
	c, err := ParseCommit(v.b64(tb, "commit"))
	if err != nil {
		return ruleOf(tb, err)
	}
	check := v.fields["check"]
	if check == "verify" || check == "both" {
		t, err := ParseTree(v.b64(tb, "tree"))
		if err != nil {
			return ruleOf(tb, err)
		}
		var untrusted []uint32
		if s := v.fields["untrusted"]; s != "" {
			for _, f := range strings.Split(s, ",") {
				n, _ := strconv.Atoi(f)
				untrusted = append(untrusted, uint32(n))
			}
		}
		if _, err := Verify(t, uint32(v.u(tb, "committer")), c, untrusted); err != nil {
			return ruleOf(tb, err)
		}
	}
	if check == "receive" || check == "both" {
		k, err := kem.DeriveKeyPair(v.hex(tb, "receiver-seed"))
		if err != nil {
			tb.Fatal(err)
		}
		m := NewMember(uint32(v.u(tb, "receiver")), k)
		m.secrets = v.secrets
		ek, err := m.Receive(ctx, c, v.hex(tb, "commit-hash"))
		if err != nil {
			return ruleOf(tb, err)
		}
		if !bytes.Equal(ek, v.hex(tb, "epoch-key")) {
			return "wrong-epoch-key"
		}
	}
	return "success"
}

func ruleOf(tb testing.TB, err error) string {
	e, ok := err.(*Error)
	if !ok {
		tb.Fatalf("untyped error %v", err)
	}
	return string(e.Rule)
}

func TestVectors(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	seen := map[string]bool{}
	for _, f := range files {
		v := readVector(t, f)
		want := v.fields["expect"]
		seen[want] = true
		t.Run(filepath.Base(f), func(t *testing.T) {
			if got := v.run(t); got != want {
				t.Fatalf("got %s, want %s (%s)", got, want, v.fields["comment"])
			}
		})
	}
	// Every rule has a negative vector, and success vectors exist: a
	// removed vector fails here.
	for _, r := range []string{"success", string(RuleShape), string(RuleLeaf), string(RulePublicKey), string(RuleCiphertexts),
		string(RuleTreeHash), string(RuleTaint), string(RuleWithheld), string(RuleDecrypt), string(RuleKeyMismatch), string(RuleUnknownNode)} {
		if !seen[r] {
			t.Errorf("no vector expects %s", r)
		}
	}
}

// TestWriteVectors regenerates testdata/ratchettree when
// RATCHETTREE_WRITE_VECTORS=1.
func TestWriteVectors(t *testing.T) {
	if os.Getenv("RATCHETTREE_WRITE_VECTORS") != "1" {
		t.Skip("set RATCHETTREE_WRITE_VECTORS=1 to regenerate the vectors")
	}
	os.MkdirAll(vectorDir, 0o755)
	old, _ := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	for _, f := range old {
		os.Remove(f)
	}
	seed := func(i uint32) []byte { s := sha256.Sum256(fmt.Appendf(nil, "vec/%d", i)); return s[:] }
	// An 8-member group built with seeded keys so a receiver's key is
	// reproducible: leafKey(tb, "vec/i") is DeriveKeyPair(sha256("vec/i")).
	g := mustGenesis(t, "vec", 8)
	g.commit(3, Spec{Path: &PathSpec{Op: OpRemove, Leaf: 7}}, nil) // admin 3 now taints nodes
	type vcase struct {
		name, expect, comment, check string
		committer                    uint32
		spec                         Spec
		untrusted                    []uint32
		receiver                     uint32
		mangle                       func(*Commit, *Context, map[uint32][]byte)
	}
	nk := leafKey(t, "vec/new")
	cases := []vcase{
		{name: "remove", expect: "success", check: "both", comment: "admin 0 removes leaf 5; leaf 2 receives", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, receiver: 2},
		{name: "remove-sibling", expect: "success", check: "both", comment: "leaf 4, the removed leaf's sibling, receives at its user key", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, receiver: 4},
		{name: "update", expect: "success", check: "both", committer: 1, comment: "leaf 1 refreshes its own path; leaf 6 receives", spec: Spec{Path: &PathSpec{Op: OpUpdate, Leaf: 1, LeafKey: nk.PublicKey().Bytes()}}, receiver: 6},
		{name: "remove-admin", expect: "success", check: "both", comment: "admin 0 removes admin 3 and rekeys every node 3 tainted", spec: Spec{Removes: []uint32{3}, Untrusted: []uint32{3}}, untrusted: []uint32{3}, receiver: 6},
		{name: "remove-admin-taint-left", expect: string(RuleTaint), check: "verify", comment: "admin 3 removed by path alone: the nodes it tainted keep secrets it knows", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 3}}, untrusted: []uint32{3}},
		{name: "tree-hash-flipped", expect: string(RuleTreeHash), check: "verify", comment: "the claimed tree hash is off by one bit", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) { c.TreeHash[0] ^= 1 }},
		{name: "tree-hash-key-swapped", expect: string(RuleTreeHash), check: "verify", comment: "two path public keys swapped, tree hash left", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Path.PublicKeys[0], c.Path.PublicKeys[1] = c.Path.PublicKeys[1], c.Path.PublicKeys[0]
		}},
		{name: "ciphertext-withheld", expect: string(RuleCiphertexts), check: "verify", comment: "the last path ciphertext is missing", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Path.Ciphertexts = c.Path.Ciphertexts[:len(c.Path.Ciphertexts)-1]
		}},
		{name: "ciphertext-extra", expect: string(RuleCiphertexts), check: "verify", comment: "a duplicated path ciphertext", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Path.Ciphertexts = append(c.Path.Ciphertexts, c.Path.Ciphertexts[0])
		}},
		{name: "ciphertext-misaddressed", expect: string(RuleCiphertexts), check: "verify", comment: "a ciphertext labelled for a node outside the copath resolution", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Path.Ciphertexts[0].Recipient = 0
		}},
		{name: "public-key-missing", expect: string(RulePublicKey), check: "verify", comment: "the root's new public key is missing", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Path.PublicKeys = c.Path.PublicKeys[:len(c.Path.PublicKeys)-1]
		}},
		{name: "public-key-not-xwing", expect: string(RulePublicKey), check: "verify", comment: "a rekeyed node's key is not an X-Wing key", spec: Spec{Rekey: []uint32{1}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Rekey[0].PublicKey = bytes.Repeat([]byte{0xff}, PublicKeySize)
		}},
		{name: "remove-self", expect: string(RuleLeaf), check: "verify", comment: "the committer removes its own leaf", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) { c.Path.Leaf = 0 }},
		{name: "leaf-count", expect: string(RuleShape), check: "verify", comment: "the commit claims one leaf more than it makes", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) { c.Leaves++ }},
		{name: "self-update-admin", expect: "success", check: "both", comment: "admin 3 replaces its user key (a revoked device) and rekeys its path and every node it tainted", committer: 3, spec: Spec{SelfUpdate: nk.PublicKey().Bytes()}, receiver: 6},
		{name: "self-update-admin-taint-left", expect: string(RuleTaint), check: "verify", comment: "admin 3's rekeyed self-update leaves out a node it tainted", committer: 3, spec: Spec{SelfUpdate: nk.PublicKey().Bytes()}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			for i, r := range c.Rekey {
				if !IsAncestor(r.Node, LeafNode(3)) && Level(r.Node) == 1 {
					c.Rekey = slices.Delete(c.Rekey, i, i+1)
					return
				}
			}
		}},
		{name: "path-and-rekey", expect: string(RuleShape), check: "verify", comment: "a path update and a rekey in one commit", spec: Spec{Rekey: []uint32{1}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Path = &PathUpdate{Op: OpRemove, Leaf: 5}
		}},
		{name: "bulk-remove-not-rekeyed", expect: string(RuleShape), check: "verify", comment: "a bulk removal whose leaf's path is not rekeyed", spec: Spec{Rekey: []uint32{1}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Removes = []uint32{6}
		}},
		{name: "rekey-without-parent", expect: string(RuleShape), check: "verify", comment: "a rekeyed node whose parent is not rekeyed", spec: Spec{Rekey: []uint32{1}}, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) { c.Rekey = c.Rekey[:1] }},
		{name: "receive-wrong-node", expect: string(RuleDecrypt), check: "both", comment: "leaf 2's ciphertext holds the bytes sealed to another node", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, receiver: 2, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			i := indexOf(c, 2, 8)
			j := (i + 1) % len(c.Path.Ciphertexts)
			c.Path.Ciphertexts[i].Sealed, c.Path.Ciphertexts[j].Sealed = c.Path.Ciphertexts[j].Sealed, c.Path.Ciphertexts[i].Sealed
		}},
		{name: "receive-other-group", expect: string(RuleDecrypt), check: "receive", comment: "the commit is served in another group with the same members", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, receiver: 4, mangle: func(_ *Commit, ctx *Context, _ map[uint32][]byte) { ctx.Group[0] ^= 1 }},
		{name: "receive-key-mismatch", expect: string(RuleKeyMismatch), check: "receive", comment: "the root's committed key is not the one its secret derives", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, receiver: 2, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Path.PublicKeys[len(c.Path.PublicKeys)-1] = nk.PublicKey().Bytes()
		}},
		{name: "receive-withheld", expect: string(RuleWithheld), check: "receive", comment: "the receiver's ciphertext is not served", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, receiver: 2, mangle: func(c *Commit, _ *Context, _ map[uint32][]byte) {
			c.Path.Ciphertexts = slices.Delete(c.Path.Ciphertexts, indexOf(c, 2, 8), indexOf(c, 2, 8)+1)
		}},
		{name: "receive-unknown-node", expect: string(RuleUnknownNode), check: "receive", comment: "the receiver lost the secret of the node its ciphertext is sealed to", spec: Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}}, receiver: 2, mangle: func(_ *Commit, _ *Context, s map[uint32][]byte) { clear(s) }},
	}
	for _, vc := range cases {
		c, _, secrets, err := Create(g.tree, g.ctx, vc.committer, vc.spec)
		if err != nil {
			t.Fatalf("%s: %v", vc.name, err)
		}
		ctx := g.ctx
		recvSecrets := map[uint32][]byte{}
		if m := g.members[vc.receiver]; m != nil {
			for x, s := range m.secrets {
				recvSecrets[x] = s
			}
		}
		if vc.mangle != nil {
			vc.mangle(c, &ctx, recvSecrets)
		}
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "expect: %s\ncomment: %s\ncheck: %s\n", vc.expect, vc.comment, vc.check)
		fmt.Fprintf(&buf, "group: %x\nepoch: %d\ncommitter: %d\n", ctx.Group, ctx.Epoch, vc.committer)
		if len(vc.untrusted) > 0 {
			var s []string
			for _, u := range vc.untrusted {
				s = append(s, strconv.Itoa(int(u)))
			}
			fmt.Fprintf(&buf, "untrusted: %s\n", strings.Join(s, ","))
		}
		tb, _ := g.tree.MarshalBinary()
		cb, _ := c.MarshalBinary()
		fmt.Fprintf(&buf, "tree: %s\ncommit: %s\n", base64.StdEncoding.EncodeToString(tb), base64.StdEncoding.EncodeToString(cb))
		ch := sha256.Sum256([]byte(vc.name))
		fmt.Fprintf(&buf, "receiver: %d\nreceiver-seed: %x\n", vc.receiver, seed(vc.receiver))
		nodes := make([]uint32, 0, len(recvSecrets))
		for x := range recvSecrets {
			nodes = append(nodes, x)
		}
		slices.Sort(nodes)
		for _, x := range nodes {
			fmt.Fprintf(&buf, "receiver-secret: %d %x\n", x, recvSecrets[x])
		}
		fmt.Fprintf(&buf, "commit-hash: %x\n", ch)
		if root, ok := secrets[Root(c.Leaves)]; ok {
			fmt.Fprintf(&buf, "epoch-key: %x\n", EpochKey(root, ch[:]))
		}
		if err := os.WriteFile(filepath.Join(vectorDir, vc.name+".txt"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
