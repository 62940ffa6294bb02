package clientlib

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer"
)

// A group's verified state is kept on the device by difference: a snapshot
// (coffer.GroupState.MarshalBinary) and a tail of the signed commits
// verified after it, exactly as the server served them. Loading
// re-verifies the tail with the one chain verifier from the snapshot.
//
// The tail is a small record, rewritten on each save, plus sealed
// segments. The record holds the newest commits (its open part); when
// that part reaches segmentCommits commits or segmentBytes bytes it is
// written once as a segment record, named by its SHA-256, and the tail
// record keeps only that name. A save therefore writes O(commit size)
// bytes however long the tail, and a new snapshot is written only when
// the tail passes maxTailCommits commits or a quarter of the snapshot's
// bytes. A snapshot costs O(state) (about 250 MB and 2.7 s for a
// 100,000-member tree group), so at most one per maxTailCommits commits
// keeps its cost per commit small at every size, while a load re-verifies
// at most maxTailCommits commits or a quarter of the snapshot's bytes.
//
// The tail record is the only commit point. The snapshot lives in one of
// two slots, and a new snapshot goes to the slot the tail does not name:
// until the tail naming it is stored, the old snapshot and tail stand
// whole, so a crash between the two writes loses the newer state, never
// the older one, and never leaves a tail over the wrong snapshot. A
// segment is written before the record that names it; a crash between
// leaves a record nobody names, overwritten or deleted later. The tail
// record also carries the head (seq and hash), so storedHead and the check
// of the in-memory cache read a few kilobytes, not the snapshot.
//
// Trust: the device's storage is trusted more than the server and less
// than memory. A snapshot that does not decode, or a tail record whose
// framing does not, is corrupt storage (an error naming it). A tail whose
// commits do not verify from the snapshot, do not follow it, or do not end
// at the head the record names, a segment that is missing or not the one
// the record names, or a snapshot that is not the one the tail names, is
// ErrStoredState: nothing the server sends reaches storage unverified, so
// only an edit of the device's storage (or its corruption) makes it. It is
// not a *coffer.SecurityError, which reports the server. Neither is ever
// dropped silently: the group's operations fail until the storage is
// repaired.
//
// Before tails, the state was a lone snapshot under stateKey with no tail
// record; it is still read (slot 0, empty tail) and the next save adds the
// tail. A tail record of version 1 (before segments) is read as one with
// no segments.

// ErrStoredState is wrapped by the error for a group state stored on this
// device that fails verification: its storage was edited or is corrupt.
var ErrStoredState = errors.New("clientlib: this device's stored group state failed verification (its storage was edited, or is corrupt)")

// maxTailCommits bounds the commits a tail holds before a new snapshot is
// written, so that loading a state re-verifies at most that many.
const maxTailCommits = 1024

// A tail record's open part is sealed into a segment when it reaches
// segmentCommits commits or segmentBytes bytes: what each save rewrites.
const (
	segmentCommits = 8
	segmentBytes   = 128 << 10
)

func stateKey(g coffer.GroupID) string { return "group/" + g.String() + "/state" }

// snapshotKey names slot 0 (stateKey, where the state lived before tails)
// or slot 1.
func snapshotKey(g coffer.GroupID, slot uint8) string {
	if slot == 0 {
		return stateKey(g)
	}
	return stateKey(g) + ".1"
}

func tailKey(g coffer.GroupID) string { return "group/" + g.String() + "/tail" }

// segmentKey names a sealed tail segment by the SHA-256 of its record.
func segmentKey(g coffer.GroupID, hash [32]byte) string {
	return "group/" + g.String() + "/tailseg/" + hex.EncodeToString(hash[:])
}

const (
	tailVersionInline = 1 // no segments: read, never written
	tailVersion       = 2
	segmentVersion    = 1
)

// stateTail is a decoded tail record: the snapshot it extends (its slot,
// encoded size, seq and head), the head it ends at, the sealed segments
// that hold the first commits after the snapshot, and its open part: the
// signed commits after those, up to the head, with the encodings of the
// suite v2 member keys the verifier needs for them (memberKeyHashes; none
// in suite v1). loadState reads the segments and returns the tail whole,
// its commits and keys those of every segment and then the open part.
type stateTail struct {
	group    coffer.GroupID
	slot     uint8
	snapLen  uint64
	baseSeq  uint64
	baseHead [32]byte
	seq      uint64
	head     [32]byte
	segments []segmentRef
	commits  []coffer.SignedCommit
	keys     [][]byte
}

