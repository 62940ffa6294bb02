package coffer

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// A group's membership history is a hash chain of commits. Each commit is a
// canonical binary statement (the body) signed by its author with Ed25519
// under LabelCommit. The body names the group, its position (seq, and prev:
// the hash of the previous commit), the epoch and the operations. The exact
// body bytes are what is signed, stored, hashed and served: nothing is ever
// re-serialized, so every party verifies the same bytes.
//
// Encoding of suite v1 (all integers big-endian, built with cryptobyte):
//
//	version        uint8 = SuiteV1
//	group          [16]byte
//	seq            uint64
//	prev           [32]byte
//	epoch          uint64
//	author         [16]byte
//	time           uint64 (int64 unix milliseconds, two's complement)
//	share_history  uint8, 0 or 1
//	key_commitment [32]byte
//	op_count       uint16, at most MaxCommitOps
//	ops            op_count times:
//	  kind uint8, then by kind:
//	    add:      member [16]byte, handle <uint8 length>, signing_key [32]byte,
//	              encryption_key [1216]byte, role uint8
//	    remove:   member [16]byte
//	    set-role: member [16]byte, role uint8
//	    rotate:   (nothing)
//	    leave:    member [16]byte (the author)
//	    update-key: member [16]byte (the author), signing_key [32]byte,
//	              encryption_key [1216]byte
//
// Suite v2 (version byte SuiteV2) is the same but for the keys and the
// signature. Its ops name a member's keys by MemberKeysHash instead of
// carrying them (see memberkeys.go), and its signature is hybrid
// (Ed25519 and ML-DSA-65, HybridSignatureSize bytes, under LabelCommit):
//
//	    add:        member [16]byte, handle <uint8 length>, keys_hash [32]byte, role uint8
//	    update-key: member [16]byte (the author), keys_hash [32]byte
//
// A group's suite is fixed by its genesis: every later commit has the same
// version byte (RuleVersion).
//
// Commit version CommitVersionTree (3) is a suite v2 commit of a tree group
// (ratchettree.go): version 2's fields and ops, then its tree part:
//
//	tree_kind uint8: 0 none, 1 start (a genesis or an upgrade), 2 change
//	  start:  start_key [1216]byte, then the signed tree commit
//	  change: the signed tree commit
//
// where the signed tree commit is ratchettree's encoding without
// ciphertexts (Commit.MarshalSigned): the ciphertexts travel beside the
// commit. A version 3 commit has Suite SuiteV2 and a non-nil Tree.
//
// The encoding is canonical: ParseCommit accepts exactly the bytes Marshal
// produces, so a commit has one encoding and one hash.

// OpKind is the kind of a commit operation. Kinds are append-only and
// belong to the commit version: a new kind is a new suite.
type OpKind uint8

const (
	OpAdd     OpKind = 1 // add a member with its keys and role
	OpRemove  OpKind = 2 // remove a member; requires OpRotate in the same commit
	OpSetRole OpKind = 3 // change a member's role; a demotion requires OpRotate
	OpRotate  OpKind = 4 // start a new epoch with a fresh key
	// OpLeave removes the author from the group without a rotation: a
	// leaver must not choose the key of an epoch they will not be in. The
	// group then has a pending rotation, which the next commit by an admin
	// or owner must perform.
	OpLeave OpKind = 5
	// OpUpdateKey replaces the author's own signing and encryption keys,
	// keeping its id, handle and role: the self-update an account makes in
	// each of its groups after it rotates its key (a revoked device, a key
	// that leaked). It comes with an OpRotate and nothing else, and any
	// member may make it for itself.
	OpUpdateKey OpKind = 6
)

var opKindNames = [...]string{"op(0)", "add", "remove", "set-role", "rotate", "leave", "update-key"}

