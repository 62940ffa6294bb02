package clientlib

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// A tree group member's private view kept in the key store: the node
// secrets of its ancestors cannot be fetched again (nobody seals a
// committer's own path to it), so the device that committed keeps them.

func treeKey(g coffer.GroupID) string { return "group/" + g.String() + "/tree" }

const treeStoreVersion = 1

// treeLoad returns g's view from memory or the key store (nil if there is
// none, or it does not decode: the device then replays). c.tree.mu held.
func (c *Client) treeLoad(g coffer.GroupID) *treeKeys {
	if c.tree.groups == nil {
		c.tree.groups = map[coffer.GroupID]*treeKeys{}
	}
	if tk := c.tree.groups[g]; tk != nil {
		return tk
	}
	b, err := c.ks.Get(treeKey(g))
	if err != nil {
		return nil
	}
	tk, err := decodeTreeKeys(b)
	if err != nil {
		return nil
	}
	c.tree.groups[g] = tk
	return tk
}

// treeStore keeps tk for g in memory and in the key store. Failing to
// store only costs a replay later. c.tree.mu held.
func (c *Client) treeStore(g coffer.GroupID, tk *treeKeys) {
	c.tree.groups[g] = tk
	if b, err := encodeTreeKeys(tk); err == nil {
		_ = c.ks.Put(treeKey(g), b)
	}
}

// treeForget drops g's view. c.tree.mu held.
func (c *Client) treeForget(g coffer.GroupID) {
	delete(c.tree.groups, g)
	_ = c.ks.Delete(treeKey(g))
}

// The encoding: version u8, seq u64, head [32], leaf u32, view u8 (0|1),
// leaf key (u32 length ‖ bytes), secrets (count u32, (node u32, secret
// [32])...), epochs (count u32, (epoch u64, key [32], committed [32])...).
// The leaf's private key is the account's and is not repeated here.
func encodeTreeKeys(tk *treeKeys) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(treeStoreVersion)
	b.AddUint64(tk.seq)
	b.AddBytes(tk.head[:])
	b.AddUint32(tk.leaf)
	var secrets ratchettree.Secrets
	if tk.view != nil {
		b.AddUint8(1)
		secrets = tk.view.Secrets()
	} else {
		b.AddUint8(0)
	}
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(tk.pub) })
	b.AddUint32(uint32(len(secrets)))
	for x, ns := range secrets {
		if len(ns) != ratchettree.SecretSize {
			return nil, errors.New("node secret size")
		}
		b.AddUint32(x)
		b.AddBytes(ns)
	}
	b.AddUint32(uint32(len(tk.keys)))
	for e, k := range tk.keys {
		b.AddUint64(e)
		b.AddBytes(k[:])
		sec := tk.committed[e]
		b.AddBytes(sec[:])
	}
	return b.Bytes()
}

func decodeTreeKeys(data []byte) (*treeKeys, error) {
	in := cryptobyte.String(data)
	var (
		version uint8
		view    uint8
		head    []byte
		pub     []byte
		n, np   uint32
	)
	tk := &treeKeys{keys: map[uint64]groupkey.EpochKey{}, committed: map[uint64][32]byte{}}
	if !in.ReadUint8(&version) || version != treeStoreVersion || !in.ReadUint64(&tk.seq) || !in.ReadBytes(&head, 32) ||
		!in.ReadUint32(&tk.leaf) || !in.ReadUint8(&view) || !in.ReadUint32(&np) || np > ratchettree.PublicKeySize || !in.ReadBytes(&pub, int(np)) || !in.ReadUint32(&n) ||
		uint64(n) > uint64(len(in))/(4+ratchettree.SecretSize) {
		return nil, errors.New("corrupt tree view")
	}
	tk.head = [32]byte(head)
	switch len(pub) {
	case 0:
	case ratchettree.PublicKeySize:
		// A view kept before leaves were named by digest holds the key.
		d := ratchettree.KeyDigest(pub)
		tk.pub = d[:]
	case 32:
		tk.pub = append([]byte(nil), pub...)
	default:
		return nil, errors.New("corrupt tree view")
	}
	secrets := make(ratchettree.Secrets, n)
	for range n {
		var x uint32
		var ns []byte
		if !in.ReadUint32(&x) || !in.ReadBytes(&ns, ratchettree.SecretSize) {
			return nil, errors.New("corrupt tree view")
		}
		secrets[x] = append([]byte(nil), ns...)
	}
	if !in.ReadUint32(&n) || uint64(n) > uint64(len(in))/(8+64) {
		return nil, errors.New("corrupt tree view")
	}
	for range n {
		var e uint64
		var k, sec []byte
		if !in.ReadUint64(&e) || !in.ReadBytes(&k, 32) || !in.ReadBytes(&sec, 32) {
			return nil, errors.New("corrupt tree view")
		}
		tk.keys[e], tk.committed[e] = groupkey.EpochKey(k), [32]byte(sec)
	}
	if !in.Empty() || view > 1 || (view == 1) != (tk.pub != nil) {
		return nil, errors.New("corrupt tree view")
	}
	if view == 1 {
		// The leaf's private key is filled in on use (treeReceive, which
		// runs for every commit replayed, and treeAdvance).
		tk.view = ratchettree.NewMember(tk.leaf, nil)
		tk.view.Adopt(secrets, ratchettree.MaxLeaves)
	}
	return tk, nil
}
