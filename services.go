package coffer

import (
	"context"
	"database/sql/driver"
	"time"

	"github.com/cofferhq/coffer/internal/ratchettree"
)

// This file holds the interfaces between the HTTP server and storage. The
// store package implements them on PostgreSQL; the server package calls them.
// Neither imports the other: cmd/cofferd wires them together.
//
// Every method that takes a caller AccountID enforces membership inside its
// query: a non-member gets ENOTFOUND, exactly as if the object did not exist.

// Account is a registered identity as the server stores it.
type Account struct {
	ID            AccountID
	Identity      PublicIdentity
	SelfSignature []byte
	Created       time.Time
	// ChainSeq is the seq of the head of a suite v2 account's chain (see
	// AccountChainService); 0 for a suite v1 account, which has none.
	ChainSeq uint64
}

// AccountService stores accounts.
type AccountService interface {
	// CreateAccount stores a new account. ECONFLICT if the handle is taken.
	CreateAccount(ctx context.Context, a *Account) error
	// AccountByID returns an account or ENOTFOUND.
	AccountByID(ctx context.Context, id AccountID) (*Account, error)
	// AccountByHandle returns an account or ENOTFOUND.
	AccountByHandle(ctx context.Context, h Handle) (*Account, error)
	// AccountsByID returns the accounts that exist among ids.
	AccountsByID(ctx context.Context, ids []AccountID) (map[AccountID]*Account, error)
}

// MaxAccountsLookup bounds the account ids one lookup asks for (POST
// /v1/accounts/lookup): a client proving the identities of a large
// group's members asks in batches of this many.
const MaxAccountsLookup = 1000

// RefreshToken is the stored form of a refresh token: only its hash.
type RefreshToken struct {
	Hash    [32]byte
	Family  [16]byte
	Account AccountID
	Expires time.Time
}

// AuthService stores login challenges and refresh tokens.
type AuthService interface {
	// CreateChallenge records the hash of a fresh challenge for account.
	CreateChallenge(ctx context.Context, account AccountID, challengeHash [32]byte, expires time.Time) error
	// ConsumeChallenge deletes the challenge and reports EUNAUTHORIZED if it
	// was absent, expired, already used or issued to another account.
	ConsumeChallenge(ctx context.Context, account AccountID, challengeHash [32]byte) error
	// CreateRefreshToken stores a new refresh token.
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RotateRefreshToken marks the token with hash old as used and stores
	// next in the same family, returning the account. A token that is
	// unknown, expired, revoked or already used gets EUNAUTHORIZED; a used
	// one also revokes its whole family, because reuse means it was stolen.
	RotateRefreshToken(ctx context.Context, old [32]byte, next RefreshToken) (AccountID, error)
	// RevokeRefreshToken revokes the family of the token (logout).
	RevokeRefreshToken(ctx context.Context, hash [32]byte) error
}

// Wrap is an epoch key sealed to one member with HPKE (coffer.WrapSize bytes).
type Wrap struct {
	Member AccountID
	Epoch  uint64
	Data   []byte
}

// HistoryLink holds the key of Epoch sealed under a key derived from the key
// of Epoch+1 (coffer.HistoryLinkSize bytes).
type HistoryLink struct {
	Epoch uint64
	Data  []byte
}

// GroupInfo is what a member may see of a group without reading commits.
type GroupInfo struct {
	ID        GroupID
	HeadSeq   uint64
	HeadHash  [32]byte
	Epoch     uint64
	MetaEpoch uint64
	Meta      []byte // encrypted under the key of MetaEpoch
	Role      Role   // the caller's current role
}