// segmentRef names a sealed segment: its commit count, size and hash.
type segmentRef struct {
	commits uint16
	size    uint32
	hash    [32]byte
}

// sealedCommits and sealedBytes total the segments.
func (t *stateTail) sealedCommits() (n uint64) {
	for _, r := range t.segments {
		n += uint64(r.commits)
	}
	return n
}

func (t *stateTail) sealedBytes() (n uint64) {
	for _, r := range t.segments {
		n += uint64(r.size)
	}
	return n
}

// The encoding, in cryptobyte's big-endian framing:
//
//	version uint8 = 2, group [16]byte, slot uint8, snapshot_len uint64,
//	base_seq uint64, base_head [32]byte, seq uint64, head [32]byte,
//	segment_count uint16, per segment: commit_count uint16, size uint32,
//	sha256 [32]byte,
//	then the open part: commit_count uint16, per commit: body <uint32>,
//	signature <uint32>, key_count uint16, per key: encoding <uint32>
//
// Version 1 has no segment_count and no segments. A segment record is
//
//	version uint8 = 1, group [16]byte, then commits and keys as above.
const tailHeaderSize = 1 + 16 + 1 + 8 + 8 + 32 + 8 + 32

func (t *stateTail) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, tailHeaderSize+2+38*len(t.segments)+commitsSize(t.commits, t.keys)))
	b.AddUint8(tailVersion)
	b.AddBytes(t.group[:])
	b.AddUint8(t.slot)
	b.AddUint64(t.snapLen)
	b.AddUint64(t.baseSeq)
	b.AddBytes(t.baseHead[:])
	b.AddUint64(t.seq)
	b.AddBytes(t.head[:])
	b.AddUint16(uint16(len(t.segments)))
	for _, r := range t.segments {
		b.AddUint16(r.commits)
		b.AddUint32(r.size)
		b.AddBytes(r.hash[:])
	}
	addCommits(b, t.commits, t.keys)
	return b.Bytes()
}

// marshalSegment encodes commits and keys as a segment record of g.
func marshalSegment(g coffer.GroupID, commits []coffer.SignedCommit, keys [][]byte) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, 1+16+commitsSize(commits, keys)))
	b.AddUint8(segmentVersion)
	b.AddBytes(g[:])
	addCommits(b, commits, keys)
	return b.Bytes()
}

func commitsSize(commits []coffer.SignedCommit, keys [][]byte) int {
	size := 4
	for _, sc := range commits {
		size += 8 + len(sc.Body) + len(sc.Signature)
	}
	for _, k := range keys {
		size += 4 + len(k)
	}
	return size
}

func addCommits(b *cryptobyte.Builder, commits []coffer.SignedCommit, keys [][]byte) {
	b.AddUint16(uint16(len(commits)))
	for _, sc := range commits {
		b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sc.Body) })
		b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sc.Signature) })
	}
	b.AddUint16(uint16(len(keys)))
	for _, k := range keys {
		b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(k) })
	}
}

// readCommits reads the commits and keys addCommits wrote, and requires
// the end of in. what names the record in errors.
func readCommits(in cryptobyte.String, bad func(string) error) ([]coffer.SignedCommit, [][]byte, error) {
	var n uint16
	if !in.ReadUint16(&n) {
		return nil, nil, bad("commit count")
	}
	commits := make([]coffer.SignedCommit, n)
	for i := range commits {
		var body, sig []byte
		if !readBytes32(&in, &body) || !readBytes32(&in, &sig) {
			return nil, nil, bad("truncated commit")
		}
		commits[i] = coffer.SignedCommit{Body: bytes.Clone(body), Signature: bytes.Clone(sig)}
	}
	if !in.ReadUint16(&n) {
		return nil, nil, bad("truncated keys")
	}
	keys := make([][]byte, n)
	for i := range keys {
		var k []byte
		if !readBytes32(&in, &k) {
			return nil, nil, bad("truncated key")
		}
		keys[i] = bytes.Clone(k)
	}
	if !in.Empty() {
		return nil, nil, bad("trailing data")
	}
	return commits, keys, nil
}

