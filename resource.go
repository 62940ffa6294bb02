package coffer

import (
	"crypto/ed25519"
	"math"

	"golang.org/x/crypto/cryptobyte"
)

// ResourceHeader is what the author of a resource signs about it. The content
// itself is an age file under a key bound to group, epoch and resource id, so
// the server cannot move it; but every member of the epoch can make such a
// file, and age's own MAC cannot tell members apart. The author's signature
// over the exact ciphertext hash is what stops one member forging content, or
// replacing a version, in another member's name.
//
// A reader accepts a resource only when all of these hold:
//   - the header verifies under the author's signing key, taken from the
//     verified membership log (SignedHeader.Verify);
//   - Author had at least the writer role at Epoch in that log;
//   - Resource and Group are the ones the reader asked for;
//   - Version is not lower than any version of Resource the reader has seen,
//     which defeats rollback to an older upload, and Prev is the hash of
//     the header of version-1 when the reader verified that one;
//   - the transparency log holds the version's leaf (ResourceVersionLeaf
//     in internal/translog), the heads map names it as the resource's
//     current version, not a tombstone, and Author was a writer at the
//     group head in force when the leaf was logged (CheckLoggedVersion);
//   - the metadata blob hashes to MetaHash, and the ciphertext's chunks are
//     the leaves of the tree with root TreeRoot, Chunks of them after the
//     age header, in an age file of ContentSize bytes (each chunk checked
//     before it is decrypted; see internal/content).
type ResourceHeader struct {
	// Suite is ResourceSuiteHybrid for a suite v2 header, signed with the
	// author's hybrid key, and zero for an Ed25519 header, which Marshal
	// encodes as version ResourceSuite. ParseResourceHeader sets it the same
	// way, so a parsed header marshals back to the bytes it came from.
	Suite    uint8
	Resource ResourceID
	Group    GroupID
	Epoch    uint64
	Author   AccountID
	Version  uint64 // 1 for the first upload, +1 on each replace
	// Prev is HeaderHash of the signed header of the version this one
	// replaces, and zero for version 1: each version names the one before
	// it, so a server cannot splice two histories of one resource, and a
	// reader who saw version k can check that k+1 continues it.
	Prev [32]byte
	// TreeRoot is the RFC 6962 root of the chunk tree: leaf 0 is the age
	// header and payload nonce, leaf 1+i the i-th STREAM chunk as stored.
	TreeRoot    [32]byte
	Chunks      uint64   // number of age STREAM chunks, at least 1
	ContentSize int64    // age file size in bytes (the blob adds the chunk hash list)
	MetaHash    [32]byte // SHA-256 of the encrypted metadata blob
	Created     int64    // unix milliseconds, as claimed by the author
}

// Version bytes of resource headers. Suite-1 headers (one hash over the
// whole file) are no longer accepted.
const (
	// ResourceSuite is the chunk-tree header signed with Ed25519
	// (SignResourceHeader, SignedHeader.Verify).
	ResourceSuite = 2
	// ResourceSuiteHybrid is the same header signed with a suite v2 hybrid
	// key, Ed25519 and ML-DSA-65 (SignResourceHeaderHybrid,
	// SignedHeader.VerifyHybrid). The version byte is signed, and each
	// verifier accepts only its own, so neither kind of signature can be
	// passed off as the other: a hybrid signature stripped to its Ed25519
	// half still names version 3, which the Ed25519 verifier refuses.
	ResourceSuiteHybrid = 3
)

// ResourceHeaderSize is the length of every resource header encoding, of
// either version: a version byte and fixed-length fields, with no length
// prefixes.
const ResourceHeaderSize = 1 + 16 + 16 + 8 + 16 + 8 + HashSize + HashSize + 8 + 8 + HashSize + 8

