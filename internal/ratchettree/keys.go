package ratchettree

import (
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"

	"github.com/cofferhq/coffer/internal/keymemo"
)

// The suite: X-Wing (MLKEM768-X25519, the same KEM as coffer.KEM(),
// named here because this package must not import coffer), HKDF-SHA256
// and AES-256-GCM, as every other Coffer HPKE use.
var (
	kem  = hpke.MLKEM768X25519()
	kdf  = hpke.HKDFSHA256()
	aead = hpke.AES256GCM()
)

// Labels. Path and rekey ciphertexts carry different kinds of secret (a
// path secret that derives its ancestors, an independent node secret), so
// their HPKE infos differ and one cannot stand in for the other.
const (
	LabelTreePath       = "coffer/v2/tree-path"        // HPKE info of a path-secret ciphertext
	LabelTreeRekey      = "coffer/v2/tree-rekey"       // HPKE info of a rekeyed node-secret ciphertext
	LabelTreePathNext   = "coffer/v2/tree-path-next"   // path secret of the parent node
	LabelTreeNodeSecret = "coffer/v2/tree-node-secret" // node secret from a path secret
	LabelTreeEpochKey   = "coffer/v2/tree-epoch-key"   // epoch key from the root's node secret
)

// Context binds ciphertexts to one group and one epoch (the epoch the
// commit creates).
type Context struct {
	Group [16]byte
	Epoch uint64
}

func expand(secret []byte, label string) []byte {
	out, err := hkdf.Expand(sha256.New, secret, label, SecretSize)
	if err != nil {
		panic("ratchettree: HKDF-Expand of 32 bytes failed: " + err.Error())
	}
	return out
}

// nextPathSecret is path_secret[i+1] = HKDF-Expand(path_secret[i]).
func nextPathSecret(ps []byte) []byte { return expand(ps, LabelTreePathNext) }

// pathNodeSecret is the node secret a path secret gives its node.
func pathNodeSecret(ps []byte) []byte { return expand(ps, LabelTreeNodeSecret) }

// nodeKey is RFC 9180 DeriveKeyPair(node secret), an X-Wing key pair.
func nodeKey(nodeSecret []byte) (hpke.PrivateKey, error) { return kem.DeriveKeyPair(nodeSecret) }

// EpochKey is HKDF(rootSecret, salt = commit hash): the new epoch key is
// bound to the chain's history as well as to the tree. clientlib passes
// not the root node secret itself but groupkey.TreeEpochSecret of it, a
// one-way step, because history links carry that secret: once the tree
// grows, an old root is an inner node, and a link holding its node secret
// would open paths sealed to it.
func EpochKey(rootSecret, commitHash []byte) []byte {
	k, err := hkdf.Key(sha256.New, rootSecret, commitHash, LabelTreeEpochKey, SecretSize)
	if err != nil {
		panic("ratchettree: HKDF of 32 bytes failed: " + err.Error())
	}
	return k
}

// info is label ‖ 0 ‖ group ‖ epoch ‖ node ‖ recipient (big-endian): the
// ciphertext opens only in this group and epoch, for this refreshed node
// and at this recipient node.
func info(label string, ctx Context, node, recipient uint32) []byte {
	b := make([]byte, 0, len(label)+1+16+8+4+4)
	b = append(b, label...)
	b = append(b, 0)
	b = append(b, ctx.Group[:]...)
	b = binary.BigEndian.AppendUint64(b, ctx.Epoch)
	b = binary.BigEndian.AppendUint32(b, node)
	return binary.BigEndian.AppendUint32(b, recipient)
}

func seal(label string, ctx Context, node, recipient uint32, recipientKey, secret []byte) ([]byte, error) {
	pk, err := kem.NewPublicKey(recipientKey)
	if err != nil {
		return nil, errorf(RulePublicKey, "node %d: not an X-Wing public key", recipient)
	}
	return hpke.Seal(pk, kdf, aead, info(label, ctx, node, recipient), secret)
}

func open(label string, ctx Context, node, recipient uint32, priv hpke.PrivateKey, ct []byte) ([]byte, error) {
	if len(ct) != CiphertextSize {
		return nil, errorf(RuleShape, "ciphertext for node %d is %d bytes, want %d", node, len(ct), CiphertextSize)
	}
	s, err := hpke.Open(priv, kdf, aead, info(label, ctx, node, recipient), ct)
	if err != nil || len(s) != SecretSize {
		return nil, errorf(RuleDecrypt, "the ciphertext for node %d at node %d does not open for this group, epoch and position", node, recipient)
	}
	return s, nil
}

// KeyCheck is how a verifier checks the public keys a commit brings.
type KeyCheck uint8

const (
	// ParseKeys checks each key's size and that it parses as an X-Wing
	// key: what the server does before it stores a commit, so that a
	// stored tree never holds a key nobody can seal to.
	ParseKeys KeyCheck = iota
	// KeySizes checks the size of each key the commit carries, and
	// accepts a key named by its digest alone (a signed part). Every party that seals to a
	// key parses it first (seal), and a key fails there with RulePublicKey
	// as it would here; what a client gives up is finding an unusable key
	// it never seals to. A tree's keys are signed by the admin that
	// committed them and bound by the tree hash, so a server cannot bring
	// one in; a new member of a 100,000-member group skips parsing about
	// 300,000 of them (a third of its sync's CPU).
	KeySizes
)

// checkPublicKeys runs the key check on n keys on every core and returns
// each key's error, so that a caller still reports the first failure in
// the order its rules check them. A bulk add of 2,500 members carries
// about 5,000 keys, and each parse expands an ML-KEM matrix: parsed one
// by one, they were most of verifying the commit. A slot the commit
// names by its digest alone (nil key) passes either check: a signed part
// carries no key to check, and the server, which parses them, has every
// key beside the commit (WithKeys fails on a missing one).
func (kc KeyCheck) checkPublicKeys(n int, key func(int) []byte, leaves bool) []error {
	errs := make([]error, n)
	if kc == KeySizes {
		for i := range n {
			if k := key(i); k != nil {
				errs[i] = checkKeySize(k)
			}
		}
		return errs
	}
	_ = parallel(n, func(i int) error {
		switch k := key(i); {
		case k == nil:
		case leaves:
			errs[i] = checkLeafKey(k)
		default:
			errs[i] = checkPublicKey(k)
		}
		return nil
	})
	return errs
}

// checkLeafKey runs the check on one leaf key.
func (kc KeyCheck) checkLeafKey(k []byte) error {
	switch {
	case k == nil:
		return nil // named by its digest
	case kc == KeySizes:
		return checkKeySize(k)
	}
	return checkLeafKey(k)
}

func checkKeySize(k []byte) error {
	if len(k) != PublicKeySize {
		return errorf(RulePublicKey, "public key is %d bytes, want %d", len(k), PublicKeySize)
	}
	return nil
}

func checkPublicKey(k []byte) error {
	if err := checkKeySize(k); err != nil {
		return err
	}
	if keymemo.Known(k) {
		return nil
	}
	if _, err := kem.NewPublicKey(k); err != nil {
		return errorf(RulePublicKey, "not an X-Wing public key")
	}
	return nil
}

// checkLeafKey is checkPublicKey for a leaf's key, a member's user key,
// which the member's keys present again: a success is remembered
// (internal/keymemo).
func checkLeafKey(k []byte) error {
	if err := checkPublicKey(k); err != nil {
		return err
	}
	keymemo.Remember(k)
	return nil
}