// GroupAppend is a verified commit with everything stored atomically with
// it. The server builds it after running the chain verifier on Commit
// against the stored state Prev; State is the verifier's state after it.
type GroupAppend struct {
	Commit   SignedCommit
	Parsed   *Commit
	State    *GroupState
	PrevSeq  uint64 // 0 for genesis
	Wraps    []Wrap
	Links    []HistoryLink
	Meta     []byte // optional new encrypted group metadata, under State.Epoch
	Received time.Time
	// WrapStream, when not nil, supplies the wraps in place of Wraps, each
	// checked, as the request that carries them arrives; io.EOF follows
	// the last, after which Links and Meta are set. Any other error aborts
	// the append. The store copies the wraps in the commit's transaction,
	// so that they are never all held in memory (issue 16).
	WrapStream func() (Wrap, error)
	// AuthorKeys is, for a suite v2 commit after the genesis, the hash of
	// the member keys the author's entry named before it, which signed it.
	// The store requires them to be the author's current keys unless the
	// commit is the author's self-update (see MemberKeyService).
	AuthorKeys [32]byte
	// TreeCiphertexts are, in a tree group, the ciphertexts beside the
	// commit, checked by GroupState.ApplyTree; TreeChanged lists the tree
	// nodes the commit changed (ratchettree.ChangedNodes), which are all
	// the store rewrites of the tree.
	TreeCiphertexts []ratchettree.Ciphertext
	TreeChanged     []uint32
}

// GroupService stores groups and their commit chains.
type GroupService interface {
	// CreateGroup stores a group with its genesis. ECONFLICT if the id exists.
	CreateGroup(ctx context.Context, a *GroupAppend) error
	// GroupState returns the verified state after the stored head, for the
	// server to verify the next commit against. ENOTFOUND unless caller is
	// a member.
	GroupState(ctx context.Context, caller AccountID, g GroupID) (*GroupState, error)
	// AppendCommit stores a commit at PrevSeq+1. If another commit took that
	// seq first it returns ECONFLICT and the current head seq.
	AppendCommit(ctx context.Context, caller AccountID, a *GroupAppend) (head uint64, err error)
	// Groups lists the caller's groups ordered by id, after the cursor.
	Groups(ctx context.Context, caller AccountID, after GroupID, limit int) ([]GroupInfo, error)
	// Group returns one group, ENOTFOUND unless caller is a member.
	Group(ctx context.Context, caller AccountID, g GroupID) (*GroupInfo, error)
	// Commits returns up to limit commits with seq > after, in order.
	Commits(ctx context.Context, caller AccountID, g GroupID, after uint64, limit int) ([]SignedCommit, error)
	// Keys returns the caller's wraps for every epoch and all history links.
	Keys(ctx context.Context, caller AccountID, g GroupID) ([]Wrap, []HistoryLink, error)
	// TreeCiphertexts returns, of the tree ciphertexts beside commit seq of
	// a tree group, those sealed to a node above the caller's current leaf
	// (ratchettree.PathNodes), ordered by node then recipient. ENOTFOUND
	// unless caller is a member.
	TreeCiphertexts(ctx context.Context, caller AccountID, g GroupID, seq uint64) ([]ratchettree.Ciphertext, error)
	// TreeNodeKeys returns the public keys of nodes of a tree group's
	// tree at head seq, in the order asked: a committer whose verified
	// tree holds only their digests fetches the keys it seals to.
	// ENOTFOUND unless caller is a member, or for a blank node; ECONFLICT
	// when the head is not seq.
	TreeNodeKeys(ctx context.Context, caller AccountID, g GroupID, seq uint64, nodes []uint32) ([][]byte, error)
}

// UploadID names a resource upload in flight. The server assigns it.
type UploadID uuid

func NewUploadID() UploadID { return UploadID(newUUID()) }

func ParseUploadID(s string) (UploadID, error) {
	u, err := parseUUID("upload", s)
	return UploadID(u), err
}

func (id UploadID) String() string               { return uuid(id).String() }
func (id UploadID) IsZero() bool                 { return id == UploadID{} }
func (id UploadID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }
func (id UploadID) Value() (driver.Value, error) { return id.String(), nil }
func (id *UploadID) Scan(src any) error          { return (*uuid)(id).scan("upload", src) }
func (id *UploadID) UnmarshalText(b []byte) (err error) {
	*id, err = ParseUploadID(string(b))
	return err
}

// MaxResourceMetaSize caps a resource's encrypted metadata: 64 KiB of
// plaintext plus AES-256-GCM's nonce and tag.
const MaxResourceMetaSize = 64<<10 + 28

// MaxInlineContentSize is the most ciphertext (age file and chunk hash
// list) a resource version may keep in its row instead of a blob.
const MaxInlineContentSize = 64 << 10

