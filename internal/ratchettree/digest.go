package ratchettree

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
)

// Key digests. A signed commit names every public key it brings by its
// SHA-256 (KeyDigest), and the tree hash covers the digests, not the
// keys: a 1216-byte X-Wing key becomes 32 bytes wherever only its
// identity matters. The keys themselves travel beside the signed commit,
// as its ciphertexts do (Keys, WithKeys): the server checks each against
// its digest and parses it before it stores the commit, and keeps the
// current tree's keys. A client that verifies the chain holds digests;
// it fetches a key only to seal to it, and checks it against the digest
// its verified tree holds (FetchKeys, RuleNodeProof). A receiver checks
// the keys its secrets derive against the digests.
//
// Why: a 100,000-member group's chain carries about 200,000 keys (its
// leaves and every parent node a bulk add rekeyed), 243 MB as keys and
// 6.4 MB as digests, and a new member downloaded, hashed and kept them
// all at its first sync to seal to none of them.

// KeyDigest is SHA-256 of a public key: what a signed commit and the tree
// hash carry in its place.
func KeyDigest(key []byte) [32]byte { return sha256.Sum256(key) }

// keyed is one public key of a commit or tree: its digest, and the key
// when it is known.
type keyed struct {
	key    []byte
	digest [32]byte
}

// known is a key and its digest.
func known(key []byte) keyed { return keyed{key: key, digest: KeyDigest(key)} }

// resolve is the key of one slot of a commit: key when the commit carries
// it, checked against the digest when both are set, or the digest alone.
func resolve(key []byte, digest [32]byte) (keyed, error) {
	if key == nil {
		if digest == ([32]byte{}) {
			return keyed{}, errorf(RulePublicKey, "a public key of the commit is missing")
		}
		return keyed{digest: digest}, nil
	}
	k := known(key)
	if digest != ([32]byte{}) && subtle.ConstantTimeCompare(k.digest[:], digest[:]) != 1 {
		return keyed{}, errorf(RulePublicKey, "a public key does not match its digest in the signed commit")
	}
	return k, nil
}

// resolveOptional is resolve for an optional slot (a self-update key, a
// path's leaf key): absent when neither the key nor a digest is set.
func resolveOptional(key []byte, digest *[32]byte) (keyed, bool, error) {
	if key == nil && digest == nil {
		return keyed{}, false, nil
	}
	var d [32]byte
	if digest != nil {
		d = *digest
	}
	k, err := resolve(key, d)
	return k, err == nil, err
}

// commitKeys is every public key slot of a commit, resolved: the self-
// update key, the added leaves' keys, the path's leaf key and node keys,
// and the rekeyed nodes' keys, in that (signed) order.
type commitKeys struct {
	self, pathLeaf       keyed
	hasSelf, hasPathLeaf bool
	adds, path, rekey    []keyed
}

func (c *Commit) resolveKeys() (*commitKeys, error) {
	ck := &commitKeys{}
	var err error
	if ck.self, ck.hasSelf, err = resolveOptional(c.SelfUpdate, c.SelfUpdateDigest); err != nil {
		return nil, err
	}
	ck.adds = make([]keyed, len(c.Adds))
	for i, a := range c.Adds {
		if ck.adds[i], err = resolve(a.Key, a.Digest); err != nil {
			return nil, err
		}
	}
	if p := c.Path; p != nil {
		if ck.pathLeaf, ck.hasPathLeaf, err = resolveOptional(p.LeafKey, p.LeafKeyDigest); err != nil {
			return nil, err
		}
		ck.path = make([]keyed, p.numKeys())
		for i := range ck.path {
			if ck.path[i], err = resolve(p.key(i)); err != nil {
				return nil, err
			}
		}
	}
	ck.rekey = make([]keyed, len(c.Rekey))
	for i, r := range c.Rekey {
		if ck.rekey[i], err = resolve(r.PublicKey, r.Digest); err != nil {
			return nil, err
		}
	}
	return ck, nil
}

// Keys lists the public keys c carries, in signed order (self-update,
// added leaves, the path's leaf key and node keys, rekeyed nodes): what
// travels beside the signed part, for WithKeys. A slot named by its
// digest alone lists nil.
func (c *Commit) Keys() [][]byte {
	var out [][]byte
	if c.SelfUpdate != nil || c.SelfUpdateDigest != nil {
		out = append(out, c.SelfUpdate)
	}
	for _, a := range c.Adds {
		out = append(out, a.Key)
	}
	if p := c.Path; p != nil {
		if p.LeafKey != nil || p.LeafKeyDigest != nil {
			out = append(out, p.LeafKey)
		}
		out = append(out, p.PublicKeys...)
	}
	for _, r := range c.Rekey {
		out = append(out, r.PublicKey)
	}
	return out
}

