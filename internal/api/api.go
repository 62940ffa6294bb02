// Package api holds the JSON request and response bodies of Coffer's HTTP
// API, shared by the server and the client library so the two cannot drift.
// Byte fields are base64 (standard alphabet, padded), as encoding/json does
// for []byte. docs/openapi.yaml describes the same shapes.
package api

import (
	"time"

	"github.com/cofferhq/coffer"
)

// Problem is an RFC 9457 application/problem+json body. Code is stable and
// maps back to coffer.Code on the client.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
	Rule   string `json:"rule,omitempty"`
	// HeadSeq is set on a 409 from a commit append: the current head.
	HeadSeq uint64 `json:"head_seq,omitempty"`
}

type RegisterRequest struct {
	Identity      []byte `json:"identity"`       // canonical coffer.PublicIdentity
	SelfSignature []byte `json:"self_signature"` // under coffer.LabelIdentity
	// Genesis registers a suite v2 account: its chain's genesis link, whose
	// state's identity must be Identity. The account id is the chain's.
	Genesis *SignedLink `json:"genesis,omitempty"`
}

type Account struct {
	ID            coffer.AccountID `json:"id"`
	Handle        coffer.Handle    `json:"handle"`
	Identity      []byte           `json:"identity"`
	SelfSignature []byte           `json:"self_signature"`
	CreatedAt     time.Time        `json:"created_at"`
	// ChainSeq is the head of a suite v2 account's chain; 0 for suite v1.
	ChainSeq uint64 `json:"chain_seq"`
}

type ChallengeRequest struct {
	Handle coffer.Handle `json:"handle"`
}

type ChallengeResponse struct {
	AccountID coffer.AccountID `json:"account_id"`
	Challenge []byte           `json:"challenge"`
	ExpiresAt time.Time        `json:"expires_at"`
}

type LoginRequest struct {
	AccountID coffer.AccountID `json:"account_id"`
	Origin    string           `json:"origin"`
	Challenge []byte           `json:"challenge"`
	Signature []byte           `json:"signature"` // over coffer.LoginStatement, or DeviceLoginStatement with DeviceID
	// DeviceID is set by a device of a suite v2 account: Signature is then
	// that device's hybrid signature over coffer.DeviceLoginStatement.
	DeviceID *coffer.DeviceID `json:"device_id,omitempty"`
}

type Tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"` // "Bearer"
	ExpiresIn    int    `json:"expires_in"` // seconds
	RefreshToken string `json:"refresh_token"`
}

type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type SignedCommit struct {
	Body      []byte `json:"body"`
	Signature []byte `json:"signature"`
}

type Wrap struct {
	Member coffer.AccountID `json:"member"`
	Epoch  uint64           `json:"epoch"`
	Wrap   []byte           `json:"wrap"`
}

type HistoryLink struct {
	Epoch uint64 `json:"epoch"`
	Link  []byte `json:"link"`
}

// CommitRequest creates a group (with a genesis commit) or appends to one.
type CommitRequest struct {
	Commit SignedCommit  `json:"commit"`
	Wraps  []Wrap        `json:"wraps"`
	Links  []HistoryLink `json:"links,omitempty"`
	Meta   []byte        `json:"meta,omitempty"`
	// TreeCiphertexts travel beside a tree group's commit: exactly one
	// per (refreshed node, resolution node), in ratchettree's order.
	TreeCiphertexts []TreeCiphertext `json:"tree_ciphertexts,omitempty"`
	// TreeKeys travel beside a tree group's commit too: the public keys
	// its signed tree part names by digest, in ratchettree's order
	// (Commit.Keys), 1,216 bytes each.
	TreeKeys [][]byte `json:"tree_keys,omitempty"`
}

// TreeCiphertext is a node secret of a tree commit sealed to a recipient
// node (1,168 bytes).
type TreeCiphertext struct {
	Node      uint32 `json:"node"`
	Recipient uint32 `json:"recipient"`
	Sealed    []byte `json:"sealed"`
}

// TreeCiphertextList answers GET /v1/groups/{id}/commits/{seq}/tree-ciphertexts:
// the ciphertexts of that commit sealed to a node above the caller's leaf.
type TreeCiphertextList struct {
	Ciphertexts []TreeCiphertext `json:"ciphertexts"`
}

