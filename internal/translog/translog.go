// Package translog is Coffer's transparency log format: the encoding of log
// leaves, the signed checkpoint, and the checks of inclusion and consistency
// proofs. It is pure (no I/O) and shared by the server, which appends and
// signs, by clientlib, which verifies what it relies on, and by coffer-audit,
// which mirrors and re-verifies the whole log.
//
// The construction, in plain words:
//
//   - The log is one RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog) over
//     every identity registration and every group commit of a deployment.
//     Nothing here hashes a tree by hand: record hashes, stored hashes, tree
//     hashes and proofs all come from tlog.
//   - A leaf is the byte string LabelLogLeaf ‖ 0 ‖ kind ‖ fields, where the
//     fields are exactly what a reader needs to re-verify the entry from the
//     log alone: for an identity, the account id, the canonical identity
//     encoding and its self-signature; for a commit, the group id, the seq,
//     the exact signed commit body and the author's signature. The label
//     carries the version (v1); a later format gets a new label.
//   - A checkpoint is the C2SP tlog-checkpoint text (origin line, decimal
//     tree size, base64 root hash) plus two extension lines, the heads map
//     (headsmap.go) and the signing time, in a signed note (golang.org/x/
//     mod/sumdb/note) by the log's Ed25519 key. The key's name is the
//     origin, so a checkpoint of one deployment never verifies as another's.
//   - Witnesses cosign checkpoints with C2SP tlog-cosignature/v1
//     signatures (cosign.go), which carry the witness's own timestamp.
package translog

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
)

// Kind is the kind of a log leaf. Kinds are append-only.
type Kind uint8

const (
	KindIdentity Kind = 1 // an identity registration (or, in a later suite, a key change)
	KindCommit   Kind = 2 // a group commit
	// KindResourceVersion and KindResourceDelete are in resourceleaf.go.
)

func (k Kind) String() string {
	switch k {
	case KindIdentity:
		return "identity"
	case KindCommit:
		return "commit"
	case KindResourceVersion:
		return "resource-version"
	case KindResourceDelete:
		return "resource-delete"
	case KindAccountLink:
		return "account-link"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MaxLeafSize bounds a leaf: a commit of the largest allowed size, its
// signature (hybrid in suite v2) and its framing.
const MaxLeafSize = coffer.MaxCommitSize + coffer.HybridSignatureSize + 1024

var leafPrefix = coffer.SignedMessage(coffer.LabelLogLeaf, nil)

// Leaf is a parsed log entry.
type Leaf struct {
	Kind Kind

	// KindIdentity
	Account       coffer.AccountID
	Identity      []byte // canonical coffer.PublicIdentity encoding
	SelfSignature []byte

	// KindCommit
	Group  coffer.GroupID
	Seq    uint64
	Commit coffer.SignedCommit

	// KindResourceVersion and KindResourceDelete (and Group, above)
	Resource coffer.ResourceID
	Version  coffer.LoggedVersion
	// KindResourceDelete
	Delete coffer.SignedDelete

	// KindAccountLink (and Account, Seq above)
	Link coffer.SignedLink
}

// IdentityLeaf encodes the log entry of an account registration:
//
//	"coffer/v1/log-leaf" 0x00
//	kind           uint8 = 1
//	account        [16]byte
//	identity       <uint16 length> canonical identity
//	self_signature [64]byte
func IdentityLeaf(account coffer.AccountID, identity, selfSignature []byte) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(leafPrefix)+1+16+2+len(identity)+len(selfSignature)))
	b.AddBytes(leafPrefix)
	b.AddUint8(uint8(KindIdentity))
	b.AddBytes(account[:])
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(identity) })
	b.AddBytes(selfSignature)
	return b.BytesOrPanic()
}

// CommitLeaf encodes the log entry of a group commit:
//
//	"coffer/v1/log-leaf" 0x00
//	kind      uint8 = 2
//	group     [16]byte
//	seq       uint64
//	body      <uint32 length> the exact signed commit body
//	signature [64]byte
func CommitLeaf(g coffer.GroupID, seq uint64, sc coffer.SignedCommit) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(leafPrefix)+1+16+8+4+len(sc.Body)+len(sc.Signature)))
	b.AddBytes(leafPrefix)
	b.AddUint8(uint8(KindCommit))
	b.AddBytes(g[:])
	b.AddUint64(seq)
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sc.Body) })
	b.AddBytes(sc.Signature)
	return b.BytesOrPanic()
}

