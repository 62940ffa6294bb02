package coffer

import (
	"crypto/ed25519"
	"crypto/sha256"

	"golang.org/x/crypto/cryptobyte"
)

// Resources in the transparency log.
//
// Every finalized version of a resource and every delete is a leaf of the
// transparency log (internal/translog), and the log's heads map names each
// resource's latest leaf. A version leaf holds only hashes and ids (the
// LoggedVersion of its header); a delete leaf holds the deleter's signed
// ResourceDelete. The rules below are what a witness replays leaf by leaf,
// and what a reader checks for the one version it reads: they are pure, and
// both take the group's state at the leaf's place in the log, the head in
// force when the leaf was logged.

// Labels of the resource log.
const (
	LabelResourceHeaderHash = "coffer/v1/resource-header-hash" // HeaderHash: Prev and the log leaf
	LabelResourceDelete     = "coffer/v1/resource-delete"      // a deleter's signature over a ResourceDelete
)

// Rules of the resource log, named in *Error.Rule as the chain rules are.
const (
	RuleResourceGroup   = "resource-group"   // a leaf of another group than the state given
	RuleResourceVersion = "resource-version" // version is not the previous version plus one
	RuleResourcePrev    = "resource-prev"    // Prev is not the hash of the previous version's header
	RuleResourceEpoch   = "resource-epoch"   // the version is not under the epoch of the head in force
	RuleResourceAuthor  = "resource-author"  // the author or deleter was not a writer, or replaced another's resource without being an admin
	RuleResourceDeleted = "resource-deleted" // a leaf after the resource's tombstone, or a delete of a version that is not current
	RuleDeleteSignature = "delete-signature" // the tombstone does not verify under the deleter's key in the group
)

// HeaderHash is the hash that names one signed version of a resource: the
// Prev of the version after it and the header hash in its log leaf. It
// covers the header body only; the body names the author, and Ed25519
// signatures are checked wherever the body is used.
func HeaderHash(body []byte) [32]byte {
	return sha256.Sum256(SignedMessage(LabelResourceHeaderHash, body))
}

// LoggedVersion is what the log records of one finalized version: every
// field a witness needs to replay it, and nothing secret.
type LoggedVersion struct {
	Group      GroupID
	Resource   ResourceID
	Version    uint64
	Epoch      uint64
	Author     AccountID
	Prev       [32]byte // the header's Prev
	HeaderHash [32]byte // HeaderHash of the signed header body
}

// LoggedVersionOf returns the log record of the header h whose canonical
// encoding is body. A reader builds it from the header it verified, so the
// leaf it proves is exactly that header's.
func LoggedVersionOf(h *ResourceHeader, body []byte) LoggedVersion {
	return LoggedVersion{Group: h.Group, Resource: h.Resource, Version: h.Version, Epoch: h.Epoch,
		Author: h.Author, Prev: h.Prev, HeaderHash: HeaderHash(body)}
}

// ResourceDelete is what a deleter signs: that version Version of
// Resource in Group, the current one, is deleted, by Deleter.
type ResourceDelete struct {
	// Suite is the encoding's version byte: ResourceDeleteSuite (signed
	// with Ed25519, suite v1 groups) or ResourceDeleteSuiteHybrid (signed
	// with the deleter's hybrid key, suite v2 groups). Zero encodes as
	// ResourceDeleteSuite.
	Suite    uint8
	Group    GroupID
	Resource ResourceID
	Version  uint64
	Deleter  AccountID
}

// The version bytes of a ResourceDelete encoding. The byte is signed, and
// each verifier accepts only its own, so a suite v2 group's tombstone
// cannot be cut down to its Ed25519 half and pass as a suite v1 one.
const (
	ResourceDeleteSuite       = 1
	ResourceDeleteSuiteHybrid = 2
)

// ResourceDeleteSize is the length of every ResourceDelete encoding.
const ResourceDeleteSize = 1 + 16 + 16 + 8 + 16