// Resource is one version of a resource as the server stores it: the
// author's signed header, the encrypted metadata and where the ciphertext
// is. The server reads the header's fields but trusts none of them; readers
// verify everything against the membership log.
type Resource struct {
	ID          ResourceID
	Group       GroupID
	Version     uint64
	Author      AccountID
	Epoch       uint64
	Header      SignedHeader
	Meta        []byte // SealMetadata(LabelResourceMeta) ciphertext
	ContentHash [32]byte
	Size        int64 // ciphertext bytes
	// BlobKey names the blob holding the ciphertext, or Content holds it
	// (small resources, up to MaxInlineContentSize): exactly one is set.
	// Listings leave Content nil.
	BlobKey string
	Content []byte
	Created time.Time // when version 1 was stored (server clock)
	Updated time.Time // when this version was stored (server clock)

	// ChunkTree is the server's own index of a blob-backed version: its
	// chunk tree's stored hashes (content.ChunkHashes.StoredTree), set by
	// the server at finalize and used to prove range reads. Never read
	// back with the row; clients do not see it and trust no proof.
	ChunkTree []byte
}

// Upload is a resource version being written. Its content goes to a blob
// first; FinalizeUpload then makes it a Resource.
type Upload struct {
	ID       UploadID
	Resource ResourceID
	Group    GroupID
	Author   AccountID
	Version  uint64 // the version it becomes: 1 for a new resource
	// Size, ContentHash and one of BlobKey or Content (see Resource) are
	// set once the content arrived.
	BlobKey     string
	Content     []byte
	Size        int64
	ContentHash [32]byte
	Created     time.Time
	Updated     time.Time
	// WritingUntil is when the lease of a PUT writing the content runs
	// out (see LeaseUpload); zero when none holds it.
	WritingUntil time.Time
}

// ResourceCursor is a position in a group's newest-first resource listing.
// The zero value is the start.
type ResourceCursor struct {
	Created time.Time
	ID      ResourceID
}

