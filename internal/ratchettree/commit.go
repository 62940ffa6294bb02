package ratchettree

import (
	"crypto/subtle"
	"slices"
)

// Op is what a path update does to its leaf.
type Op uint8

const (
	OpRemove Op = 1 // blank the leaf, then refresh its direct path (the committer's view)
	OpUpdate Op = 2 // the committer replaces its own leaf key and refreshes its path
	OpAdd    Op = 3 // place a new leaf and refresh its path, sealing the first secret to it too
)

// LeafKey places an X-Wing public key at a leaf. A commit's key fields
// hold the key (a commit being built, or one WithKeys completed), its
// digest (a signed part, as ParseSigned decodes it), or both, which must
// agree; see KeyDigest.
type LeafKey struct {
	Leaf   uint32
	Key    []byte
	Digest [32]byte
}

// Ciphertext carries the secret of node Node sealed to node Recipient.
type Ciphertext struct {
	Node, Recipient uint32
	Sealed          []byte
}

// PathUpdate refreshes Leaf's direct path with one HKDF chain of path
// secrets. PublicKeys holds the new key of each direct-path node, bottom
// up. Ciphertexts holds, level by level from the bottom, the new leaf
// (OpAdd, level 0 only) and then every node of the copath node's
// resolution, each sealed the path secret of that level.
type PathUpdate struct {
	Op            Op
	Leaf          uint32
	LeafKey       []byte    // OpUpdate, OpAdd
	LeafKeyDigest *[32]byte // LeafKey's digest, in a signed part
	PublicKeys    [][]byte
	KeyDigests    [][32]byte // PublicKeys' digests, in a signed part
	Ciphertexts   []Ciphertext
}

// RekeyNode gives a parent node a fresh independent secret, sealed to
// every node of each child's resolution (left child's first).
type RekeyNode struct {
	Node        uint32
	PublicKey   []byte
	Digest      [32]byte // PublicKey's digest, in a signed part
	Ciphertexts []Ciphertext
}

// Commit is the tree part of one commit, applied in order: leaves removed
// and leaves added in bulk, then either one path update or a rekey of a
// set of parent nodes closed under taking parents (listed lowest level
// first, then by index). Both refresh the root, so one commit never has
// both: a node refreshed twice would carry a public key nobody checks.
// Bulk removals and additions need a rekey covering their leaves' paths.
// Leaves is the leaf count after the commit and TreeHash the hash of the
// resulting tree; the signed commit carries both and the public keys.
type Commit struct {
	Leaves  uint32
	Removes []uint32
	Adds    []LeafKey
	// SelfUpdate is the committer's new leaf key in a rekeyed self-update:
	// an admin whose device was revoked replaces its user key, and the
	// rekey must refresh its direct path and every node it tainted, since
	// the revoked device knew those secrets too (RuleTaint).
	SelfUpdate       []byte
	SelfUpdateDigest *[32]byte // SelfUpdate's digest, in a signed part
	Path             *PathUpdate
	Rekey            []RekeyNode
	TreeHash         [32]byte
}

// Verify checks commit c by committer (a leaf index) against the verified
// tree t and returns the tree after it; t is not changed. untrusted lists
// the admins that this commit removes or demotes: no node may still be
// tainted by one of them afterwards. Verify needs no secret and is
// deterministic, so the chain verifier, the server and every client reach
// the same answer.
func Verify(t *Tree, committer uint32, c *Commit, untrusted []uint32) (*Tree, error) {
	nt, _, err := verify(t, committer, c, untrusted, false, ParseKeys)
	return nt, err
}

// VerifySigned is Verify for the signed part of a commit, whose
// ciphertexts travel beside it: c carries no ciphertexts, and every other
// rule is checked as Verify checks it. It also returns the addresses
// (node, recipient; Sealed nil) of the ciphertexts the commit needs, in
// canonical order, for CheckCiphertexts.
func VerifySigned(t *Tree, committer uint32, c *Commit, untrusted []uint32) (*Tree, []Ciphertext, error) {
	return verify(t, committer, c, untrusted, true, ParseKeys)
}