// Marshal returns the canonical, fixed-length encoding of d: the suite byte,
// then the fields in order, ids as 16 bytes, the version as 8 big-endian.
func (d *ResourceDelete) Marshal() []byte {
	suite := d.Suite
	if suite == 0 {
		suite = ResourceDeleteSuite
	}
	var b cryptobyte.Builder
	b.AddUint8(suite)
	b.AddBytes(d.Group[:])
	b.AddBytes(d.Resource[:])
	b.AddUint64(d.Version)
	b.AddBytes(d.Deleter[:])
	return b.BytesOrPanic()
}

// ParseResourceDelete parses a canonical ResourceDelete encoding, refusing
// another length or suite, zero ids and version 0. Errors are *Error with
// code EINVALID.
func ParseResourceDelete(data []byte) (*ResourceDelete, error) {
	if len(data) != ResourceDeleteSize {
		return nil, Errorf(EINVALID, "a resource delete must be %d bytes, got %d", ResourceDeleteSize, len(data))
	}
	s := cryptobyte.String(data)
	var (
		d              ResourceDelete
		suite          uint8
		g, id, deleter []byte
	)
	if !s.ReadUint8(&suite) || !s.ReadBytes(&g, 16) || !s.ReadBytes(&id, 16) || !s.ReadUint64(&d.Version) ||
		!s.ReadBytes(&deleter, 16) || !s.Empty() {
		return nil, Errorf(EINVALID, "malformed resource delete")
	}
	if suite != ResourceDeleteSuite && suite != ResourceDeleteSuiteHybrid {
		return nil, Errorf(EINVALID, "unsupported resource delete version %d", suite)
	}
	d.Suite = suite
	d.Group, d.Resource, d.Deleter = GroupID(g), ResourceID(id), AccountID(deleter)
	switch {
	case d.Group.IsZero() || d.Resource.IsZero() || d.Deleter.IsZero():
		return nil, Errorf(EINVALID, "resource delete has a zero id")
	case d.Version == 0:
		return nil, Errorf(EINVALID, "resource delete names version 0")
	}
	return &d, nil
}

// SignedDelete is a tombstone: a ResourceDelete encoding and the deleter's
// signature over it.
type SignedDelete struct {
	Body []byte // ResourceDelete.Marshal output
	// Signature is over SignedMessage(LabelResourceDelete, Body): Ed25519
	// (64 bytes) for a body of version ResourceDeleteSuite, hybrid
	// Ed25519 + ML-DSA-65 (HybridSignatureSize) for ResourceDeleteSuiteHybrid.
	Signature []byte
}

// SignResourceDelete encodes d as a suite v1 tombstone, whatever d.Suite
// says, and signs it with the deleter's Ed25519 signing key.
func SignResourceDelete(d *ResourceDelete, key ed25519.PrivateKey) SignedDelete {
	v1 := *d
	v1.Suite = ResourceDeleteSuite
	body := v1.Marshal()
	return SignedDelete{Body: body, Signature: Sign(key, LabelResourceDelete, body)}
}

// SignResourceDeleteHybrid encodes d as a suite v2 tombstone, whatever
// d.Suite says, and signs it with the deleter's hybrid user signing key.
func SignResourceDeleteHybrid(d *ResourceDelete, key *HybridPrivateKey) SignedDelete {
	v2 := *d
	v2.Suite = ResourceDeleteSuiteHybrid
	body := v2.Marshal()
	return SignedDelete{Body: body, Signature: key.Sign(LabelResourceDelete, body)}
}

// ResourceDeleteSignatureSize is the length of the signature a tombstone of
// body's version carries (the translog leaf reads it by this).
func ResourceDeleteSignatureSize(body []byte) int {
	if len(body) > 0 && body[0] == ResourceDeleteSuiteHybrid {
		return HybridSignatureSize
	}
	return SignatureSize
}