// ResourceService stores resource rows and uploads; blob bytes are in a
// BlobStore. The server calls it. Every method enforces, inside its
// queries, that caller is a member of the group (ENOTFOUND otherwise) and,
// for writes, has at least the writer role (EFORBIDDEN for readers).
// Deleting or replacing a resource additionally needs the caller to be the
// author of its current version or an admin (EFORBIDDEN).
//
// Methods that make a blob unreferenced return its key; the caller deletes
// the blob after the transaction committed. If it cannot, the orphan-blob
// sweep will.
type ResourceService interface {
	// CreateUpload records u, whose ID, Resource, Group, Author (the caller)
	// and Version are set. For Version 1 the resource must not exist
	// (ECONFLICT) and the group's resources and pending uploads together
	// must number fewer than maxPerGroup (ELIMIT). For a later version the
	// resource must be at Version-1 (EPRECONDITION): that is the replace's
	// If-Match; and the group's pending uploads alone must number fewer
	// than maxPerGroup (ELIMIT).
	CreateUpload(ctx context.Context, caller AccountID, u *Upload, maxPerGroup int64) error
	// ReserveUpload reserves up to want bytes for the content of the
	// caller's upload id, replacing its earlier reservation, and returns
	// how many it granted: no more than leaves the caller's pending bytes
	// (over all its uploads, the larger of reserved and received bytes) at
	// most maxPending. ENOTFOUND for an upload that is not the caller's.
	ReserveUpload(ctx context.Context, caller AccountID, id UploadID, want, maxPending int64) (granted int64, err error)
	// Upload returns one of the caller's uploads; ENOTFOUND for others'.
	Upload(ctx context.Context, caller AccountID, id UploadID) (*Upload, error)
	// SetUploadContent records that the blob blobKey holds the upload's
	// content, and returns the blob of an earlier attempt ("" if none).
	// ENOTFOUND if the upload is gone (finalized, aborted or collected):
	// the caller then deletes blobKey.
	SetUploadContent(ctx context.Context, caller AccountID, id UploadID, blobKey string, size int64, hash [32]byte) (replaced string, err error)
	// SetUploadInline records content (at most MaxInlineContentSize bytes)
	// as the upload's content, kept in the row; otherwise as
	// SetUploadContent.
	SetUploadInline(ctx context.Context, caller AccountID, id UploadID, content []byte, hash [32]byte) (replaced string, err error)
	// LeaseUpload records that this replica is writing the blob blobKey
	// for the caller's upload id, until d from now; it is called again to
	// renew. While the lease holds, the collector of every replica leaves
	// the upload and that blob alone. SetUploadContent ends it. ENOTFOUND
	// if the upload is gone.
	LeaseUpload(ctx context.Context, caller AccountID, id UploadID, blobKey string, d time.Duration) error
	// ReleaseUpload ends the lease on upload id for blobKey, if it still
	// holds it, when writing failed: the upload is then as idle as its
	// last activity says.
	ReleaseUpload(ctx context.Context, caller AccountID, id UploadID, blobKey string) error
	// DeleteUpload aborts one of the caller's uploads and returns its blob.
	DeleteUpload(ctx context.Context, caller AccountID, id UploadID) (blobKey string, err error)
	// FinalizeUpload makes the caller's upload id the resource version r, in
	// one transaction: the upload row goes and the resource row appears or
	// moves to r.Version. r must match the upload (resource, group, author,
	// version, blob, size, hash: EINVALID otherwise). r.Epoch must be the
	// group's current epoch (ESTALEKEY), so nothing is ever stored under a
	// key that a removed member holds. The limits and preconditions of
	// CreateUpload are checked again. It fills in r.Created and r.Updated
	// and returns the blob of the version it replaced ("" for version 1).
	FinalizeUpload(ctx context.Context, caller AccountID, id UploadID, r *Resource, maxPerGroup int64) (replaced string, err error)
	// Resources lists up to limit resources of g after the cursor, newest
	// (by Created) first.
	Resources(ctx context.Context, caller AccountID, g GroupID, after ResourceCursor, limit int) ([]Resource, error)
	// Resource returns the current version of one resource.
	Resource(ctx context.Context, caller AccountID, g GroupID, id ResourceID) (*Resource, error)
	// DeleteResource deletes a resource and returns its blob. del is the
	// caller's signed tombstone (the handler checked its signature): it
	// must name g, id and the caller, and the current version
	// (EPRECONDITION otherwise). The tombstone is logged.
	DeleteResource(ctx context.Context, caller AccountID, g GroupID, id ResourceID, del SignedDelete) (blobKey string, err error)
}

// LogRef names a logged object: an account's identity (Account set), a
// group commit (Group and Seq set), or a version of a resource (Group,
// Resource and Version set).
type LogRef struct {
	Account  AccountID
	Group    GroupID
	Seq      uint64
	Resource ResourceID
	Version  uint64
}

// LogProof is the position of a logged object in the transparency log and
// its inclusion proof in a tree of a given size. Index is -1 when the object
// is not (yet) in that tree. Leaf is set for a resource version, whose leaf
// (hashes and ids only) the asker cannot rebuild from what it holds.
type LogProof struct {
	Ref   LogRef
	Index int64
	Proof [][32]byte
	Leaf  []byte
}

// LogService serves the transparency log: signed checkpoints, leaves and
// proofs. All of it is public: auditors and witnesses read it without an
// account. Sizes larger than the current tree get ENOTFOUND.
type LogService interface {
	// LogCheckpoint returns the latest signed checkpoint note, or
	// EUNAVAILABLE before the first one is signed.
	LogCheckpoint(ctx context.Context) (string, error)
	// LogLeaves returns up to limit consecutive leaves from start (fewer
	// when they are large, at least one when start is below the tree size).
	LogLeaves(ctx context.Context, start int64, limit int) ([][]byte, error)
	// LogInclusionProof proves leaf index in the tree of size.
	LogInclusionProof(ctx context.Context, index, size int64) ([][32]byte, error)
	// LogConsistencyProof proves the tree of size old a prefix of the tree
	// of size new.
	LogConsistencyProof(ctx context.Context, old, new int64) ([][32]byte, error)
	// LogProofs finds each referenced object's leaf and proves it in the
	// tree of size.
	LogProofs(ctx context.Context, size int64, refs []LogRef) ([]LogProof, error)
}