// ParseLeaf parses a leaf. It checks the framing and sizes only; Verify
// checks what the leaf says.
func ParseLeaf(data []byte) (*Leaf, error) {
	if len(data) > MaxLeafSize {
		return nil, errors.New("translog: leaf too large")
	}
	if !strings.HasPrefix(string(data), string(leafPrefix)) {
		return nil, errors.New("translog: leaf does not start with the log-leaf label")
	}
	s := cryptobyte.String(data[len(leafPrefix):])
	var (
		kind uint8
		l    Leaf
		id   []byte
		sig  []byte
	)
	if !s.ReadUint8(&kind) {
		return nil, errors.New("translog: truncated leaf")
	}
	l.Kind = Kind(kind)
	switch l.Kind {
	case KindIdentity:
		var ident cryptobyte.String
		if !s.ReadBytes(&id, 16) || !s.ReadUint16LengthPrefixed(&ident) || !s.ReadBytes(&sig, coffer.SignatureSize) || !s.Empty() {
			return nil, errors.New("translog: malformed identity leaf")
		}
		copy(l.Account[:], id)
		l.Identity = append([]byte(nil), ident...)
		l.SelfSignature = append([]byte(nil), sig...)
	case KindCommit:
		var (
			n    uint32
			body []byte
		)
		if !s.ReadBytes(&id, 16) || !s.ReadUint64(&l.Seq) || !s.ReadUint32(&n) || !s.ReadBytes(&body, int(n)) ||
			!s.ReadBytes(&sig, commitSignatureSize(body)) || !s.Empty() {
			return nil, errors.New("translog: malformed commit leaf")
		}
		copy(l.Group[:], id)
		l.Commit = coffer.SignedCommit{Body: append([]byte(nil), body...), Signature: append([]byte(nil), sig...)}
	case KindResourceVersion, KindResourceDelete:
		if err := l.parseResource(&s); err != nil {
			return nil, err
		}
	case KindAccountLink:
		if err := l.parseAccountLink(&s); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("translog: unknown leaf kind %d", kind)
	}
	return &l, nil
}

// Marshal re-encodes l; ParseLeaf(l.Marshal()) round-trips.
func (l *Leaf) Marshal() []byte {
	switch l.Kind {
	case KindIdentity:
		return IdentityLeaf(l.Account, l.Identity, l.SelfSignature)
	case KindResourceVersion:
		return ResourceVersionLeaf(l.Version)
	case KindResourceDelete:
		return ResourceDeleteLeaf(l.Delete)
	case KindAccountLink:
		return AccountLinkLeaf(l.Account, l.Seq, l.Link)
	}
	return CommitLeaf(l.Group, l.Seq, l.Commit)
}

// VerifyIdentity parses the identity of an identity leaf and checks its
// self-signature.
func (l *Leaf) VerifyIdentity() (coffer.PublicIdentity, error) {
	if l.Kind != KindIdentity {
		return coffer.PublicIdentity{}, errors.New("translog: not an identity leaf")
	}
	id, err := coffer.ParsePublicIdentity(l.Identity)
	if err != nil {
		return id, err
	}
	return id, id.VerifySelfSignature(l.SelfSignature)
}

// ParseCommit parses the commit of a commit leaf and checks that the leaf's
// group and seq are the commit's own. The signature is checked by
// VerifyCommit, which needs the author's key.
func (l *Leaf) ParseCommit() (*coffer.Commit, error) {
	if l.Kind != KindCommit {
		return nil, errors.New("translog: not a commit leaf")
	}
	c, err := coffer.ParseCommit(l.Commit.Body)
	if err != nil {
		return nil, err
	}
	if c.Group != l.Group || c.Seq != l.Seq {
		return nil, fmt.Errorf("translog: leaf names group %s seq %d, its commit group %s seq %d", l.Group, l.Seq, c.Group, c.Seq)
	}
	return c, nil
}

// RecordHash is the tlog record hash of a leaf.
func RecordHash(leaf []byte) tlog.Hash { return tlog.RecordHash(leaf) }

// Checkpoint is a log checkpoint: the origin, the tree size and the root
// hash, in C2SP tlog-checkpoint form, with two extension lines that commit
// to the current state (the heads map, see headsmap.go) and to the time the
// log signed it:
//
//	<origin>
//	<tree size>
//	<base64 root hash>
//	coffer-map <map size> <base64 map root>
//	coffer-time <unix seconds>
type Checkpoint struct {
	Origin  string
	Size    int64
	Root    tlog.Hash
	MapSize int64
	MapRoot tlog.Hash
	Time    int64 // Unix seconds
}