// parseTail decodes a tail record of group g. With headerOnly it stops
// after the head, for the cheap reads (storedHead, the cache check).
func parseTail(data []byte, g coffer.GroupID, headerOnly bool) (*stateTail, error) {
	bad := func(what string) error {
		return fmt.Errorf("clientlib: the stored group state's tail is corrupt: %s", what)
	}
	in := cryptobyte.String(data)
	t := new(stateTail)
	var version uint8
	if !in.ReadUint8(&version) || version != tailVersion && version != tailVersionInline {
		return nil, bad("unknown version")
	}
	if !in.CopyBytes(t.group[:]) || !in.ReadUint8(&t.slot) || !in.ReadUint64(&t.snapLen) ||
		!in.ReadUint64(&t.baseSeq) || !in.CopyBytes(t.baseHead[:]) || !in.ReadUint64(&t.seq) || !in.CopyBytes(t.head[:]) {
		return nil, bad("truncated header")
	}
	if t.group != g || t.slot > 1 || t.baseSeq == 0 || t.seq < t.baseSeq {
		return nil, bad("invalid header")
	}
	if headerOnly {
		return t, nil
	}
	if version == tailVersion {
		var n uint16
		if !in.ReadUint16(&n) {
			return nil, bad("segment count")
		}
		t.segments = make([]segmentRef, n)
		for i := range t.segments {
			r := &t.segments[i]
			if !in.ReadUint16(&r.commits) || !in.ReadUint32(&r.size) || !in.CopyBytes(r.hash[:]) || r.commits == 0 {
				return nil, bad("segment")
			}
		}
	}
	var err error
	if t.commits, t.keys, err = readCommits(in, bad); err != nil {
		return nil, err
	}
	if t.sealedCommits()+uint64(len(t.commits)) != t.seq-t.baseSeq {
		return nil, bad("commit count")
	}
	return t, nil
}

// parseSegment decodes a segment record of g.
func parseSegment(data []byte, g coffer.GroupID) ([]coffer.SignedCommit, [][]byte, error) {
	bad := func(what string) error {
		return fmt.Errorf("%w: group %s: a tail segment is corrupt: %s", ErrStoredState, g, what)
	}
	in := cryptobyte.String(data)
	var (
		version uint8
		group   coffer.GroupID
	)
	if !in.ReadUint8(&version) || version != segmentVersion || !in.CopyBytes(group[:]) || group != g {
		return nil, nil, bad("header")
	}
	return readCommits(in, bad)
}

// readBytes32 reads a uint32 length and that many bytes.
func readBytes32(in *cryptobyte.String, out *[]byte) bool {
	var n uint32
	return in.ReadUint32(&n) && uint64(n) <= uint64(len(*in)) && in.ReadBytes(out, int(n))
}

// stateCache holds the newest verified state of each group this client
// loaded or saved, so that a removal right after a sync does not read and
// decode the whole state again. The states are shared: callers treat a
// GroupState as read-only (coffer.GroupState), and nothing in clientlib
// changes one it did not make (VerifyChainWith, applyOwn and
// WithMemberKeys work on clones). It is checked against the head stored
// in the key store before each use, so Clients that share a KeyStore see
// each other's saves.
type stateCache struct {
	mu sync.Mutex
	m  map[coffer.GroupID]*coffer.GroupState
}

func (sc *stateCache) get(g coffer.GroupID) *coffer.GroupState {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.m[g]
}

// put keeps s unless the cache holds a newer state of its group.
func (sc *stateCache) put(s *coffer.GroupState) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.m == nil {
		sc.m = map[coffer.GroupID]*coffer.GroupState{}
	}
	if old := sc.m[s.Group]; old == nil || old.Seq <= s.Seq {
		sc.m[s.Group] = s
	}
}

// storedHead returns the seq and head of the state of g stored on this
// device; found is false when there is none. It reads the tail record, or,
// for a state stored before tails, the snapshot's fixed header
// (statehead.go).
func (c *Client) storedHead(g coffer.GroupID) (seq uint64, head [32]byte, found bool, err error) {
	t, _, err := c.readTail(g, true)
	if err != nil || t == nil {
		return 0, head, false, err
	}
	return t.seq, t.head, true, nil
}

