package api

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"mime"
	"slices"
	"strings"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// LogProofsType is the media type of the compact encoding of a LogProofs
// answer (POST /v1/log/proofs), which a client asks for with Accept. A
// sync proves every commit it reads in the log, a thousand per request,
// each with a proof of about 14 hashes: in JSON every hash is a base64
// string, and decoding them cost the client about a sixth of a long sync
// (0.26 s of 1.45 s for 10,000 commits). Here the hashes are raw, 32
// bytes each:
//
//	version      uint8 = 1
//	size         int64
//	commits      uint32, the number of commit proofs
//	accounts     uint32, the number of account proofs
//	versions     uint32, the number of resource version proofs
//	then commits + accounts + versions proofs, in that order, each:
//	  flags      uint8: bit 0 included, bit 1 group, bit 2 account,
//	             bit 3 resource; the other bits are zero
//	  group      16 bytes, when bit 1 is set
//	  account    16 bytes, when bit 2 is set
//	  resource   16 bytes, when bit 3 is set
//	  seq        uint64
//	  version    uint64
//	  index      int64
//	  proof      uint8 count (at most MaxLogProofHashes), count × 32 bytes
//	  leaf       uint32 length (at most translog.MaxLeafSize), bytes
//
// All integers are big-endian. Every field of a LogProof is carried, so a
// JSON answer and its compact encoding say the same thing. The bytes are
// untrusted like any response: ParseLogProofs bounds every count and
// length before it allocates, and the client checks each proof exactly as
// from JSON. The encoding is canonical: an answer has one encoding (an
// empty proof or leaf is the same as none).
const LogProofsType = "application/vnd.coffer.log-proofs"

// logProofsVersion is the version of LogProofsType.
const logProofsVersion = 1

// MaxLogProofHashes bounds the hashes of one inclusion proof. A tree of
// fewer than 2^63 leaves (its size is an int64) needs at most 63.
const MaxLogProofHashes = 64

// Flags of one proof in LogProofsType.
const (
	logProofIncluded = 1 << iota
	logProofGroup
	logProofAccount
	logProofResource
	logProofFlags = logProofIncluded | logProofGroup | logProofAccount | logProofResource
)

const (
	// logProofsHeader is the size of the version, size and counts.
	logProofsHeader = 1 + 8 + 3*4
	// minLogProof is the size of a proof with no ids, hashes or leaf:
	// flags, seq, version, index, the hash count and the leaf length.
	minLogProof = 1 + 3*8 + 1 + 4
	hashSize    = 32
)

// AppendLogProofs appends the encoding of p to b. It fails on a proof of
// more than MaxLogProofHashes hashes, a hash that is not 32 bytes and a
// leaf over translog.MaxLeafSize, which a server would otherwise send and
// every client refuse.
func AppendLogProofs(b []byte, p *LogProofs) ([]byte, error) {
	n := logProofsHeader
	for _, list := range [][]LogProof{p.Commits, p.Accounts, p.Versions} {
		if uint64(len(list)) > 1<<32-1 {
			return b, fmt.Errorf("log proofs: %d proofs in one list", len(list))
		}
		for i := range list {
			lp := &list[i]
			if len(lp.Proof) > MaxLogProofHashes {
				return b, fmt.Errorf("log proofs: a proof of %d hashes, over the bound of %d", len(lp.Proof), MaxLogProofHashes)
			}
			for _, h := range lp.Proof {
				if len(h) != hashSize {
					return b, fmt.Errorf("log proofs: a proof hash of %d bytes", len(h))
				}
			}
			if len(lp.Leaf) > translog.MaxLeafSize {
				return b, fmt.Errorf("log proofs: a leaf of %d bytes, over the bound of %d", len(lp.Leaf), translog.MaxLeafSize)
			}
			n += minLogProof + 3*16 + hashSize*len(lp.Proof) + len(lp.Leaf)
		}
	}
	b = slices.Grow(b, n)
	b = append(b, logProofsVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Size))
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.Commits)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.Accounts)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.Versions)))
	for _, list := range [][]LogProof{p.Commits, p.Accounts, p.Versions} {
		for i := range list {
			b = appendLogProof(b, &list[i])
		}
	}
	return b, nil
}

// appendLogProof appends one proof, which AppendLogProofs checked.
func appendLogProof(b []byte, lp *LogProof) []byte {
	var flags byte
	if lp.Included {
		flags |= logProofIncluded
	}
	if lp.Group != nil {
		flags |= logProofGroup
	}
	if lp.Account != nil {
		flags |= logProofAccount
	}
	if lp.Resource != nil {
		flags |= logProofResource
	}
	b = append(b, flags)
	if lp.Group != nil {
		b = append(b, lp.Group[:]...)
	}
	if lp.Account != nil {
		b = append(b, lp.Account[:]...)
	}
	if lp.Resource != nil {
		b = append(b, lp.Resource[:]...)
	}
	b = binary.BigEndian.AppendUint64(b, lp.Seq)
	b = binary.BigEndian.AppendUint64(b, lp.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(lp.Index))
	b = append(b, uint8(len(lp.Proof)))
	for _, h := range lp.Proof {
		b = append(b, h...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(lp.Leaf)))
	return append(b, lp.Leaf...)
}

// logProofIDs holds the ids one parsed proof points to: one allocation
// for all of an answer's.
type logProofIDs struct {
	group    coffer.GroupID
	account  coffer.AccountID
	resource coffer.ResourceID
}