// Text returns the checkpoint body. (tlog.FormatTree would hard-code the Go
// checksum database origin.)
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n" +
		"coffer-map " + strconv.FormatInt(c.MapSize, 10) + " " + base64.StdEncoding.EncodeToString(c.MapRoot[:]) + "\n" +
		"coffer-time " + strconv.FormatInt(c.Time, 10) + "\n"
}

// SameTree reports whether c and o commit to the same log and the same
// state; they may differ only in time. A witness never cosigns two
// checkpoints of one size that are not SameTree.
func (c Checkpoint) SameTree(o Checkpoint) bool {
	return c.Origin == o.Origin && c.Size == o.Size && c.Root == o.Root && c.MapSize == o.MapSize && c.MapRoot == o.MapRoot
}

func parseCount(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0 && strconv.FormatInt(n, 10) == s
}

func parseHash(s string) (tlog.Hash, bool) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize || base64.StdEncoding.EncodeToString(b) != s {
		return h, false
	}
	copy(h[:], b)
	return h, true
}

// ParseCheckpointText parses a checkpoint body: exactly the five lines Text
// writes, each in canonical form, so that one checkpoint has one encoding.
func ParseCheckpointText(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.Split(text, "\n")
	if len(lines) != 6 || lines[5] != "" {
		return c, errors.New("translog: a checkpoint is exactly five lines")
	}
	if lines[0] == "" {
		return c, errors.New("translog: empty checkpoint origin")
	}
	var ok bool
	if c.Size, ok = parseCount(lines[1]); !ok {
		return c, errors.New("translog: malformed checkpoint tree size")
	}
	if c.Root, ok = parseHash(lines[2]); !ok {
		return c, errors.New("translog: malformed checkpoint root hash")
	}
	m := strings.Split(lines[3], " ")
	if len(m) != 3 || m[0] != "coffer-map" {
		return c, errors.New("translog: the fourth checkpoint line must be the heads map: coffer-map <size> <root>")
	}
	if c.MapSize, ok = parseCount(m[1]); !ok {
		return c, errors.New("translog: malformed heads map size")
	}
	if c.MapRoot, ok = parseHash(m[2]); !ok {
		return c, errors.New("translog: malformed heads map root")
	}
	t, found := strings.CutPrefix(lines[4], "coffer-time ")
	if !found {
		return c, errors.New("translog: the fifth checkpoint line must be the time: coffer-time <unix seconds>")
	}
	if c.Time, ok = parseCount(t); !ok {
		return c, errors.New("translog: malformed checkpoint time")
	}
	c.Origin = lines[0]
	return c, nil
}

// Signer signs checkpoints of one log.
type Signer struct {
	origin    string
	signer    note.Signer
	vkey      string
	signerKey string
}

// NewSigner returns a signer for the log named origin with key. The note key
// name is the origin.
func NewSigner(origin string, key ed25519.PrivateKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("translog: log key must be an Ed25519 private key")
	}
	vkey, err := note.NewEd25519VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("translog: %w", err)
	}
	// The signer key format is name+hash+base64(alg ‖ seed); the verifier
	// key already carries the name and hash note computed for us.
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("translog: log origin %q is not a valid note key name", origin)
	}
	skey := "PRIVATE+KEY+" + parts[0] + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("translog: log origin %q: %w", origin, err)
	}
	return &Signer{origin: origin, signer: s, vkey: vkey, signerKey: skey}, nil
}

// Origin returns the log's origin line.
func (s *Signer) Origin() string { return s.origin }

// VerifierKey returns the note verifier key that clients and auditors pin.
func (s *Signer) VerifierKey() string { return s.vkey }

// Sign returns the signed note of cp under this log's origin (cp.Origin is
// ignored and set).
func (s *Signer) Sign(cp Checkpoint) (string, error) {
	cp.Origin = s.origin
	msg, err := note.Sign(&note.Note{Text: cp.Text()}, s.signer)
	if err != nil {
		return "", fmt.Errorf("translog: sign checkpoint: %w", err)
	}
	return string(msg), nil
}

// Verifier checks checkpoints of one log.
type Verifier struct {
	vkey string
	v    note.Verifier
}