// readTail returns g's tail record as stored, nil if g has no stored
// state, and its raw bytes. For a lone snapshot stored before tails it
// returns an empty tail over slot 0 with the snapshot's head (and nil raw
// bytes). With headerOnly the commits and keys are not decoded.
func (c *Client) readTail(g coffer.GroupID, headerOnly bool) (*stateTail, []byte, error) {
	raw, err := c.ks.Get(tailKey(g))
	if err == nil {
		t, err := parseTail(raw, g, headerOnly)
		return t, raw, err
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, nil, err
	}
	b, err := c.ks.Get(stateKey(g))
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	seq, head, ok := peekStateHead(b, g)
	if !ok {
		s := new(coffer.GroupState)
		if err := s.UnmarshalBinary(b); err != nil {
			return nil, nil, fmt.Errorf("clientlib: stored group state is corrupt: %w", err)
		}
		if s.Group != g {
			return nil, nil, fmt.Errorf("clientlib: stored group state is of group %s, not %s", s.Group, g)
		}
		seq, head = s.Seq, s.Head
	}
	return &stateTail{group: g, snapLen: uint64(len(b)), baseSeq: seq, baseHead: head, seq: seq, head: head}, nil, nil
}

// localState returns the highest verified state of g kept on this device:
// the cached one while the key store holds the same head, else the stored
// one, re-verified. The caller must not change it.
func (c *Client) localState(g coffer.GroupID) (*coffer.GroupState, error) {
	t, _, err := c.readTail(g, true)
	if err != nil {
		return nil, err
	}
	cached := c.states.get(g)
	switch {
	case cached != nil && (t == nil || cached.Seq > t.seq):
		// Memory is trusted more than storage: the stored state went
		// back (deleted, or restored from a copy), and the next save
		// stores this one again.
		return cached, nil
	case cached != nil && cached.Seq == t.seq && cached.Head == t.head:
		return cached, nil
	case cached != nil && cached.Seq == t.seq:
		// Another Client on this key store verified another commit at
		// this seq: the server showed the two different chains.
		return nil, coffer.Security("fork", fmt.Errorf("group %s: two different commits verified at seq %d", g, t.seq))
	case t == nil:
		return nil, nil
	}
	s, err := c.loadState(g)
	if err != nil || s == nil {
		return s, err
	}
	c.states.put(s)
	return s, nil
}

// loadState reads and verifies the stored state of g. A save by another
// Client on the same key store can replace the snapshot between the reads
// of the tail and of the snapshot; the reads are then repeated, and only a
// mismatch that stays is an error.
func (c *Client) loadState(g coffer.GroupID) (*coffer.GroupState, error) {
	for attempt := 0; ; attempt++ {
		t, raw, err := c.readTail(g, false)
		if err != nil || t == nil {
			return nil, err
		}
		b, err := c.ks.Get(snapshotKey(g, t.slot))
		missing := errors.Is(err, ErrNotFound)
		if err != nil && !missing {
			return nil, err
		}
		seq, head, ok := peekStateHead(b, g)
		if missing || ok && (seq != t.baseSeq || head != t.baseHead) {
			if raw != nil && attempt < 3 {
				if again, err := c.ks.Get(tailKey(g)); err == nil && !bytes.Equal(again, raw) {
					continue // another save moved the state on
				}
			}
			if missing {
				return nil, fmt.Errorf("%w: group %s: the tail names snapshot %d, which is missing", ErrStoredState, g, t.slot)
			}
			return nil, fmt.Errorf("%w: group %s: the snapshot is at seq %d, the tail extends seq %d", ErrStoredState, g, seq, t.baseSeq)
		}
		s := new(coffer.GroupState)
		if err := s.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("clientlib: stored group state is corrupt: %w", err)
		}
		if s.Group != g || s.Seq != t.baseSeq || s.Head != t.baseHead || uint64(len(b)) != t.snapLen {
			return nil, fmt.Errorf("%w: group %s: the snapshot is not the one the tail extends", ErrStoredState, g)
		}
		if len(t.segments) > 0 {
			whole, retry, err := c.readSegments(t, raw, attempt)
			if retry {
				continue
			}
			if err != nil {
				return nil, err
			}
			t = whole
		}
		if len(t.commits) == 0 {
			return s, nil
		}
		return verifyTail(s, t)
	}
}