// WithKeys returns a copy of the signed part c holding keys, the list
// Keys gave, each checked against the digest c names it by: how the keys
// that travel beside a signed commit come back into it. A wrong count or
// a key that is not its digest's is RulePublicKey.
func (c *Commit) WithKeys(keys [][]byte) (*Commit, error) {
	d := c.Detached()
	slots := 0
	i := 0
	take := func(digest [32]byte) ([]byte, error) {
		slots++
		if i >= len(keys) {
			return nil, errorf(RulePublicKey, "%d public keys beside the commit, it names more", len(keys))
		}
		k := keys[i]
		i++
		if len(k) != PublicKeySize {
			return nil, errorf(RulePublicKey, "public key %d beside the commit is %d bytes, want %d", i-1, len(k), PublicKeySize)
		}
		kd := KeyDigest(k)
		if subtle.ConstantTimeCompare(kd[:], digest[:]) != 1 {
			return nil, errorf(RulePublicKey, "public key %d beside the commit is not the one the commit names", i-1)
		}
		return slices.Clone(k), nil
	}
	ck, err := c.resolveKeys()
	if err != nil {
		return nil, err
	}
	if ck.hasSelf {
		if d.SelfUpdate, err = take(ck.self.digest); err != nil {
			return nil, err
		}
	}
	d.Adds = slices.Clone(c.Adds)
	for j := range d.Adds {
		if d.Adds[j].Key, err = take(ck.adds[j].digest); err != nil {
			return nil, err
		}
	}
	if d.Path != nil {
		if ck.hasPathLeaf {
			if d.Path.LeafKey, err = take(ck.pathLeaf.digest); err != nil {
				return nil, err
			}
		}
		d.Path.PublicKeys = make([][]byte, len(ck.path))
		for j := range ck.path {
			if d.Path.PublicKeys[j], err = take(ck.path[j].digest); err != nil {
				return nil, err
			}
		}
	}
	for j := range d.Rekey {
		if d.Rekey[j].PublicKey, err = take(ck.rekey[j].digest); err != nil {
			return nil, err
		}
	}
	if i != len(keys) {
		return nil, errorf(RulePublicKey, "%d public keys beside the commit, it names %d", len(keys), slots)
	}
	return d, nil
}

// FetchKeys gets the public keys of nodes of the current tree that a
// committer must seal to and whose keys its tree does not hold (it holds
// their digests): from the server, in the order asked. Create checks each
// against the digest (RuleNodeProof), so a server cannot substitute one.
type FetchKeys func(nodes []uint32) ([][]byte, error)

// fillKeys makes sure t holds the key of every node in nodes, fetching
// the missing ones once.
func fillKeys(t *Tree, nodes []uint32, fetch FetchKeys) error {
	var missing []uint32
	seen := map[uint32]bool{}
	for _, x := range nodes {
		if nd := t.at(x); nd.present && nd.pub == nil && !seen[x] {
			seen[x] = true
			missing = append(missing, x)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if fetch == nil {
		return errorf(RuleNodeProof, "the tree holds only the digests of %d nodes to seal to, and there is no way to fetch their keys", len(missing))
	}
	keys, err := fetch(missing)
	if err != nil {
		return err
	}
	if len(keys) != len(missing) {
		return errorf(RuleNodeProof, "asked for %d node keys, got %d", len(missing), len(keys))
	}
	for i, x := range missing {
		kd := KeyDigest(keys[i])
		want := t.at(x).digest
		if len(keys[i]) != PublicKeySize || subtle.ConstantTimeCompare(kd[:], want[:]) != 1 {
			return errorf(RuleNodeProof, "the fetched key of node %d is not the one the verified tree holds", x)
		}
		// The key changes no hash: the tree already commits to its digest.
		t.mut(x).pub = slices.Clone(keys[i])
	}
	return nil
}

// SlotDigest is the digest of one key slot of a commit (LeafKey,
// RekeyNode): the key's when the commit carries it, else the digest it
// names.
func SlotDigest(key []byte, digest [32]byte) [32]byte {
	if key != nil {
		return KeyDigest(key)
	}
	return digest
}

// OptionalDigest is SlotDigest for an optional slot (a self-update key, a
// path's leaf key), and whether the commit fills it.
func OptionalDigest(key []byte, digest *[32]byte) ([32]byte, bool) {
	switch {
	case key != nil:
		return KeyDigest(key), true
	case digest != nil:
		return *digest, true
	}
	return [32]byte{}, false
}

// numKeys is the count of the path's node keys, carried or named.
func (p *PathUpdate) numKeys() int { return max(len(p.PublicKeys), len(p.KeyDigests)) }

// key is the path's i-th node key slot: the key if carried, the digest if
// named.
func (p *PathUpdate) key(i int) ([]byte, [32]byte) {
	var k []byte
	var d [32]byte
	if i < len(p.PublicKeys) {
		k = p.PublicKeys[i]
	}
	if i < len(p.KeyDigests) {
		d = p.KeyDigests[i]
	}
	return k, d
}