// Verify checks a suite v1 tombstone's Ed25519 signature under the
// deleter's key and returns the parsed delete. A body of another version
// fails whatever its signature. Errors are *Error with code EINVALID.
func (sd SignedDelete) Verify(deleterKey ed25519.PublicKey) (*ResourceDelete, error) {
	if len(sd.Body) == 0 || sd.Body[0] != ResourceDeleteSuite {
		return nil, &Error{Code: EINVALID, Message: "the resource delete is not a suite v1 (Ed25519) tombstone", Rule: RuleDeleteSignature}
	}
	if !VerifySignature(deleterKey, LabelResourceDelete, sd.Body, sd.Signature) {
		return nil, &Error{Code: EINVALID, Message: "the resource delete does not verify under the deleter's key", Rule: RuleDeleteSignature}
	}
	return ParseResourceDelete(sd.Body)
}

// VerifyHybrid checks a suite v2 tombstone's hybrid signature, both
// halves, under the deleter's hybrid user signing key, and returns the
// parsed delete. A body of another version fails whatever its signature.
// Errors are *Error with code EINVALID.
func (sd SignedDelete) VerifyHybrid(deleterKey HybridPublicKey) (*ResourceDelete, error) {
	if len(sd.Body) == 0 || sd.Body[0] != ResourceDeleteSuiteHybrid {
		return nil, &Error{Code: EINVALID, Message: "the resource delete is not a suite v2 (hybrid) tombstone", Rule: RuleDeleteSignature}
	}
	if deleterKey.IsZero() {
		return nil, &Error{Code: EINVALID, Message: "no hybrid key to check the resource delete under", Rule: RuleDeleteSignature}
	}
	if err := deleterKey.Verify(LabelResourceDelete, sd.Body, sd.Signature); err != nil {
		return nil, &Error{Code: EINVALID, Message: "the resource delete does not verify under the deleter's hybrid key: " + ErrorMessage(err), Rule: RuleDeleteSignature}
	}
	return ParseResourceDelete(sd.Body)
}

// VerifyIn checks sd under the key deleter holds in s, by the group's
// suite: Ed25519 in suite v1, and in suite v2 the hybrid key of the
// member's entry (as GroupState.WithMemberKeys resolved them, or else
// resolved through src). It does not check the role or the version.
func (sd SignedDelete) VerifyIn(s *GroupState, deleter AccountID, src MemberKeySource) (*ResourceDelete, error) {
	m := s.Members[deleter]
	if m == nil {
		return nil, ruleErr(RuleResourceAuthor, "the deleter %s is not a member", deleter)
	}
	if s.Suite != SuiteV2 {
		return sd.Verify(m.SigningKey)
	}
	keys := m.Keys
	if keys == nil {
		if src == nil {
			return nil, ruleErr(RuleMemberKeys, "the keys of deleter %s are not resolved, and no source to resolve them was given", deleter)
		}
		k, err := s.MemberKeys(deleter, src)
		if err != nil {
			return nil, err
		}
		keys = k
	}
	return sd.VerifyHybrid(keys.SigningKey)
}

// ResourceLogState is one resource as the log's leaves so far leave it. The
// zero value is a resource the log has never seen.
type ResourceLogState struct {
	Version    uint64    // the latest version logged, 0 for none
	HeaderHash [32]byte  // its HeaderHash
	Author     AccountID // its author
	Deleted    bool      // a tombstone of Version was logged
}