// readSegments returns t with the commits and keys of its segments put
// before its open part. retry is true when a segment is missing or not the
// one named because another save replaced the tail since raw was read.
func (c *Client) readSegments(t *stateTail, raw []byte, attempt int) (whole *stateTail, retry bool, err error) {
	whole = new(stateTail)
	*whole = *t
	whole.commits, whole.keys = make([]coffer.SignedCommit, 0, t.seq-t.baseSeq), nil
	for i, r := range t.segments {
		b, err := c.ks.Get(segmentKey(t.group, r.hash))
		missing := errors.Is(err, ErrNotFound)
		if err != nil && !missing {
			return nil, false, err
		}
		if missing || uint64(len(b)) != uint64(r.size) || sha256.Sum256(b) != r.hash {
			if attempt < 3 {
				if again, err := c.ks.Get(tailKey(t.group)); err == nil && !bytes.Equal(again, raw) {
					return nil, true, nil
				}
			}
			return nil, false, fmt.Errorf("%w: group %s: tail segment %d is missing or not the one the tail names", ErrStoredState, t.group, i)
		}
		commits, keys, err := parseSegment(b, t.group)
		if err != nil {
			return nil, false, err
		}
		if len(commits) != int(r.commits) {
			return nil, false, fmt.Errorf("%w: group %s: tail segment %d holds %d commits, not %d", ErrStoredState, t.group, i, len(commits), r.commits)
		}
		whole.commits = append(whole.commits, commits...)
		whole.keys = append(whole.keys, keys...)
	}
	whole.commits = append(whole.commits, t.commits...)
	whole.keys = append(whole.keys, t.keys...)
	whole.segments = nil
	return whole, false, nil
}

// verifyTail verifies t's commits with the chain verifier from the
// snapshot s, with the member keys t carries, and requires them to end at
// t's head.
func verifyTail(s *coffer.GroupState, t *stateTail) (*coffer.GroupState, error) {
	var src coffer.MemberKeySource
	if len(t.keys) > 0 {
		keys := make(coffer.MemberKeyMap, len(t.keys))
		for _, enc := range t.keys {
			k, err := coffer.ParseMemberKeys(enc)
			if err != nil {
				return nil, fmt.Errorf("%w: group %s: member keys in the tail: %v", ErrStoredState, s.Group, err)
			}
			// Keyed by the hash of the stored encoding: the verifier checks
			// each key it uses against the hash the commits name.
			keys[coffer.MemberKeysHash(enc)] = k
		}
		src = keys
	}
	next, err := coffer.VerifyChainKeysOnUse(s, t.commits, src)
	if err != nil {
		return nil, fmt.Errorf("%w: group %s: the tail does not verify from the snapshot: %v", ErrStoredState, s.Group, err)
	}
	if next.Seq != t.seq || next.Head != t.head {
		return nil, fmt.Errorf("%w: group %s: the tail ends at seq %d, not at the head it names (%d)", ErrStoredState, s.Group, next.Seq, t.seq)
	}
	return next, nil
}

// saveState stores s unless the device already holds a higher verified
// state of the group. Concurrent syncs finish in any order; without this, a
// slower one could store an older head and let a rollback to it pass. The
// same seq with another head is a fork.
//
// from and commits, when the caller has them, are the state s was verified
// from and the signed commits that lead from it to s: when from is the
// stored head, they are appended to the tail instead of writing s whole.
func (c *Client) saveState(s, from *coffer.GroupState, commits []coffer.SignedCommit) error {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	// Only the stored head is compared: decoding the whole stored state
	// (14 MB for 10,000 members) to read two fields was most of the cost
	// of saving.
	t, raw, err := c.readTail(s.Group, false)
	if err != nil {
		return err
	}
	if t != nil && t.seq >= s.Seq {
		if t.seq == s.Seq && t.head != s.Head {
			return coffer.Security("fork", fmt.Errorf("two different commits verified at seq %d", s.Seq))
		}
		return nil
	}
	if t != nil && raw != nil && from != nil && len(commits) > 0 && from.Seq == t.seq && from.Head == t.head &&
		from.Seq+uint64(len(commits)) == s.Seq {
		if next, ok := c.extendTail(t, from, commits, s); ok {
			stored, err := c.storeTail(next)
			if err != nil {
				return err
			}
			if stored {
				c.states.put(s)
				return nil
			}
		}
	}
	return c.writeSnapshot(s, t)
}

