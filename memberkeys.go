package coffer

import (
	"bytes"
	"crypto/sha256"

	"golang.org/x/crypto/cryptobyte"
)

// A suite v2 group does not carry its members' keys. An add or update-key
// op names a member's keys by MemberKeysHash, a SHA-256 over the canonical
// MemberKeys encoding, and whoever needs the keys themselves (to check a
// signature, to wrap an epoch key) asks a MemberKeySource for the encoding
// and checks it against the hash. The hash is what the author signed, so a
// source (the server, in a client) can withhold keys but never substitute
// them. Hybrid keys are 3,200 bytes per member, where a hash is 32: commits
// and group checkpoints stay smaller than suite v1's, which carried 1,248
// bytes of keys per member.
//
// The keys are an account's user keys at one generation (see AccountState):
// the X-Wing user key every group wraps to, and the hybrid user signing key
// that signs the account's commits and resource headers. The encoding binds
// them to the account, the deployment origin the account was created at,
// the handle and the generation, so a hash names one account's keys at one
// point of its chain and nothing else:
//
//	version        uint8 = SuiteV2
//	account        [16]byte
//	origin         <uint8 length>
//	handle         <uint8 length>
//	generation     uint64, at least 1
//	encryption_key [1216]byte (X-Wing)
//	signing_key    [1984]byte (HybridPublicKeySize: Ed25519 ‖ ML-DSA-65)

// LabelMemberKeys separates MemberKeys hashes from every other hash.
const LabelMemberKeys = "coffer/v2/member-keys"

// MemberKeysSize bounds an encoding: the fixed fields and the longest origin
// and handle.
const MemberKeysSize = 1 + 16 + 1 + 255 + 1 + 255 + 8 + EncryptionKeySize + HybridPublicKeySize

// MemberKeys is a suite v2 member's keys, as a group refers to them.
type MemberKeys struct {
	Account       AccountID
	Origin        string
	Handle        Handle
	Generation    uint64
	EncryptionKey []byte          // X-Wing encapsulation key, EncryptionKeySize bytes
	SigningKey    HybridPublicKey // the account's user signing key
}

// Marshal returns the canonical encoding. It does not validate k; it
// panics on an origin or handle over 255 bytes, which no valid one is.
func (k *MemberKeys) Marshal() []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, 1+16+2+len(k.Origin)+len(k.Handle)+8+EncryptionKeySize+HybridPublicKeySize))
	b.AddUint8(SuiteV2)
	b.AddBytes(k.Account[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k.Origin)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k.Handle)) })
	b.AddUint64(k.Generation)
	b.AddBytes(k.EncryptionKey)
	b.AddBytes(k.SigningKey.Bytes())
	return b.BytesOrPanic()
}

// Hash is MemberKeysHash of k's encoding.
func (k *MemberKeys) Hash() [32]byte { return MemberKeysHash(k.Marshal()) }

// MemberKeysHash is the hash a suite v2 op carries for the keys encoded as
// enc: SHA-256 of SignedMessage(LabelMemberKeys, enc).
func MemberKeysHash(enc []byte) [32]byte {
	return sha256.Sum256(SignedMessage(LabelMemberKeys, enc))
}

// ParseMemberKeys parses and fully validates a canonical encoding: the
// version, a non-zero account, the origin and handle syntax, a generation
// of at least 1, a valid X-Wing key, and a hybrid signing key whose Ed25519
// half passes CheckSigningKey. The result does not alias data.
func ParseMemberKeys(data []byte) (*MemberKeys, error) {
	bad := func(what string) error { return Errorf(EINVALID, "malformed member keys: %s", what) }
	if len(data) > MemberKeysSize {
		return nil, bad("too long")
	}
	var (
		in             = cryptobyte.String(data)
		k              MemberKeys
		version        uint8
		origin, handle cryptobyte.String
		ek, sk         []byte
	)
	if !in.ReadUint8(&version) {
		return nil, bad("empty")
	}
	if version != SuiteV2 {
		return nil, Errorf(EINVALID, "unsupported member keys version %d", version)
	}
	if !in.CopyBytes(k.Account[:]) || !in.ReadUint8LengthPrefixed(&origin) || !in.ReadUint8LengthPrefixed(&handle) ||
		!in.ReadUint64(&k.Generation) || !in.ReadBytes(&ek, EncryptionKeySize) || !in.ReadBytes(&sk, HybridPublicKeySize) {
		return nil, bad("truncated")
	}
	if !in.Empty() {
		return nil, bad("trailing bytes")
	}
	if k.Account.IsZero() {
		return nil, bad("zero account id")
	}
	if err := CheckOrigin(string(origin)); err != nil {
		return nil, bad("invalid origin")
	}
	h, err := ParseHandle(string(handle))
	if err != nil {
		return nil, bad("invalid handle")
	}
	if k.Generation == 0 {
		return nil, bad("generation 0")
	}
	if err := CheckEncryptionKey(ek); err != nil {
		return nil, bad("invalid encryption key")
	}
	if k.SigningKey, err = ParseHybridPublicKey(sk); err != nil {
		return nil, bad("invalid signing key: " + ErrorMessage(err))
	}
	k.Origin, k.Handle, k.EncryptionKey = string(origin), h, bytes.Clone(ek)
	return &k, nil
}

// MemberKeySource gives the keys a suite v2 group refers to by hash. The
// verifier trusts it with nothing: it checks that what comes back hashes to
// what was asked for and belongs to the member concerned, so a source may
// be the server itself. An error means the keys are unavailable. A source
// passed to VerifyChainWith is called from several goroutines at once.
type MemberKeySource interface {
	MemberKeys(hash [32]byte) (*MemberKeys, error)
}