// VerifySignedKeys is VerifySigned with the given check of the commit's
// public keys (KeyCheck). Every other rule is checked as VerifySigned
// checks it.
func VerifySignedKeys(t *Tree, committer uint32, c *Commit, untrusted []uint32, kc KeyCheck) (*Tree, []Ciphertext, error) {
	return verify(t, committer, c, untrusted, true, kc)
}

func verify(t *Tree, committer uint32, c *Commit, untrusted []uint32, detached bool, kc KeyCheck) (*Tree, []Ciphertext, error) {
	var addrs []Ciphertext
	if detached {
		addrs = []Ciphertext{}
	}
	nt, err := apply(t, committer, c, untrusted, &addrs, kc)
	if err != nil {
		return nil, nil, err
	}
	h := nt.Hash()
	if subtle.ConstantTimeCompare(h[:], c.TreeHash[:]) != 1 {
		return nil, nil, errorf(RuleTreeHash, "the commit's tree hash is not the hash of the tree it produces")
	}
	return nt, addrs, nil
}

// apply is Verify without the final tree-hash comparison. When *addrs is
// non-nil the commit is detached: it must carry no ciphertexts, and the
// addresses it needs are appended to *addrs instead of being matched.
func apply(t *Tree, committer uint32, c *Commit, untrusted []uint32, addrs *[]Ciphertext, kc KeyCheck) (*Tree, error) {
	match := func(cts []Ciphertext, nodes []uint32, recips [][]uint32) error {
		if *addrs == nil {
			return matchCiphertexts(cts, nodes, recips)
		}
		if len(cts) != 0 {
			return errorf(RuleShape, "the signed part of a commit carries no ciphertexts")
		}
		for l, node := range nodes {
			for _, r := range recips[l] {
				*addrs = append(*addrs, Ciphertext{Node: node, Recipient: r})
			}
		}
		return nil
	}
	nt := t.Clone()
	if err := checkCommitter(nt, committer); err != nil {
		return nil, err
	}
	if c.Leaves == 0 || c.Leaves > MaxLeaves {
		return nil, errorf(RuleShape, "leaf count %d out of range", c.Leaves)
	}
	if c.Path != nil && (len(c.Rekey) > 0 || len(c.Adds) > 0 || len(c.Removes) > 0 || c.SelfUpdate != nil || c.SelfUpdateDigest != nil) {
		return nil, errorf(RuleShape, "a commit has a path update or bulk changes with a rekey, not both")
	}
	ck, err := c.resolveKeys()
	if err != nil {
		return nil, err
	}
	var self *keyed
	if ck.hasSelf {
		self = &ck.self
	}
	selfTainted := selfTaint(nt, committer, self != nil)
	if err := applyRemoves(nt, committer, c.Removes); err != nil {
		return nil, err
	}
	if err := applySelfUpdate(nt, committer, self, kc); err != nil {
		return nil, err
	}
	if err := applyAdds(nt, c.Adds, ck.adds, kc); err != nil {
		return nil, err
	}
	changed := bulkChanged(c.Removes, c.Adds)
	if self != nil {
		changed = append(changed, LeafNode(committer))
	}
	if p := c.Path; p != nil {
		var leafKey *keyed
		if ck.hasPathLeaf {
			leafKey = &ck.pathLeaf
		}
		dp, recips, err := planPath(nt, committer, p.Op, p.Leaf, leafKey, kc)
		if err != nil {
			return nil, err
		}
		if len(ck.path) != len(dp) {
			return nil, errorf(RulePublicKey, "path has %d public keys for %d nodes", len(ck.path), len(dp))
		}
		for _, err := range kc.checkPublicKeys(len(ck.path), func(i int) []byte { return ck.path[i].key }, false) {
			if err != nil {
				return nil, err
			}
		}
		if err := match(p.Ciphertexts, dp, recips); err != nil {
			return nil, err
		}
		finishPath(nt, committer, dp, ck.path, recips)
		changed = append(changed, LeafNode(p.Leaf))
	}
	removes := c.Removes
	if self != nil {
		removes = append(slices.Clone(removes), committer)
	}
	if err := checkRekeyShape(nt, c.Rekey, removes, c.Adds); err != nil {
		return nil, err
	}
	if err := checkSelfTaint(c.Rekey, selfTainted); err != nil {
		return nil, err
	}
	recips := rekeyRecipients(nt, c.Rekey, ck.rekey)
	keyErrs := kc.checkPublicKeys(len(c.Rekey), func(i int) []byte { return ck.rekey[i].key }, false)
	for i, r := range c.Rekey {
		if err := keyErrs[i]; err != nil {
			return nil, err
		}
		want := make([][]uint32, 1)
		want[0] = recips[i]
		if err := match(r.Ciphertexts, []uint32{r.Node}, want); err != nil {
			return nil, err
		}
	}
	finishRekey(nt, committer, c.Rekey, recips)
	for _, r := range c.Rekey {
		changed = append(changed, r.Node)
	}
	if nt.n != c.Leaves {
		return nil, errorf(RuleShape, "the commit claims %d leaves, the tree has %d", c.Leaves, nt.n)
	}
	if c.Path == nil && len(c.Rekey) == 0 {
		return nil, errorf(RuleShape, "the commit refreshes no node, so there is no new root secret")
	}
	if err := checkTaint(nt, untrusted); err != nil {
		return nil, err
	}
	nt.rehash(changed)
	return nt, nil
}