func (k OpKind) String() string {
	if int(k) < len(opKindNames) && k != 0 {
		return opKindNames[k]
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Limits that ParseCommit enforces before doing any other work.
const (
	// MaxCommitOps caps the operations of one commit. A genesis may add many
	// members at once; 10,000 matches the largest groups that pairwise
	// wrapping serves (see DESIGN.md), and creating a larger group takes
	// more than one commit.
	MaxCommitOps = 10000
	// MaxCommitSize caps a commit body. 10,000 add ops take at most about
	// 13 MB (1,299 bytes each), so the cap never binds a valid commit but
	// bounds what a verifier reads.
	MaxCommitSize = 16 << 20
)

// Op is one operation of a commit. Only the fields relevant to Kind are
// encoded: Marshal ignores the others and ParseCommit leaves them zero.
type Op struct {
	Kind          OpKind
	Member        AccountID         // add, remove, set-role, leave, update-key
	Handle        Handle            // add
	SigningKey    ed25519.PublicKey // add, update-key: Ed25519, 32 bytes
	EncryptionKey []byte            // add, update-key: X-Wing encapsulation key, 1216 bytes
	Role          Role              // add, set-role
	// KeysHash names the member's keys in suite v2 (add, update-key), where
	// SigningKey and EncryptionKey stay empty.
	KeysHash [32]byte
}

// Commit is one change to a group's membership, epoch and key.
type Commit struct {
	// Suite is SuiteV2 for a suite v2 commit, and zero for suite v1 (which
	// Marshal encodes as version SuiteV1).
	Suite  uint8
	Group  GroupID
	Seq    uint64   // position in the chain; the genesis is 1
	Prev   [32]byte // SignedCommit.Hash of the previous commit; zero for the genesis
	Epoch  uint64   // the epoch after this commit; the genesis starts epoch 1
	Author AccountID
	// Time is the author's clock in unix milliseconds. It is informational
	// only (shown by `coffer group log`): no rule depends on it, because the
	// author's clock is not trusted.
	Time int64
	// ShareHistory says whether new members receive older epoch keys. It is
	// fixed by the genesis and every later commit repeats it unchanged.
	ShareHistory bool
	// KeyCommitment commits to the epoch key of Epoch. Clients compute and
	// check it; to the verifier it is opaque, but it must change exactly
	// when the epoch does.
	KeyCommitment [32]byte
	Ops           []Op
	// Tree is the tree part of a tree group's commit (version
	// CommitVersionTree); nil in every other commit.
	Tree *TreePart
}

// Rotates reports whether c contains an OpRotate, i.e. starts a new epoch.
func (c *Commit) Rotates() bool {
	for _, op := range c.Ops {
		if op.Kind == OpRotate {
			return true
		}
	}
	return false
}

// Marshal returns the canonical encoding of c, starting with the version
// byte: SuiteV2 when c.Suite says so, else SuiteV1. It does not validate c: ParseCommit and the chain verifier
// do. Ops of an unknown kind are encoded as their kind byte alone (they fail
// to parse). Marshal panics if a handle is longer than 255 bytes, which no
// valid Handle is.
func (c *Commit) Marshal() []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, c.marshalSize()))
	v2 := c.Suite == SuiteV2 || c.Tree != nil
	if c.Tree != nil {
		b.AddUint8(CommitVersionTree)
	} else if v2 {
		b.AddUint8(SuiteV2)
	} else {
		b.AddUint8(SuiteV1)
	}
	b.AddBytes(c.Group[:])
	b.AddUint64(c.Seq)
	b.AddBytes(c.Prev[:])
	b.AddUint64(c.Epoch)
	b.AddBytes(c.Author[:])
	b.AddUint64(uint64(c.Time))
	b.AddUint8(boolByte(c.ShareHistory))
	b.AddBytes(c.KeyCommitment[:])
	b.AddUint16(uint16(len(c.Ops)))
	for _, op := range c.Ops {
		b.AddUint8(uint8(op.Kind))
		switch op.Kind {
		case OpAdd:
			b.AddBytes(op.Member[:])
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(op.Handle)) })
			if v2 {
				b.AddBytes(op.KeysHash[:])
			} else {
				b.AddBytes(op.SigningKey)
				b.AddBytes(op.EncryptionKey)
			}
			b.AddUint8(uint8(op.Role))
		case OpRemove, OpLeave:
			b.AddBytes(op.Member[:])
		case OpSetRole:
			b.AddBytes(op.Member[:])
			b.AddUint8(uint8(op.Role))
		case OpUpdateKey:
			b.AddBytes(op.Member[:])
			if v2 {
				b.AddBytes(op.KeysHash[:])
			} else {
				b.AddBytes(op.SigningKey)
				b.AddBytes(op.EncryptionKey)
			}
		}
	}
	if c.Tree != nil {
		c.Tree.marshal(b)
	}
	return b.BytesOrPanic()
}

const commitHeaderSize = 1 + 16 + 8 + 32 + 8 + 16 + 8 + 1 + 32 + 2