// MemberKeyMap is a MemberKeySource over keys held in memory, by hash.
type MemberKeyMap map[[32]byte]*MemberKeys

// Add records k under its hash and returns the hash.
func (m MemberKeyMap) Add(k *MemberKeys) [32]byte {
	h := k.Hash()
	m[h] = k
	return h
}

// MemberKeys implements MemberKeySource.
func (m MemberKeyMap) MemberKeys(hash [32]byte) (*MemberKeys, error) {
	if k := m[hash]; k != nil {
		return k, nil
	}
	return nil, Errorf(ENOTFOUND, "no member keys with hash %x", hash[:8])
}

// RuleMemberKeys: the keys a suite v2 commit refers to are unavailable, do
// not hash to the reference, or are another account's or another handle's.
const RuleMemberKeys = "member-keys"

// resolveMemberKeys asks src for the keys hash names and checks them as the
// keys of member id with handle: they must hash to hash (whatever src is),
// and name that account and handle. Errors carry RuleMemberKeys.
func resolveMemberKeys(src MemberKeySource, hash [32]byte, id AccountID, handle Handle) (*MemberKeys, error) {
	if src == nil {
		return nil, ruleErr(RuleMemberKeys, "a suite v2 commit needs the member keys it refers to, and none were given")
	}
	k, err := src.MemberKeys(hash)
	if err != nil || k == nil {
		return nil, ruleErr(RuleMemberKeys, "the keys of member %s (%x) are unavailable", id, hash[:8])
	}
	switch {
	case k.Hash() != hash:
		return nil, ruleErr(RuleMemberKeys, "the keys given for member %s do not hash to the reference %x", id, hash[:8])
	case k.Account != id:
		return nil, ruleErr(RuleMemberKeys, "the keys referred to for member %s are those of account %s", id, k.Account)
	case k.Handle != handle:
		return nil, ruleErr(RuleMemberKeys, "the keys referred to for member %s name handle %s, not %s", id, k.Handle, handle)
	}
	return k, nil
}

// MemberKeys resolves the keys of current member id of a suite v2 group
// from src, checked against the member's entry as the verifier checks an
// author's: a client calls it before wrapping an epoch key to a member, or
// verifying what the member signed, and the server before it accepts an
// add. The error is RuleMemberKeys when src fails or lies, or, in a tree
// group, when the member's leaf holds another encryption key; ENOTFOUND
// when id is not a member.
func (s *GroupState) MemberKeys(id AccountID, src MemberKeySource) (*MemberKeys, error) {
	if s.Suite != SuiteV2 {
		return nil, Errorf(EINVALID, "a suite v1 group holds its members' keys in their entries")
	}
	m := s.Members[id]
	if m == nil {
		return nil, Errorf(ENOTFOUND, "%s is not a member of group %s", id, s.Group)
	}
	k, err := resolveMemberKeys(src, m.KeysHash, id, m.Handle)
	if err != nil {
		return nil, err
	}
	if err := s.checkLeafKey(m, k); err != nil {
		return nil, err
	}
	return k, nil
}

// WithMemberKeys returns a copy of a suite v2 state in which every current
// member's keys are resolved from src and checked as MemberKeys checks
// them: Member.Keys holds them, Member.EncryptionKey their X-Wing key and
// Member.SigningKey their Ed25519 half, so code that wraps to members or
// compares their keys with verified contacts works on either suite. A
// suite v1 state is returned as it is. Resolve again after applying
// commits: an entry a commit changed holds its hash alone.
func (s *GroupState) WithMemberKeys(src MemberKeySource) (*GroupState, error) {
	if s.Suite != SuiteV2 {
		return s, nil
	}
	out := s.Clone()
	for id, m := range out.Members {
		// An entry resolved before is skipped: apply clears Keys when the
		// hash changes.
		if err := out.resolveEntry(src, id, m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// resolveEntry resolves member id's entry m of s, unless it holds its keys.
func (s *GroupState) resolveEntry(src MemberKeySource, id AccountID, m *Member) error {
	if m.Keys != nil {
		return nil
	}
	k, err := resolveMemberKeys(src, m.KeysHash, id, m.Handle)
	if err != nil {
		return err
	}
	if err := s.checkLeafKey(m, k); err != nil {
		return err
	}
	m = s.ownMember(id)
	m.Keys, m.EncryptionKey, m.SigningKey = k, k.EncryptionKey, k.SigningKey.Ed25519()
	return nil
}

// WithMemberKeysOf is WithMemberKeys for the current members of ids
// alone (others, and ids that are not members, are left as they are): a
// client that reads a tree group resolves its own entry and its admins'
// and leaves the other members' keys to when it uses them.
func (s *GroupState) WithMemberKeysOf(src MemberKeySource, ids []AccountID) (*GroupState, error) {
	if s.Suite != SuiteV2 {
		return s, nil
	}
	out := s.Clone()
	for _, id := range ids {
		if m := out.Members[id]; m != nil {
			if err := out.resolveEntry(src, id, m); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// ResolveMemberKeys asks src for the keys hash names and checks them as
// the keys of account id with handle, as the verifier checks an author's
// (RuleMemberKeys): for keys a caller needs outside a chain's current
// state, such as the key that signed an old resource header.
func ResolveMemberKeys(src MemberKeySource, hash [32]byte, id AccountID, handle Handle) (*MemberKeys, error) {
	return resolveMemberKeys(src, hash, id, handle)
}