// TreeNodeKeys answers GET /v1/groups/{id}/tree-nodes?seq=&nodes=: the
// public keys of those nodes of the tree at head seq, in the order asked.
type TreeNodeKeys struct {
	Keys [][]byte `json:"keys"`
}

// MaxTreeNodesPerRequest caps the nodes of one tree-nodes request.
const MaxTreeNodesPerRequest = 512

type Group struct {
	ID        coffer.GroupID `json:"id"`
	HeadSeq   uint64         `json:"head_seq"`
	HeadHash  []byte         `json:"head_hash"`
	Epoch     uint64         `json:"epoch"`
	MetaEpoch uint64         `json:"meta_epoch,omitempty"`
	Meta      []byte         `json:"meta,omitempty"`
	Role      coffer.Role    `json:"role"`
}

type GroupList struct {
	Groups     []Group `json:"groups"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

type CommitList struct {
	Commits []SignedCommit `json:"commits"`
}

type Keys struct {
	Wraps []Wrap        `json:"wraps"`
	Links []HistoryLink `json:"links"`
}

// SignedHeader is a coffer.SignedHeader: the author's canonical resource
// header encoding and the Ed25519 signature over it.
type SignedHeader struct {
	Body      []byte `json:"body"`
	Signature []byte `json:"signature"`
}

// CreateResourceRequest starts the upload of a new resource whose id the
// client chose.
type CreateResourceRequest struct {
	ResourceID coffer.ResourceID `json:"resource_id"`
}

// Upload is a resource version being written. PUT the ciphertext to
// /v1/uploads/{id}/content, then POST a FinalizeRequest to
// /v1/uploads/{id}/finalize.
type Upload struct {
	ID         coffer.UploadID   `json:"id"`
	ResourceID coffer.ResourceID `json:"resource_id"`
	GroupID    coffer.GroupID    `json:"group_id"`
	Version    uint64            `json:"version"`
	// Epoch is the group's current epoch: the header must carry it.
	Epoch   uint64 `json:"epoch"`
	MaxSize int64  `json:"max_size"` // the largest ciphertext the server accepts
}

// UploadStatus is an upload and how much of its content the server holds.
type UploadStatus struct {
	Upload
	// Received is the durable offset of the content: where a PUT with
	// Upload-Offset continues.
	Received int64 `json:"received"`
	// Writing says a PUT of the content is still in progress (or was cut
	// off so recently that the server has not yet kept what it received).
	Writing bool `json:"writing"`
}

// UploadContent is what the server received of an upload's content.
type UploadContent struct {
	Size        int64  `json:"size"`
	ContentHash []byte `json:"content_hash"` // SHA-256 of the bytes received
}

// DeleteResourceRequest is the body of DELETE
// /v1/groups/{g}/resources/{id}: the deleter's signed tombstone
// (coffer.SignedDelete), naming the group, the resource, its current
// version and the deleter. The server logs it as it is.
type DeleteResourceRequest struct {
	Delete SignedHeader `json:"delete"`
}

// FinalizeRequest completes an upload with the author's signed header and
// the encrypted metadata whose hash the header carries.
type FinalizeRequest struct {
	Header SignedHeader `json:"header"`
	Meta   []byte       `json:"meta"`
}

// Resource is the current version of a resource. Content is set only on
// a GET of one resource with ?include=content, for small resources: the
// whole stored ciphertext, the age file followed by its chunk hash list.
type Resource struct {
	ID        coffer.ResourceID `json:"id"`
	GroupID   coffer.GroupID    `json:"group_id"`
	Version   uint64            `json:"version"`
	AuthorID  coffer.AccountID  `json:"author_id"`
	Epoch     uint64            `json:"epoch"`
	Header    SignedHeader      `json:"header"`
	Meta      []byte            `json:"meta"`
	Size      int64             `json:"size"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	Content   []byte            `json:"content,omitempty"`
	// Checkpoint is the log's latest checkpoint note when the reader asked
	// for it (?include=checkpoint), as GET /v1/log/checkpoint serves it.
	Checkpoint string `json:"checkpoint,omitempty"`
}