func (c *Commit) marshalSize() int {
	n := commitHeaderSize + 1
	if c.Tree != nil {
		n += len(c.Tree.StartKey) + treeSignedSize(c.Tree.Commit)
	}
	for _, op := range c.Ops {
		n += 1 + 16 + 1 + len(op.Handle) + len(op.SigningKey) + len(op.EncryptionKey) + 1 + len(op.KeysHash)
	}
	return n
}

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// ParseCommit parses and validates a commit body: the version, the sizes,
// the op kinds, and every field on its own (handles, keys, roles, non-zero
// ids). It does not check the commit against a group: that is the chain
// verifier's job. It accepts only the canonical encoding, with no trailing
// bytes. Errors are *Error with code EINVALID and Rule RuleVersion,
// RuleUnknownOp, RuleTooLarge, RuleMalformed or RuleWeakKey (an add op whose
// signing key CheckSigningKey refuses).
//
// The returned commit does not alias body.
func ParseCommit(body []byte) (*Commit, error) {
	if len(body) > MaxCommitSize {
		return nil, ruleErr(RuleTooLarge, "commit is %d bytes, over the limit of %d", len(body), MaxCommitSize)
	}
	s := cryptobyte.String(body)
	var version uint8
	if !s.ReadUint8(&version) {
		return nil, ruleErr(RuleMalformed, "empty commit")
	}
	if version != SuiteV1 && version != SuiteV2 && version != CommitVersionTree {
		return nil, ruleErr(RuleVersion, "unsupported commit version %d", version)
	}
	v2 := version != SuiteV1
	var (
		c      Commit
		tm     uint64
		share  uint8
		nops   uint16
		author []byte
	)
	if !s.CopyBytes(c.Group[:]) || !s.ReadUint64(&c.Seq) || !s.CopyBytes(c.Prev[:]) ||
		!s.ReadUint64(&c.Epoch) || !s.ReadBytes(&author, 16) || !s.ReadUint64(&tm) ||
		!s.ReadUint8(&share) || !s.CopyBytes(c.KeyCommitment[:]) || !s.ReadUint16(&nops) {
		return nil, ruleErr(RuleMalformed, "truncated commit header")
	}
	copy(c.Author[:], author)
	c.Time = int64(tm)
	if v2 {
		c.Suite = SuiteV2
	}
	switch share {
	case 0:
	case 1:
		c.ShareHistory = true
	default:
		return nil, ruleErr(RuleMalformed, "history flag must be 0 or 1, got %d", share)
	}
	if c.Group.IsZero() {
		return nil, ruleErr(RuleMalformed, "commit has a zero group id")
	}
	if c.Author.IsZero() {
		return nil, ruleErr(RuleMalformed, "commit has a zero author id")
	}
	if nops > MaxCommitOps {
		return nil, ruleErr(RuleTooLarge, "commit has %d ops, over the limit of %d", nops, MaxCommitOps)
	}
	if nops > 0 {
		c.Ops = make([]Op, 0, min(int(nops), len(s)))
	}
	for i := range int(nops) {
		op, err := parseOp(&s, v2)
		if err != nil {
			err.Message = fmt.Sprintf("op %d: %s", i, err.Message)
			return nil, err
		}
		c.Ops = append(c.Ops, op)
	}
	if version == CommitVersionTree {
		tp, rest, err := parseTreePart(s)
		if err != nil {
			return nil, err
		}
		c.Tree, s = tp, rest
	}
	if !s.Empty() {
		return nil, ruleErr(RuleMalformed, "%d trailing bytes after the commit", len(s))
	}
	return &c, nil
}