// CheckLoggedVersion checks a version leaf v against the resource's state
// before it (prev; nil or zero for a new resource) and the state s of the
// group at the head in force when the leaf was logged (the state after the
// group's last commit logged before it), and returns the resource's state
// after it. The rules:
//   - v is for s's group; a deleted resource gets no further leaf;
//   - v.Version is prev.Version + 1 (1 for a new resource), and v.Prev is
//     prev.HeaderHash (zero for version 1);
//   - v.Epoch is s's epoch: the server finalizes a version only under the
//     group's current key, so a version under an older epoch, which a
//     removed member still holds the key of, is backdated;
//   - v.Author is a member of s with at least the writer role, and a
//     replace (version > 1) is by the author of the version it replaces or
//     by an admin or owner.
//
// Errors are *Error with code EINVALID and a Rule.
func CheckLoggedVersion(s *GroupState, prev *ResourceLogState, v LoggedVersion) (*ResourceLogState, error) {
	if prev == nil {
		prev = &ResourceLogState{}
	}
	if s == nil || s.Seq == 0 || v.Group != s.Group {
		return nil, ruleErr(RuleResourceGroup, "resource %s: a version of group %s checked against another group's state", v.Resource, v.Group)
	}
	if prev.Deleted {
		return nil, ruleErr(RuleResourceDeleted, "resource %s was deleted at version %d; version %d comes after its tombstone", v.Resource, prev.Version, v.Version)
	}
	if v.Version != prev.Version+1 {
		return nil, ruleErr(RuleResourceVersion, "resource %s: version %d logged after version %d", v.Resource, v.Version, prev.Version)
	}
	if v.Prev != prev.HeaderHash {
		return nil, ruleErr(RuleResourcePrev, "resource %s: version %d does not name the header of version %d as the one it replaces", v.Resource, v.Version, prev.Version)
	}
	if v.Epoch != s.Epoch {
		return nil, ruleErr(RuleResourceEpoch, "resource %s: version %d is under epoch %d, but the group was at epoch %d when it was logged", v.Resource, v.Version, v.Epoch, s.Epoch)
	}
	if err := mayWriteResource(s, v.Author, v.Resource, prev, "write"); err != nil {
		return nil, err
	}
	return &ResourceLogState{Version: v.Version, HeaderHash: v.HeaderHash, Author: v.Author}, nil
}

// CheckLoggedDelete checks a tombstone leaf against the resource's state
// before it and the group's state at the head in force when it was logged,
// and returns the resource's state after it. The delete must name the
// resource's current version, verify under the deleter's signing key in s
// (SignedDelete.VerifyIn: in a suite v2 group, the hybrid key its entry
// names, resolved in s or through src),
// and be by a writer who wrote that version, or by an admin or owner.
func CheckLoggedDelete(s *GroupState, prev *ResourceLogState, sd SignedDelete, src MemberKeySource) (*ResourceLogState, error) {
	d, err := ParseResourceDelete(sd.Body)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Seq == 0 || d.Group != s.Group {
		return nil, ruleErr(RuleResourceGroup, "resource %s: a delete of group %s checked against another group's state", d.Resource, d.Group)
	}
	if prev == nil || prev.Version == 0 || prev.Deleted || prev.Version != d.Version {
		cur := uint64(0)
		if prev != nil && !prev.Deleted {
			cur = prev.Version
		}
		return nil, ruleErr(RuleResourceDeleted, "resource %s: a delete of version %d, but the current version is %d", d.Resource, d.Version, cur)
	}
	m := s.Members[d.Deleter]
	if m == nil {
		return nil, ruleErr(RuleResourceAuthor, "resource %s: deleted by %s, who was not a member", d.Resource, d.Deleter)
	}
	if _, err := sd.VerifyIn(s, d.Deleter, src); err != nil {
		return nil, err
	}
	if err := mayWriteResource(s, d.Deleter, d.Resource, prev, "delete"); err != nil {
		return nil, err
	}
	return &ResourceLogState{Version: prev.Version, HeaderHash: prev.HeaderHash, Author: prev.Author, Deleted: true}, nil
}

// mayWriteResource is the role rule of both leaves: a writer, and for a
// replace or delete of an existing version, that version's author or an
// admin. It matches what the server enforces when it takes the write.
func mayWriteResource(s *GroupState, who AccountID, id ResourceID, prev *ResourceLogState, what string) error {
	m := s.Members[who]
	switch {
	case m == nil || m.Role < RoleWriter:
		role := RoleNone
		if m != nil {
			role = m.Role
		}
		return ruleErr(RuleResourceAuthor, "resource %s: %s by %s, a %s at the group head in force (seq %d)", id, what, who, role, s.Seq)
	case prev.Version > 0 && prev.Author != who && m.Role < RoleAdmin:
		return ruleErr(RuleResourceAuthor, "resource %s: %s by %s, a %s, of a version %s wrote: only its author or an admin may", id, what, who, m.Role, prev.Author)
	}
	return nil
}