func checkCommitter(t *Tree, committer uint32) error {
	if committer >= t.n || !t.at(LeafNode(committer)).present {
		return errorf(RuleLeaf, "the committer's leaf %d is not in the tree", committer)
	}
	return nil
}

// applyRemoves blanks bulk-removed leaves; the rekey must then cover
// their direct paths.
func applyRemoves(t *Tree, committer uint32, removes []uint32) error {
	for _, leaf := range removes {
		if leaf >= t.n || !t.at(LeafNode(leaf)).present || leaf == committer {
			return errorf(RuleLeaf, "leaf %d cannot be removed by leaf %d", leaf, committer)
		}
		t.mut(LeafNode(leaf)).blank()
	}
	return nil
}

// selfTaint lists, for a rekeyed self-update, the nodes the committer's
// old keys knew from outside: they must all be rekeyed.
func selfTaint(t *Tree, committer uint32, selfUpdate bool) []uint32 {
	if !selfUpdate {
		return nil
	}
	var out []uint32
	for x := uint32(1); x < Width(t.n); x += 2 {
		if _, ok := slices.BinarySearch(t.at(x).taint, committer); ok {
			out = append(out, x)
		}
	}
	return out
}

func applySelfUpdate(t *Tree, committer uint32, key *keyed, kc KeyCheck) error {
	if key == nil {
		return nil
	}
	if err := kc.checkLeafKey(key.key); err != nil {
		return err
	}
	t.mut(LeafNode(committer)).set(*key)
	return nil
}

func checkSelfTaint(nodes []RekeyNode, tainted []uint32) error {
	in := make(map[uint32]bool, len(nodes))
	for _, r := range nodes {
		in[r.Node] = true
	}
	for _, x := range tainted {
		if !in[x] {
			return errorf(RuleTaint, "node %d, known to the committer's replaced keys, is not rekeyed", x)
		}
	}
	return nil
}

func bulkChanged(removes []uint32, adds []LeafKey) []uint32 {
	var changed []uint32
	for _, l := range removes {
		changed = append(changed, LeafNode(l))
	}
	for _, a := range adds {
		changed = append(changed, LeafNode(a.Leaf))
	}
	return changed
}

// applyAdds places bulk-added leaves: each at the next new leaf, or at a
// blank leaf. New parent nodes created by growth are blank.
func applyAdds(t *Tree, adds []LeafKey, keys []keyed, kc KeyCheck) error {
	keyErrs := kc.checkPublicKeys(len(adds), func(i int) []byte { return keys[i].key }, true)
	for i, a := range adds {
		if err := keyErrs[i]; err != nil {
			return err
		}
		if err := placeLeaf(t, a.Leaf, keys[i]); err != nil {
			return err
		}
	}
	return nil
}