// Sizes of the age payload that ParseResourceHeader checks Chunks and
// ContentSize against.
const (
	// MaxAgeHeaderSize bounds the age header of a resource, with the
	// payload nonce: a coffer header is well under 300 bytes.
	MaxAgeHeaderSize = 4096
	ageChunk         = 64<<10 + 16 // a full STREAM chunk with its tag
	ageMinHeader     = 16 + 16     // the payload nonce and some header
)

// Marshal returns the canonical encoding of h: the version byte
// (ResourceSuiteHybrid when h.Suite says so, else ResourceSuite), then
// every other field in declaration order, ids as 16 raw bytes and integers
// as 8-byte big-endian values. All fields have a fixed length, so there is
// exactly one encoding of a header and it is what gets signed and stored.
func (h *ResourceHeader) Marshal() []byte {
	var b cryptobyte.Builder
	if h.Suite == ResourceSuiteHybrid {
		b.AddUint8(ResourceSuiteHybrid)
	} else {
		b.AddUint8(ResourceSuite)
	}
	b.AddBytes(h.Resource[:])
	b.AddBytes(h.Group[:])
	b.AddUint64(h.Epoch)
	b.AddBytes(h.Author[:])
	b.AddUint64(h.Version)
	b.AddBytes(h.Prev[:])
	b.AddBytes(h.TreeRoot[:])
	b.AddUint64(h.Chunks)
	b.AddUint64(uint64(h.ContentSize))
	b.AddBytes(h.MetaHash[:])
	b.AddUint64(uint64(h.Created))
	return b.BytesOrPanic()
}

// ParseResourceHeader parses a canonical header encoding of either version
// (Suite says which) and rejects anything Marshal would not produce for a
// valid header: another length or version byte,
// zero ids, version 0, a Prev that is set for version 1 or zero for a
// later version, a negative size or time, or a chunk count that no age
// file of ContentSize bytes has (which also bounds the chunk hash list a
// reader allocates to 32 bytes per 64 KiB). Errors are *Error with code
// EINVALID.
func ParseResourceHeader(data []byte) (*ResourceHeader, error) {
	if len(data) != ResourceHeaderSize {
		return nil, Errorf(EINVALID, "resource header must be %d bytes, got %d", ResourceHeaderSize, len(data))
	}
	var (
		s                        = cryptobyte.String(data)
		h                        ResourceHeader
		version                  uint8
		contentSize, created     uint64
		resource, group, author  []byte
		prev, treeRoot, metaHash []byte
	)
	// The length is checked above, so these reads cannot run short; the
	// checks stay as a second line of defense.
	if !s.ReadUint8(&version) ||
		!s.ReadBytes(&resource, 16) ||
		!s.ReadBytes(&group, 16) ||
		!s.ReadUint64(&h.Epoch) ||
		!s.ReadBytes(&author, 16) ||
		!s.ReadUint64(&h.Version) ||
		!s.ReadBytes(&prev, HashSize) ||
		!s.ReadBytes(&treeRoot, HashSize) ||
		!s.ReadUint64(&h.Chunks) ||
		!s.ReadUint64(&contentSize) ||
		!s.ReadBytes(&metaHash, HashSize) ||
		!s.ReadUint64(&created) ||
		!s.Empty() {
		return nil, Errorf(EINVALID, "malformed resource header")
	}
	switch version {
	case ResourceSuite:
	case ResourceSuiteHybrid:
		h.Suite = ResourceSuiteHybrid
	default:
		return nil, Errorf(EINVALID, "unsupported resource header version %d", version)
	}
	h.Resource = ResourceID(resource)
	h.Group = GroupID(group)
	h.Author = AccountID(author)
	h.Prev = [32]byte(prev)
	h.TreeRoot = [32]byte(treeRoot)
	h.MetaHash = [32]byte(metaHash)
	switch {
	case h.Resource.IsZero() || h.Group.IsZero() || h.Author.IsZero():
		return nil, Errorf(EINVALID, "resource header has a zero id")
	case h.Version == 0:
		return nil, Errorf(EINVALID, "resource header version must start at 1")
	case h.Version == 1 && h.Prev != [32]byte{}:
		return nil, Errorf(EINVALID, "resource header: version 1 replaces nothing, but names a previous header")
	case h.Version > 1 && h.Prev == [32]byte{}:
		return nil, Errorf(EINVALID, "resource header: version %d does not name the header it replaces", h.Version)
	case contentSize > math.MaxInt64:
		return nil, Errorf(EINVALID, "resource header has a negative content size")
	case created > math.MaxInt64:
		return nil, Errorf(EINVALID, "resource header has a negative creation time")
	case h.Chunks == 0:
		return nil, Errorf(EINVALID, "resource header counts no chunks; an age payload has at least one")
	case contentSize < ageMinHeader+16 || (h.Chunks-1) > (contentSize-ageMinHeader-16)/ageChunk ||
		contentSize > h.Chunks*ageChunk+MaxAgeHeaderSize:
		// The first bound keeps Chunks ≤ ContentSize/64 KiB + 1 without
		// overflow; the second rejects sizes Chunks chunks cannot fill.
		return nil, Errorf(EINVALID, "resource header: %d chunks do not fit an age file of %d bytes", h.Chunks, contentSize)
	}
	h.ContentSize = int64(contentSize)
	h.Created = int64(created)
	return &h, nil
}

