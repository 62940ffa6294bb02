package ratchettree

import (
	"crypto/hpke"
	"crypto/subtle"
)

// Member is one member's private view: its leaf, its leaf's private key
// (the account's user key) and the node secrets of its ancestors. It
// needs no public tree: a commit's path and rekey carry the digest of
// every public key it checks, and the signed commit binds them.
type Member struct {
	Leaf    uint32
	leafKey hpke.PrivateKey
	secrets map[uint32][]byte
}

// NewMember returns the view of the member at leaf with private key
// leafKey, knowing no parent node yet.
func NewMember(leaf uint32, leafKey hpke.PrivateKey) *Member {
	return &Member{Leaf: leaf, leafKey: leafKey, secrets: map[uint32][]byte{}}
}

// Adopt keeps, from a committer's own Secrets, those of its ancestors in
// a tree of n leaves, once the commit is accepted.
func (m *Member) Adopt(s Secrets, n uint32) {
	for x, ns := range s {
		if IsAncestor(x, LeafNode(m.Leaf)) && x < Width(n) {
			m.secrets[x] = ns
		}
	}
}

// Secrets returns a copy of the node secrets the member holds, for a
// device to keep them (restore with NewMember and Adopt).
func (m *Member) Secrets() Secrets {
	out := make(Secrets, len(m.secrets))
	for x, ns := range m.secrets {
		out[x] = append([]byte(nil), ns...)
	}
	return out
}

// SetLeafKey replaces the member's leaf private key (after its own
// OpUpdate, or a new user key).
func (m *Member) SetLeafKey(k hpke.PrivateKey) { m.leafKey = k }

// RootSecret is the member's secret of the root of a tree of n leaves.
func (m *Member) RootSecret(n uint32) ([]byte, bool) {
	s, ok := m.secrets[Root(n)]
	return s, ok
}

// key returns the private key of node x if the member may use it: its own
// leaf, or an ancestor whose secret it holds.
func (m *Member) key(x uint32) (hpke.PrivateKey, bool, error) {
	if x == LeafNode(m.Leaf) {
		return m.leafKey, true, nil
	}
	ns, ok := m.secrets[x]
	if !ok || !IsAncestor(x, LeafNode(m.Leaf)) {
		return nil, false, nil
	}
	k, err := nodeKey(ns)
	return k, true, err
}

// Receive processes a verified commit for this member: it opens the one
// ciphertext for its position in the path update and in each rekeyed
// ancestor, derives the rest, checks every derived public key against the
// committed one, and returns the new epoch key HKDF(root secret, salt =
// commitHash). The member's secrets change only when all of it passed.
func (m *Member) Receive(ctx Context, c *Commit, commitHash []byte) ([]byte, error) {
	learned := map[uint32][]byte{}
	know := func(x uint32) (hpke.PrivateKey, bool, error) {
		if ns, ok := learned[x]; ok {
			k, err := nodeKey(ns)
			return k, true, err
		}
		return m.key(x)
	}
	me := LeafNode(m.Leaf)
	if c.Leaves == 0 || c.Leaves > MaxLeaves || m.Leaf >= c.Leaves {
		return nil, errorf(RuleShape, "leaf count %d does not hold leaf %d", c.Leaves, m.Leaf)
	}
	if p := c.Path; p != nil {
		// The receiver may not have run Verify (it holds no full tree), so
		// indices from the network are bounded here before any tree math.
		if p.Leaf >= c.Leaves {
			return nil, errorf(RuleShape, "path leaf %d beyond the tree's %d leaves", p.Leaf, c.Leaves)
		}
		if p.Leaf == m.Leaf && p.Op != OpAdd {
			return nil, errorf(RuleLeaf, "the path update acts on this member's own leaf")
		}
		dp := DirectPath(LeafNode(p.Leaf), c.Leaves)
		if len(dp) == 0 || p.numKeys() != len(dp) {
			return nil, errorf(RuleShape, "path has %d public keys for %d nodes", p.numKeys(), len(dp))
		}
		level := 0
		for !IsAncestor(dp[level], me) {
			level++
		}
		ps, err := openOne(LabelTreePath, ctx, p.Ciphertexts, dp[level], me, know)
		if err != nil {
			return nil, err
		}
		for i := level; i < len(dp); i++ {
			ns := pathNodeSecret(ps)
			committed, err := resolve(p.key(i))
			if err != nil {
				return nil, err
			}
			if err := checkDerived(ns, committed.digest, dp[i]); err != nil {
				return nil, err
			}
			learned[dp[i]] = ns
			ps = nextPathSecret(ps)
		}
	}
	for _, r := range c.Rekey {
		if r.Node >= Width(c.Leaves) || Level(r.Node) == 0 {
			return nil, errorf(RuleShape, "rekeyed node %d is not a parent node of the tree", r.Node)
		}
		if !IsAncestor(r.Node, me) {
			continue
		}
		ns, err := openOne(LabelTreeRekey, ctx, r.Ciphertexts, r.Node, me, know)
		if err != nil {
			return nil, err
		}
		committed, err := resolve(r.PublicKey, r.Digest)
		if err != nil {
			return nil, err
		}
		if err := checkDerived(ns, committed.digest, r.Node); err != nil {
			return nil, err
		}
		learned[r.Node] = ns
	}
	root, ok := learned[Root(c.Leaves)]
	if !ok {
		return nil, errorf(RuleShape, "the commit does not refresh the root")
	}
	for x, ns := range learned {
		m.secrets[x] = ns
	}
	return EpochKey(root, commitHash), nil
}

// openOne finds the ciphertext of node for a recipient on the member's
// own path that it holds the key of, and opens it.
func openOne(label string, ctx Context, cts []Ciphertext, node, me uint32, know func(uint32) (hpke.PrivateKey, bool, error)) ([]byte, error) {
	sawMine := false
	for _, ct := range cts {
		if ct.Node != node || !IsAncestor(ct.Recipient, me) {
			continue
		}
		sawMine = true
		k, ok, err := know(ct.Recipient)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		return open(label, ctx, ct.Node, ct.Recipient, k, ct.Sealed)
	}
	if sawMine {
		return nil, errorf(RuleUnknownNode, "the ciphertext of node %d is sealed to a node this member holds no secret for", node)
	}
	return nil, errorf(RuleWithheld, "no ciphertext of node %d for this member's position", node)
}

func checkDerived(ns []byte, committed [32]byte, x uint32) error {
	k, err := nodeKey(ns)
	if err != nil {
		return err
	}
	d := KeyDigest(k.PublicKey().Bytes())
	if subtle.ConstantTimeCompare(d[:], committed[:]) != 1 {
		return errorf(RuleKeyMismatch, "node %d's committed public key is not the one its secret derives", x)
	}
	return nil
}