type ResourceList struct {
	Resources  []Resource `json:"resources"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// LogInclusion is an inclusion proof of leaf Index in the tree of Size.
type LogInclusion struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Proof [][]byte `json:"proof"`
}

// LogConsistency proves the tree of Old a prefix of the tree of New.
type LogConsistency struct {
	Old   int64    `json:"old"`
	New   int64    `json:"new"`
	Proof [][]byte `json:"proof"`
}

// LogLeaves is a page of consecutive leaves from Start.
type LogLeaves struct {
	Start  int64    `json:"start"`
	Leaves [][]byte `json:"leaves"`
}

// LogCommitRef names a commit in a LogProofsRequest.
type LogCommitRef struct {
	Group coffer.GroupID `json:"group"`
	Seq   uint64         `json:"seq"`
}

// LogVersionRef names one version of a resource in a LogProofsRequest.
type LogVersionRef struct {
	Group    coffer.GroupID    `json:"group"`
	Resource coffer.ResourceID `json:"resource"`
	Version  uint64            `json:"version"`
}

// LogProofsRequest asks for the leaves of commits, identities and resource
// versions with their inclusion proofs in the tree of Size.
type LogProofsRequest struct {
	Size     int64              `json:"size"`
	Commits  []LogCommitRef     `json:"commits,omitempty"`
	Accounts []coffer.AccountID `json:"accounts,omitempty"`
	Versions []LogVersionRef    `json:"versions,omitempty"`
}

// LogProof is one answer of LogProofs: the object's leaf index and its
// inclusion proof, or Included false when the object is not (yet) in the
// tree of the requested size.
type LogProof struct {
	Group    *coffer.GroupID    `json:"group,omitempty"`
	Seq      uint64             `json:"seq,omitempty"`
	Account  *coffer.AccountID  `json:"account,omitempty"`
	Resource *coffer.ResourceID `json:"resource,omitempty"`
	Version  uint64             `json:"version,omitempty"`
	Included bool               `json:"included"`
	Index    int64              `json:"index"`
	Proof    [][]byte           `json:"proof,omitempty"`
	// Leaf is a resource version's log leaf, which the asker cannot
	// rebuild: it names the version's author.
	Leaf []byte `json:"leaf,omitempty"`
}

// LogProofs answers a LogProofsRequest, in request order: commits, then
// accounts, then resource versions.
type LogProofs struct {
	Size     int64      `json:"size"`
	Commits  []LogProof `json:"commits"`
	Accounts []LogProof `json:"accounts"`
	Versions []LogProof `json:"versions,omitempty"`
}

// MapKeyRef names one heads-map entry in a MapProofsRequest: an account, a
// group, or a resource of a group.
type MapKeyRef struct {
	Kind     string             `json:"kind"` // "account", "account-chain", "group" or "resource"
	Account  *coffer.AccountID  `json:"account,omitempty"`
	Group    *coffer.GroupID    `json:"group,omitempty"`
	Resource *coffer.ResourceID `json:"resource,omitempty"`
}

// MapProofsRequest asks for heads-map entries with their proofs in the map
// of the signed checkpoint of log size Size.
type MapProofsRequest struct {
	Size int64       `json:"size"`
	Keys []MapKeyRef `json:"keys"`
}

// MapProof is one answer: the entry (translog.MapEntry encoding), its index
// in the map and its record proof, or Index -1 and nothing else when the
// map of that checkpoint holds no entry for the key.
type MapProof struct {
	Index int64    `json:"index"`
	Entry []byte   `json:"entry,omitempty"`
	Proof [][]byte `json:"proof,omitempty"`
}

// MapProofs answers a MapProofsRequest in request order.
type MapProofs struct {
	Size   int64      `json:"size"`
	Proofs []MapProof `json:"proofs"`
}

// DeviceState is GET and PUT /v1/account-state: a suite v2 account's
// device state, encrypted by its devices. Version 0 with no ciphertext is
// the state before the first write; a PUT carries the version it creates,
// the stored one plus one.
type DeviceState struct {
	Version    uint64 `json:"version"`
	Ciphertext []byte `json:"ciphertext"`
}