// SignedHeader is a resource header encoding and its author's signature. Body
// is stored and hashed as is; it is never re-serialized, so what a reader
// verifies is exactly what the author signed.
type SignedHeader struct {
	Body []byte // ResourceHeader.Marshal output
	// Signature is over SignedMessage(LabelResourceHeader, Body): Ed25519
	// for a version-2 body, hybrid (HybridSignatureSize bytes) for a
	// version-3 body.
	Signature []byte
}

// SignResourceHeader encodes h as a version-2 header, whatever h.Suite
// says, and signs it with the author's Ed25519 signing key: the key decides
// the suite, so no Ed25519 signature over a version-3 body is ever made.
func SignResourceHeader(h *ResourceHeader, key ed25519.PrivateKey) SignedHeader {
	v2 := *h
	v2.Suite = 0
	body := v2.Marshal()
	return SignedHeader{Body: body, Signature: Sign(key, LabelResourceHeader, body)}
}

// Verify checks a version-2 header's Ed25519 signature under authorKey and
// returns the parsed header. A body of any other version fails whatever its
// signature: a version-3 body is checked only by VerifyHybrid, so a hybrid
// signature cut to its Ed25519 half, or a version-3 body signed with Ed25519
// alone, never passes here. Errors are *Error with code EINVALID; a client
// that got the header from the server reports them as Security("header", err).
//
// Verify knows nothing about accounts: the caller must take authorKey from
// the verified membership log as the signing key of the header's Author
// (parse Body with ParseResourceHeader to learn who that is), and then check
// the other conditions listed on ResourceHeader.
func (sh SignedHeader) Verify(authorKey ed25519.PublicKey) (*ResourceHeader, error) {
	if err := sh.checkSuite(ResourceSuite, "an Ed25519"); err != nil {
		return nil, err
	}
	if !VerifySignature(authorKey, LabelResourceHeader, sh.Body, sh.Signature) {
		return nil, Errorf(EINVALID, "resource header signature does not verify under the author's key")
	}
	return ParseResourceHeader(sh.Body)
}

// checkSuite refuses a body whose version byte is not the one the verifier
// checks signatures for, before any signature is checked.
func (sh SignedHeader) checkSuite(want uint8, kind string) error {
	switch {
	case len(sh.Body) == 0:
		return Errorf(EINVALID, "empty resource header")
	case sh.Body[0] != want:
		return Errorf(EINVALID, "resource header version %d is not %s header (version %d)", sh.Body[0], kind, want)
	}
	return nil
}