func parseOp(s *cryptobyte.String, v2 bool) (Op, *Error) {
	var (
		op             Op
		kind, role     uint8
		member, handle []byte
		sk, ek         []byte
	)
	if !s.ReadUint8(&kind) {
		return op, ruleErr(RuleMalformed, "truncated op")
	}
	op.Kind = OpKind(kind)
	switch op.Kind {
	case OpAdd:
		var h cryptobyte.String
		ok := s.ReadBytes(&member, 16) && s.ReadUint8LengthPrefixed(&h)
		if v2 {
			ok = ok && s.CopyBytes(op.KeysHash[:])
		} else {
			ok = ok && s.ReadBytes(&sk, SigningKeySize) && s.ReadBytes(&ek, EncryptionKeySize)
		}
		if !ok || !s.ReadUint8(&role) {
			return op, ruleErr(RuleMalformed, "truncated add op")
		}
		handle = h
	case OpRemove, OpLeave:
		if !s.ReadBytes(&member, 16) {
			return op, ruleErr(RuleMalformed, "truncated %s op", op.Kind)
		}
	case OpSetRole:
		if !s.ReadBytes(&member, 16) || !s.ReadUint8(&role) {
			return op, ruleErr(RuleMalformed, "truncated set-role op")
		}
	case OpUpdateKey:
		ok := s.ReadBytes(&member, 16)
		if v2 {
			ok = ok && s.CopyBytes(op.KeysHash[:])
		} else {
			ok = ok && s.ReadBytes(&sk, SigningKeySize) && s.ReadBytes(&ek, EncryptionKeySize)
		}
		if !ok {
			return op, ruleErr(RuleMalformed, "truncated update-key op")
		}
		copy(op.Member[:], member)
		if op.Member.IsZero() {
			return op, ruleErr(RuleMalformed, "update-key op has a zero member id")
		}
		if v2 {
			return op, checkKeysHash(&op)
		}
		kerr := parseOpKeys(&op, sk, ek)
		return op, kerr
	case OpRotate:
		return op, nil
	default:
		return op, ruleErr(RuleUnknownOp, "unknown op kind %d", kind)
	}
	copy(op.Member[:], member)
	if op.Member.IsZero() {
		return op, ruleErr(RuleMalformed, "%s op has a zero member id", op.Kind)
	}
	if op.Kind == OpRemove || op.Kind == OpLeave {
		return op, nil
	}
	op.Role = Role(role)
	if !op.Role.Valid() {
		return op, ruleErr(RuleMalformed, "%s op has invalid role %d", op.Kind, role)
	}
	if op.Kind == OpSetRole {
		return op, nil
	}
	h, err := ParseHandle(string(handle))
	if err != nil {
		return op, ruleErr(RuleMalformed, "add op: %s", ErrorMessage(err))
	}
	op.Handle = h
	if v2 {
		return op, checkKeysHash(&op)
	}
	kerr := parseOpKeys(&op, sk, ek)
	return op, kerr
}

// checkKeysHash refuses a zero keys hash, which names no keys: a suite v2
// op that has no keys is malformed, not merely unresolvable.
func checkKeysHash(op *Op) *Error {
	if op.KeysHash == ([32]byte{}) {
		return ruleErr(RuleMalformed, "%s op for %s has a zero keys hash", op.Kind, op.Member)
	}
	return nil
}

// parseOpKeys checks the keys an add or update-key op brings in and sets
// them on op, copied out so the commit does not alias (or pin) the body.
func parseOpKeys(op *Op, sk, ek []byte) *Error {
	who := op.Member.String()
	if op.Handle != "" {
		who = string(op.Handle)
	}
	if err := CheckSigningKey(sk); err != nil {
		return ruleErr(RuleWeakKey, "%s op for %s: %s", op.Kind, who, ErrorMessage(err))
	}
	if err := CheckEncryptionKey(ek); err != nil {
		return ruleErr(RuleMalformed, "%s op for %s: %s", op.Kind, who, ErrorMessage(err))
	}
	keys := make([]byte, SigningKeySize+EncryptionKeySize)
	copy(keys, sk)
	copy(keys[SigningKeySize:], ek)
	op.SigningKey = ed25519.PublicKey(keys[:SigningKeySize:SigningKeySize])
	op.EncryptionKey = keys[SigningKeySize:]
	return nil
}

// SignedCommit is a commit body with its author's signature, exactly as it
// is stored and served.
type SignedCommit struct {
	Body []byte // the canonical Commit encoding
	// Signature is over SignedMessage(LabelCommit, Body): Ed25519 in suite
	// v1, hybrid (HybridSignatureSize bytes) in suite v2.
	Signature []byte
}

// SignCommitHybrid encodes c as a suite v2 commit and signs it with the
// author's hybrid user signing key.
func SignCommitHybrid(c *Commit, key *HybridPrivateKey) SignedCommit {
	c.Suite = SuiteV2
	body := c.Marshal()
	return SignedCommit{Body: body, Signature: key.Sign(LabelCommit, body)}
}

// SignCommit encodes c and signs it with the author's signing key.
func SignCommit(c *Commit, key ed25519.PrivateKey) SignedCommit {
	body := c.Marshal()
	return SignedCommit{Body: body, Signature: Sign(key, LabelCommit, body)}
}

// Hash returns the commit hash that the next commit's Prev must carry:
// SHA-256 of SignedMessage(LabelCommitHash, Body).
//
// The signature is deliberately not hashed. The body alone determines what
// the commit means, and the chain verifier accepts a commit only with a valid
// signature by its author over exactly that body; crypto/ed25519 rejects
// non-canonical (malleable) signatures, and a second valid signature could
// only come from the author, who could as well sign a different body. Hashing
// the body alone keeps the chain independent of signature encoding.
func (sc SignedCommit) Hash() [32]byte {
	h := sha256.New()
	h.Write([]byte(LabelCommitHash))
	h.Write([]byte{0})
	h.Write(sc.Body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