// NewVerifier parses a note verifier key (name+hash+key).
func NewVerifier(vkey string) (*Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("translog: log verifier key: %w", err)
	}
	return &Verifier{vkey: strings.TrimSpace(vkey), v: v}, nil
}

// Key returns the verifier key string.
func (v *Verifier) Key() string { return v.vkey }

// Origin returns the origin the key is for.
func (v *Verifier) Origin() string { return v.v.Name() }

// Open verifies a signed checkpoint note and returns the checkpoint. The
// note must carry a valid signature by this key, and the checkpoint's
// origin must be the key's name.
func (v *Verifier) Open(signed string) (Checkpoint, error) {
	n, err := note.Open([]byte(signed), note.VerifierList(v.v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("translog: checkpoint signature: %w", err)
	}
	c, err := ParseCheckpointText(n.Text)
	if err != nil {
		return c, err
	}
	if c.Origin != v.v.Name() {
		return c, fmt.Errorf("translog: checkpoint of log %q, not %q", c.Origin, v.v.Name())
	}
	return c, nil
}

// CheckInclusion checks that leaf is entry index of the tree of cp.
func CheckInclusion(cp Checkpoint, index int64, leaf []byte, proof tlog.RecordProof) error {
	if index < 0 || index >= cp.Size {
		return fmt.Errorf("translog: leaf index %d is outside a tree of size %d", index, cp.Size)
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Root, index, RecordHash(leaf)); err != nil {
		return fmt.Errorf("translog: leaf %d is not in the tree of size %d: %w", index, cp.Size, err)
	}
	return nil
}

// CheckConsistency checks that the tree of older is a prefix of the tree of
// newer. Equal sizes need equal roots and no proof.
func CheckConsistency(older, newer Checkpoint, proof tlog.TreeProof) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("translog: checkpoints of different logs %q and %q", older.Origin, newer.Origin)
	}
	if older.Size > newer.Size {
		return fmt.Errorf("translog: tree of size %d cannot be a prefix of one of size %d", older.Size, newer.Size)
	}
	if older.Size == newer.Size {
		if older.Root != newer.Root {
			return fmt.Errorf("translog: two trees of size %d with different roots: the log forked", older.Size)
		}
		return nil
	}
	if older.Size == 0 {
		return nil
	}
	if err := tlog.CheckTree(proof, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return fmt.Errorf("translog: the tree of size %d is not a prefix of the tree of size %d: the log forked: %w", older.Size, newer.Size, err)
	}
	return nil
}

// HashesToBytes and BytesToHashes convert proofs for JSON transport.
func HashesToBytes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// maxProofHashes bounds a proof received: no tree needs more.
const maxProofHashes = 128

// BytesToHashes converts a proof received as byte strings, refusing any
// that is not a hash.
func BytesToHashes(bs [][]byte) ([]tlog.Hash, error) {
	if len(bs) > maxProofHashes {
		return nil, errors.New("translog: proof too long")
	}
	return AppendHashes(make([]tlog.Hash, 0, len(bs)), bs)
}

// AppendHashes is BytesToHashes appending the proof to dst, so that the
// proofs of a batch can share one allocation: the proof is the result past
// len(dst). On an error dst is returned as it was.
func AppendHashes(dst []tlog.Hash, bs [][]byte) ([]tlog.Hash, error) {
	if len(bs) > maxProofHashes {
		return dst, errors.New("translog: proof too long")
	}
	for _, b := range bs {
		if len(b) != tlog.HashSize {
			return dst, errors.New("translog: proof hash of the wrong size")
		}
	}
	for _, b := range bs {
		dst = append(dst, tlog.Hash(b))
	}
	return dst, nil
}

// Frontier returns the stored-hash indexes of the complete subtrees that make
// up a tree of size n, largest first: exactly the hashes that tlog.TreeHash
// reads, and the only earlier hashes that appending to the tree reads. A
// mirror that keeps them can extend the tree without keeping all of it.
func Frontier(n int64) []int64 {
	var out []int64
	var start int64
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			out = append(out, tlog.StoredHashIndex(level, start>>level))
			start += 1 << level
		}
	}
	return out
}

// commitSignatureSize is the size of the signature that follows a commit
// body in its leaf: the body's version byte says which suite signed it
// (hybrid for suite v2). The verifier checks the suite itself.
func commitSignatureSize(body []byte) int {
	if len(body) > 0 && (body[0] == coffer.SuiteV2 || body[0] == coffer.CommitVersionTree) {
		return coffer.HybridSignatureSize
	}
	return coffer.SignatureSize
}