func placeLeaf(t *Tree, leaf uint32, key keyed) error {
	switch {
	case leaf == t.n && t.n < MaxLeaves:
		t.resize(t.n + 1)
	case leaf < t.n && !t.at(LeafNode(leaf)).present:
	default:
		return errorf(RuleLeaf, "leaf %d is neither blank nor the next new leaf", leaf)
	}
	t.mut(LeafNode(leaf)).set(key)
	// No rehash here: the caller lists the leaf as changed and rehashes
	// once, in the final tree (apply, Create). Growth can move the right
	// edge under new parents, and every node whose children it changes is
	// on some new leaf's path there. Rehashing each path as it was placed
	// hashed a bulk add of 2,500 leaves twice over, 40 times in a
	// 100,000-member chain.
	return nil
}

// planPath applies the op to the leaf and returns the leaf's direct path
// and, per level, the nodes its path secret must be sealed to.
func planPath(t *Tree, committer uint32, op Op, leaf uint32, leafKey *keyed, kc KeyCheck) ([]uint32, [][]uint32, error) {
	if (op == OpUpdate || op == OpAdd) && leafKey == nil {
		return nil, nil, errorf(RulePublicKey, "the path's leaf key is missing")
	}
	switch op {
	case OpRemove:
		if leafKey != nil {
			return nil, nil, errorf(RuleShape, "a removal carries no leaf key")
		}
		if leaf >= t.n || !t.at(LeafNode(leaf)).present || leaf == committer {
			return nil, nil, errorf(RuleLeaf, "leaf %d cannot be removed by leaf %d", leaf, committer)
		}
		t.mut(LeafNode(leaf)).blank()
	case OpUpdate:
		if leaf != committer {
			return nil, nil, errorf(RuleLeaf, "leaf %d updates only its own path, not leaf %d's", committer, leaf)
		}
		if err := kc.checkLeafKey(leafKey.key); err != nil {
			return nil, nil, err
		}
		t.mut(LeafNode(leaf)).set(*leafKey)
	case OpAdd:
		if err := kc.checkLeafKey(leafKey.key); err != nil {
			return nil, nil, err
		}
		if err := placeLeaf(t, leaf, *leafKey); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, errorf(RuleShape, "unknown path op %d", op)
	}
	x := LeafNode(leaf)
	dp := DirectPath(x, t.n)
	if len(dp) == 0 {
		return nil, nil, errorf(RuleShape, "a one-leaf tree has no path to refresh")
	}
	cp := Copath(x, t.n)
	recips := make([][]uint32, len(dp))
	for i := range dp {
		if i == 0 && op == OpAdd {
			recips[i] = append(recips[i], x)
		}
		recips[i] = t.appendResolution(recips[i], cp[i])
	}
	return dp, recips, nil
}

// matchCiphertexts requires exactly one ciphertext per (node, recipient)
// pair, in the canonical order, and each of the right size: a withheld,
// extra, duplicated or misdirected ciphertext is a rule violation.
func matchCiphertexts(cts []Ciphertext, nodes []uint32, recips [][]uint32) error {
	i := 0
	for l, node := range nodes {
		for _, r := range recips[l] {
			if i >= len(cts) {
				return errorf(RuleCiphertexts, "no ciphertext of node %d for resolution node %d", node, r)
			}
			if cts[i].Node != node || cts[i].Recipient != r {
				return errorf(RuleCiphertexts, "ciphertext %d is for node %d at node %d, want node %d at node %d", i, cts[i].Node, cts[i].Recipient, node, r)
			}
			if len(cts[i].Sealed) != CiphertextSize {
				return errorf(RuleShape, "ciphertext %d is %d bytes, want %d", i, len(cts[i].Sealed), CiphertextSize)
			}
			i++
		}
	}
	if i != len(cts) {
		return errorf(RuleCiphertexts, "%d ciphertexts beyond one per resolution node", len(cts)-i)
	}
	return nil
}