// ParseLogProofs decodes an answer of at most maxProofs proofs in all,
// the number the caller asked for. Proof hashes and leaves alias data; the
// proofs' hash lists share one allocation. A count over maxProofs or past
// what the data can hold, a proof over MaxLogProofHashes hashes, a leaf
// over translog.MaxLeafSize, unknown flags, a length past the end,
// trailing bytes and an unknown version are errors.
func ParseLogProofs(data []byte, maxProofs int) (LogProofs, error) {
	if len(data) < logProofsHeader {
		return LogProofs{}, fmt.Errorf("log proofs: %d bytes, too short", len(data))
	}
	if data[0] != logProofsVersion {
		return LogProofs{}, fmt.Errorf("log proofs: unknown version %d", data[0])
	}
	out := LogProofs{Size: int64(binary.BigEndian.Uint64(data[1:]))}
	counts := [3]uint64{
		uint64(binary.BigEndian.Uint32(data[9:])),
		uint64(binary.BigEndian.Uint32(data[13:])),
		uint64(binary.BigEndian.Uint32(data[17:])),
	}
	total := counts[0] + counts[1] + counts[2]
	if total > uint64(max(maxProofs, 0)) {
		return LogProofs{}, fmt.Errorf("log proofs: %d proofs, more than the %d asked for", total, maxProofs)
	}
	// Every proof takes at least minLogProof bytes: a count the data
	// cannot hold is refused before anything is allocated for it.
	rest := data[logProofsHeader:]
	if total*minLogProof > uint64(len(rest)) {
		return LogProofs{}, fmt.Errorf("log proofs: %d proofs cannot fit in %d bytes", total, len(rest))
	}
	all := make([]LogProof, total)
	ids := make([]logProofIDs, total)
	// The hashes cannot outnumber MaxLogProofHashes a proof, nor what the
	// bytes beyond the proofs' fixed fields hold: for an honest answer,
	// mostly hashes, the second bound is close to the number there is.
	hashes := make([][]byte, 0, min(total*MaxLogProofHashes, (uint64(len(rest))-total*minLogProof)/hashSize))
	for i := range all {
		var err error
		if rest, hashes, err = parseLogProof(rest, &all[i], &ids[i], hashes); err != nil {
			return LogProofs{}, fmt.Errorf("log proofs: proof %d: %w", i, err)
		}
	}
	if len(rest) != 0 {
		return LogProofs{}, fmt.Errorf("log proofs: %d trailing bytes", len(rest))
	}
	c, a := counts[0], counts[0]+counts[1]
	if counts[0] > 0 {
		out.Commits = all[:c:c]
	}
	if counts[1] > 0 {
		out.Accounts = all[c:a:a]
	}
	if counts[2] > 0 {
		out.Versions = all[a:]
	}
	return out, nil
}

// parseLogProof reads one proof off the front of rest into lp, its ids
// into ids and its hashes onto hashes, and returns what follows.
func parseLogProof(rest []byte, lp *LogProof, ids *logProofIDs, hashes [][]byte) ([]byte, [][]byte, error) {
	if len(rest) < minLogProof {
		return nil, nil, fmt.Errorf("truncated")
	}
	flags := rest[0]
	rest = rest[1:]
	if flags&^logProofFlags != 0 {
		return nil, nil, fmt.Errorf("unknown flags %#x", flags)
	}
	lp.Included = flags&logProofIncluded != 0
	// The ids, seq, version, index and hash count.
	if fixed := 16*bits.OnesCount8(flags&^logProofIncluded) + 3*8 + 1; len(rest) < fixed {
		return nil, nil, fmt.Errorf("truncated")
	}
	if flags&logProofGroup != 0 {
		ids.group, rest = coffer.GroupID(rest[:16]), rest[16:]
		lp.Group = &ids.group
	}
	if flags&logProofAccount != 0 {
		ids.account, rest = coffer.AccountID(rest[:16]), rest[16:]
		lp.Account = &ids.account
	}
	if flags&logProofResource != 0 {
		ids.resource, rest = coffer.ResourceID(rest[:16]), rest[16:]
		lp.Resource = &ids.resource
	}
	lp.Seq = binary.BigEndian.Uint64(rest)
	lp.Version = binary.BigEndian.Uint64(rest[8:])
	lp.Index = int64(binary.BigEndian.Uint64(rest[16:]))
	n := int(rest[24])
	rest = rest[25:]
	if n > MaxLogProofHashes {
		return nil, nil, fmt.Errorf("a proof of %d hashes, over the bound of %d", n, MaxLogProofHashes)
	}
	if n*hashSize+4 > len(rest) {
		return nil, nil, fmt.Errorf("%d proof hashes past the end", n)
	}
	if n > 0 {
		// Within the capacity ParseLogProofs gave hashes, unless the
		// answer is malformed further on.
		start := len(hashes)
		for range n {
			hashes, rest = append(hashes, rest[:hashSize:hashSize]), rest[hashSize:]
		}
		lp.Proof = hashes[start:len(hashes):len(hashes)]
	}
	m := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if m > translog.MaxLeafSize || uint64(m) > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("a leaf of %d bytes, over the bound of %d or past the end", m, translog.MaxLeafSize)
	}
	if m > 0 {
		lp.Leaf, rest = rest[:m:m], rest[m:]
	}
	return rest, hashes, nil
}

// AcceptsLogProofs reports whether an Accept header value lists
// LogProofsType.
func AcceptsLogProofs(accept string) bool {
	if !strings.Contains(accept, LogProofsType) {
		return false
	}
	for part := range strings.SplitSeq(accept, ",") {
		if mt, params, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == LogProofsType && params["q"] != "0" {
			return true
		}
	}
	return false
}