// storeTail stores next, sealing its open part into a segment first when
// it is full. It stores nothing, and returns false, when the tail has
// outgrown its snapshot (maxTailCommits commits, or a quarter of the
// snapshot's bytes): a new snapshot is due. c.stateMu held.
func (c *Client) storeTail(next *stateTail) (bool, error) {
	open := uint64(commitsSize(next.commits, next.keys))
	if next.seq-next.baseSeq > maxTailCommits || next.sealedBytes()+open > next.snapLen/4 {
		return false, nil
	}
	if len(next.commits) >= segmentCommits || open >= segmentBytes {
		seg, err := marshalSegment(next.group, next.commits, next.keys)
		if err != nil {
			return false, err
		}
		h := sha256.Sum256(seg)
		if err := c.ks.Put(segmentKey(next.group, h), seg); err != nil {
			return false, err
		}
		next.segments = append(next.segments[:len(next.segments):len(next.segments)],
			segmentRef{commits: uint16(len(next.commits)), size: uint32(len(seg)), hash: h})
		next.commits, next.keys = nil, nil
	}
	b, err := next.marshal()
	if err != nil {
		return false, err
	}
	return true, c.ks.Put(tailKey(next.group), b)
}

// extendTail returns t with commits, which lead from from (t's head) to s,
// appended to its open part with the member keys they need; false when
// the tail would pass maxTailCommits or a key is not in the client's cache
// (a snapshot is written then).
func (c *Client) extendTail(t *stateTail, from *coffer.GroupState, commits []coffer.SignedCommit, s *coffer.GroupState) (*stateTail, bool) {
	if t.seq-t.baseSeq+uint64(len(commits)) > maxTailCommits {
		return nil, false
	}
	next := *t
	next.seq, next.head = s.Seq, s.Head
	next.commits = append(append([]coffer.SignedCommit(nil), t.commits...), commits...)
	hashes, v2 := memberKeyHashes(from, commits)
	if !v2 {
		return &next, true
	}
	// Keys are kept once per segment and open part: a load reads them all.
	have := make(map[[32]byte]bool, len(t.keys))
	for _, enc := range t.keys {
		have[coffer.MemberKeysHash(enc)] = true
	}
	next.keys = append([][]byte(nil), t.keys...)
	kc := &c.memberKeys
	kc.mu.Lock()
	defer kc.mu.Unlock()
	for _, h := range hashes {
		if have[h] {
			continue
		}
		k := kc.m[h]
		if k == nil {
			return nil, false
		}
		have[h] = true
		next.keys = append(next.keys, k.Marshal())
	}
	return &next, true
}

// writeSnapshot stores s whole in the slot the current tail t (nil when
// there is none) does not name, then an empty tail naming it, then drops
// the old snapshot. c.stateMu held.
func (c *Client) writeSnapshot(s *coffer.GroupState, t *stateTail) error {
	b, err := s.MarshalBinary()
	if err != nil {
		return err
	}
	slot := uint8(0)
	if t != nil {
		slot = 1 - t.slot
	}
	if err := c.ks.Put(snapshotKey(s.Group, slot), b); err != nil {
		return err
	}
	nt := &stateTail{group: s.Group, slot: slot, snapLen: uint64(len(b)), baseSeq: s.Seq, baseHead: s.Head, seq: s.Seq, head: s.Head}
	tb, err := nt.marshal()
	if err != nil {
		return err
	}
	if err := c.ks.Put(tailKey(s.Group), tb); err != nil {
		return err
	}
	c.states.put(s)
	if t != nil {
		// The old snapshot and segments are no longer named. Failing to
		// delete them costs only space: the next snapshot overwrites the
		// snapshot, and a segment left behind is never read.
		_ = c.ks.Delete(snapshotKey(s.Group, t.slot))
		for _, r := range t.segments {
			_ = c.ks.Delete(segmentKey(s.Group, r.hash))
		}
	}
	return nil
}