// finishPath installs the path's public keys and its taint. The committer
// knows every path secret; an admin that knows a recipient node's secret
// learns the path secret sealed to it and every one above.
func finishPath(t *Tree, committer uint32, dp []uint32, pubs []keyed, recips [][]uint32) {
	knowers := []uint32{committer}
	for i, x := range dp {
		for _, r := range recips[i] {
			for _, a := range t.at(r).taint {
				knowers = addTaint(knowers, a)
			}
		}
		t.mut(x).set(pubs[i])
		t.mut(x).taint = outside(x, knowers)
	}
}

// outside keeps the admins that are not below x: those below x know its
// secret as members, which is no taint.
func outside(x uint32, admins []uint32) []uint32 {
	var out []uint32
	for _, a := range admins {
		if !IsAncestor(x, LeafNode(a)) {
			out = append(out, a)
		}
	}
	return out
}

// checkRekeyShape: parent nodes only, lowest level first then by index,
// no duplicates, closed under taking parents, and covering the direct
// path of every bulk-added leaf (or the new member could not decrypt).
func checkRekeyShape(t *Tree, nodes []RekeyNode, removes []uint32, adds []LeafKey) error {
	in := make(map[uint32]bool, len(nodes))
	for i, r := range nodes {
		if r.Node >= Width(t.n) || Level(r.Node) == 0 {
			return errorf(RuleShape, "rekeyed node %d is not a parent node of the tree", r.Node)
		}
		if i > 0 && !rekeyBefore(nodes[i-1].Node, r.Node) {
			return errorf(RuleShape, "rekeyed nodes out of order at %d", r.Node)
		}
		in[r.Node] = true
	}
	for _, r := range nodes {
		if r.Node != Root(t.n) && !in[Parent(r.Node, t.n)] {
			return errorf(RuleShape, "rekeyed node %d without its parent", r.Node)
		}
	}
	leaves := slices.Clone(removes)
	for _, a := range adds {
		leaves = append(leaves, a.Leaf)
	}
	for _, l := range leaves {
		for _, x := range DirectPath(LeafNode(l), t.n) {
			if !in[x] {
				return errorf(RuleShape, "changed leaf %d's ancestor %d is not rekeyed", l, x)
			}
		}
	}
	return nil
}

func rekeyBefore(a, b uint32) bool {
	if Level(a) != Level(b) {
		return Level(a) < Level(b)
	}
	return a < b
}

// rekeyRecipients installs the new public keys (so a rekeyed child
// resolves to itself) and returns each node's recipients.
func rekeyRecipients(t *Tree, nodes []RekeyNode, keys []keyed) [][]uint32 {
	for i, r := range nodes {
		t.mut(r.Node).set(keys[i])
	}
	recips := make([][]uint32, len(nodes))
	for i, r := range nodes {
		recips[i] = t.appendResolution(nil, Left(r.Node))
		recips[i] = t.appendResolution(recips[i], Right(r.Node, t.n))
	}
	return recips
}

// finishRekey sets each rekeyed node's taint, lowest first: the committer,
// and every admin that knows one of its recipients.
func finishRekey(t *Tree, committer uint32, nodes []RekeyNode, recips [][]uint32) {
	for i, r := range nodes {
		knowers := []uint32{committer}
		for _, x := range recips[i] {
			for _, a := range t.at(x).taint {
				knowers = addTaint(knowers, a)
			}
		}
		t.mut(r.Node).taint = outside(r.Node, knowers)
	}
}

func checkTaint(t *Tree, untrusted []uint32) error {
	for x := uint32(1); x < Width(t.n); x += 2 {
		for _, a := range t.at(x).taint {
			if slices.Contains(untrusted, a) {
				return errorf(RuleTaint, "node %d is still known to removed or demoted admin %d", x, a)
			}
		}
	}
	return nil
}
