package translog

// The heads map: what the log says is current, not only what happened.
//
// Construction. Every checkpoint commits (its coffer-map line) to an RFC
// 6962 Merkle tree, hashed only with tlog's functions, whose leaves are
// MapEntry encodings: one leaf per account, per group and per resource, in
// the order in which the log first mentioned it. Integrating a log leaf
// either appends a map leaf (a new account, group or resource) or replaces
// the one leaf of the thing it changed (a group's new head, a resource's new
// version or tombstone). Replacing a leaf rehashes only the stored hashes on
// its path, so the cost per checkpoint grows with what changed, never with
// how many groups exist, and an inclusion proof is tlog's record proof: at
// most 64 hashes, 2 KiB at 2^64 entries.
//
// Because the map is a pure function of the log's leaves, anyone holding the
// leaves (a witness, an auditor) recomputes its root and refuses a
// checkpoint whose map line differs. A client proves "this is the current
// head of my group" with one entry, its index and a record proof against a
// checkpoint that a quorum of witnesses cosigned.

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
)

// LabelMapEntry prefixes every heads-map leaf.
const LabelMapEntry = "coffer/v1/map-entry"

// MapKind says what a map entry describes.
type MapKind uint8

const (
	MapAccount  MapKind = 1
	MapGroup    MapKind = 2
	MapResource MapKind = 3
	// MapAccountChain is the head of a suite v2 account's chain; kinds are
	// append-only.
	MapAccountChain MapKind = 4
)

func (k MapKind) String() string {
	switch k {
	case MapAccount:
		return "account"
	case MapGroup:
		return "group"
	case MapResource:
		return "resource"
	case MapAccountChain:
		return "account-chain"
	}
	return fmt.Sprintf("map-kind(%d)", uint8(k))
}

// MapKey names one map entry.
type MapKey struct {
	Kind     MapKind
	Account  coffer.AccountID  // MapAccount, MapAccountChain
	Group    coffer.GroupID    // MapGroup, MapResource
	Resource coffer.ResourceID // MapResource
}

func (k MapKey) String() string {
	switch k.Kind {
	case MapAccount:
		return "account " + k.Account.String()
	case MapGroup:
		return "group " + k.Group.String()
	case MapResource:
		return "resource " + k.Resource.String() + " of group " + k.Group.String()
	case MapAccountChain:
		return "account chain " + k.Account.String()
	}
	return k.Kind.String()
}

// AccountKey, GroupKey and ResourceKey build map keys.
func AccountKey(a coffer.AccountID) MapKey { return MapKey{Kind: MapAccount, Account: a} }
func GroupKey(g coffer.GroupID) MapKey     { return MapKey{Kind: MapGroup, Group: g} }

// AccountChainKey names the head of a suite v2 account's chain.
func AccountChainKey(a coffer.AccountID) MapKey { return MapKey{Kind: MapAccountChain, Account: a} }
func ResourceKey(g coffer.GroupID, r coffer.ResourceID) MapKey {
	return MapKey{Kind: MapResource, Group: g, Resource: r}
}

// MapEntry is the current value of one key.
//
//   - account: Counter is the number of identity records the log holds for
//     it (1 in suite v1), Hash the tlog record hash of the newest one's log
//     leaf.
//   - group: Counter is the head's seq, Hash the head commit's hash
//     (coffer.SignedCommit.Hash), as clients chain it.
//   - account chain (suite v2): Counter is the head link's seq, Hash its
//     hash (coffer.SignedLink.Hash), as the next link's Prev names it.
//   - resource: Counter is the newest version, Hash the record hash of the
//     log leaf of that version or of its tombstone, Deleted whether it is a
//     tombstone.
//
// LogIndex is the index of the log leaf that set the entry.
type MapEntry struct {
	Key      MapKey
	Counter  uint64
	Hash     [32]byte
	LogIndex int64
	Deleted  bool
}

var mapEntryPrefix = coffer.SignedMessage(LabelMapEntry, nil)

// MapEntrySize is the size of every encoded entry.
var MapEntrySize = len(mapEntryPrefix) + 1 + 16 + 16 + 16 + 8 + 32 + 8 + 1

// Marshal encodes e:
//
//	"coffer/v1/map-entry" 0x00
//	kind      uint8
//	account   [16]byte (zero unless kind 1 or 4)
//	group     [16]byte (zero unless kind 2 or 3)
//	resource  [16]byte (zero unless kind 3)
//	counter   uint64
//	hash      [32]byte
//	log_index uint64
//	flags     uint8 (bit 0: deleted; other bits zero)
func (e MapEntry) Marshal() []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, MapEntrySize))
	b.AddBytes(mapEntryPrefix)
	b.AddUint8(uint8(e.Key.Kind))
	b.AddBytes(e.Key.Account[:])
	b.AddBytes(e.Key.Group[:])
	b.AddBytes(e.Key.Resource[:])
	b.AddUint64(e.Counter)
	b.AddBytes(e.Hash[:])
	b.AddUint64(uint64(e.LogIndex))
	var flags uint8
	if e.Deleted {
		flags = 1
	}
	b.AddUint8(flags)
	return b.BytesOrPanic()
}

// ParseMapEntry parses an entry and refuses any non-canonical encoding.
func ParseMapEntry(data []byte) (MapEntry, error) {
	var e MapEntry
	if len(data) != MapEntrySize || string(data[:len(mapEntryPrefix)]) != string(mapEntryPrefix) {
		return e, errors.New("translog: not a heads-map entry")
	}
	s := cryptobyte.String(data[len(mapEntryPrefix):])
	var (
		kind, flags uint8
		a, g, r     []byte
		h           []byte
		idx         uint64
	)
	if !s.ReadUint8(&kind) || !s.ReadBytes(&a, 16) || !s.ReadBytes(&g, 16) || !s.ReadBytes(&r, 16) ||
		!s.ReadUint64(&e.Counter) || !s.ReadBytes(&h, 32) || !s.ReadUint64(&idx) || !s.ReadUint8(&flags) || !s.Empty() {
		return e, errors.New("translog: malformed heads-map entry")
	}
	e.Key.Kind = MapKind(kind)
	copy(e.Key.Account[:], a)
	copy(e.Key.Group[:], g)
	copy(e.Key.Resource[:], r)
	copy(e.Hash[:], h)
	if idx > 1<<62 {
		return e, errors.New("translog: heads-map entry log index out of range")
	}
	e.LogIndex = int64(idx)
	e.Deleted = flags&1 != 0
	if flags&^1 != 0 {
		return e, errors.New("translog: heads-map entry has unknown flags")
	}
	var zero [16]byte
	switch e.Key.Kind {
	case MapAccount, MapAccountChain:
		if e.Key.Account == zero || e.Key.Group != zero || e.Key.Resource != zero || e.Deleted {
			return e, errors.New("translog: malformed account entry in the heads map")
		}
	case MapGroup:
		if e.Key.Group == zero || e.Key.Account != zero || e.Key.Resource != zero || e.Deleted {
			return e, errors.New("translog: malformed group entry in the heads map")
		}
	case MapResource:
		if e.Key.Group == zero || e.Key.Resource == zero || e.Key.Account != zero {
			return e, errors.New("translog: malformed resource entry in the heads map")
		}
	default:
		return e, fmt.Errorf("translog: unknown heads-map entry kind %d", kind)
	}
	return e, nil
}

// MapTree is an RFC 6962 tree whose leaves can be replaced as well as
// appended. It reads stored hashes (tlog's numbering) through a
// tlog.HashReader and keeps every hash it writes in Dirty, for the caller to
// persist. It holds no entries, only hashes.
type MapTree struct {
	size  int64
	r     tlog.HashReader
	dirty map[int64]tlog.Hash
}

// NewMapTree opens the tree of size n whose stored hashes r reads.
func NewMapTree(n int64, r tlog.HashReader) *MapTree {
	return &MapTree{size: n, r: r, dirty: map[int64]tlog.Hash{}}
}

// Size is the number of entries.
func (t *MapTree) Size() int64 { return t.size }

// Dirty returns the stored hashes written since NewMapTree, by stored-hash
// index. Persisting them (insert or replace) and the new size is all a
// store needs to do.
func (t *MapTree) Dirty() map[int64]tlog.Hash { return t.dirty }

// ReadHashes implements tlog.HashReader over the underlying hashes with the
// unsaved ones on top, so proofs and roots see the current tree.
func (t *MapTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	for _, i := range indexes {
		if _, ok := t.dirty[i]; !ok {
			missing = append(missing, i)
		}
	}
	var got []tlog.Hash
	if len(missing) > 0 {
		var err error
		if got, err = t.r.ReadHashes(missing); err != nil {
			return nil, err
		}
		if len(got) != len(missing) {
			return nil, errors.New("translog: hash reader returned the wrong number of hashes")
		}
	}
	k := 0
	for j, i := range indexes {
		if h, ok := t.dirty[i]; ok {
			out[j] = h
			continue
		}
		out[j] = got[k]
		k++
	}
	return out, nil
}

// Append adds entry as the last leaf and returns its index.
func (t *MapTree) Append(entry []byte) (int64, error) {
	n := t.size
	hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(entry), t)
	if err != nil {
		return 0, err
	}
	base := tlog.StoredHashIndex(0, n)
	for j, h := range hs {
		t.dirty[base+int64(j)] = h
	}
	t.size++
	return n, nil
}

// Set replaces leaf index with entry and rehashes the complete subtrees
// above it: at most one stored hash per level.
func (t *MapTree) Set(index int64, entry []byte) error {
	if index < 0 || index >= t.size {
		return fmt.Errorf("translog: map index %d outside a map of %d entries", index, t.size)
	}
	h := tlog.RecordHash(entry)
	t.dirty[tlog.StoredHashIndex(0, index)] = h
	for level := 1; level < 63; level++ {
		k := index >> level
		if (k+1)<<level > t.size {
			break // the subtree at this level is not complete: no stored hash
		}
		sib, err := t.ReadHashes([]int64{tlog.StoredHashIndex(level-1, 2*k), tlog.StoredHashIndex(level-1, 2*k+1)})
		if err != nil {
			return err
		}
		h = tlog.NodeHash(sib[0], sib[1])
		t.dirty[tlog.StoredHashIndex(level, k)] = h
	}
	return nil
}

// Root is the tree hash.
func (t *MapTree) Root() (tlog.Hash, error) { return tlog.TreeHash(t.size, t) }

// Prove returns the record proof of leaf index.
func (t *MapTree) Prove(index int64) (tlog.RecordProof, error) {
	return tlog.ProveRecord(t.size, index, t)
}

// MapProof is what a server returns for one key: the entry, its index in the
// map and the record proof in the map of a checkpoint. Index is -1 when the
// key is absent (the log never mentioned it); absence is not provable in
// this map, so a client treats "absent" for something it knows exists as
// the server withholding it.
type MapProof struct {
	Index int64
	Entry []byte
	Proof tlog.RecordProof
}

// CheckMapEntry checks that p proves an entry for key in the map of cp and
// returns the entry.
func CheckMapEntry(cp Checkpoint, key MapKey, p MapProof) (MapEntry, error) {
	if p.Index < 0 || p.Index >= cp.MapSize {
		return MapEntry{}, fmt.Errorf("translog: %s: map index %d is outside a map of %d entries", key, p.Index, cp.MapSize)
	}
	e, err := ParseMapEntry(p.Entry)
	if err != nil {
		return e, fmt.Errorf("translog: %s: %w", key, err)
	}
	if e.Key != key {
		return e, fmt.Errorf("translog: asked for the map entry of %s, the proof is for %s", key, e.Key)
	}
	if e.LogIndex >= cp.Size {
		return e, fmt.Errorf("translog: %s: its entry names log leaf %d, beyond the log's %d leaves", key, e.LogIndex, cp.Size)
	}
	if err := tlog.CheckRecord(p.Proof, cp.MapSize, cp.MapRoot, p.Index, tlog.RecordHash(p.Entry)); err != nil {
		return e, fmt.Errorf("translog: %s is not entry %d of the heads map of checkpoint %d: %w", key, p.Index, cp.Size, err)
	}
	return e, nil
}

// MapUpdate is what one log leaf does to the map, before the key's current
// entry is known: stores compute it while streaming leaves, then Apply it.
type MapUpdate struct {
	Key      MapKey
	Seq      uint64 // group commits: the commit's seq; resources: the version
	Hash     [32]byte
	LogIndex int64
	Deleted  bool
}

// LeafUpdate returns the map update of log leaf logIndex (raw, parsed as
// l). Every leaf sets exactly one entry.
func LeafUpdate(logIndex int64, raw []byte, l *Leaf) (MapUpdate, error) {
	switch l.Kind {
	case KindIdentity:
		return MapUpdate{Key: AccountKey(l.Account), Hash: RecordHash(raw), LogIndex: logIndex}, nil
	case KindCommit:
		return MapUpdate{Key: GroupKey(l.Group), Seq: l.Seq, Hash: l.Commit.Hash(), LogIndex: logIndex}, nil
	case KindAccountLink:
		return MapUpdate{Key: AccountChainKey(l.Account), Seq: l.Seq, Hash: l.Link.Hash(), LogIndex: logIndex}, nil
	case KindResourceVersion:
		return MapUpdate{Key: ResourceKey(l.Group, l.Resource), Seq: l.Version.Version, Hash: RecordHash(raw), LogIndex: logIndex}, nil
	case KindResourceDelete:
		d, err := l.ResourceDelete()
		if err != nil {
			return MapUpdate{}, err
		}
		return MapUpdate{Key: ResourceKey(l.Group, l.Resource), Seq: d.Version, Hash: RecordHash(raw), LogIndex: logIndex, Deleted: true}, nil
	}
	return MapUpdate{}, fmt.Errorf("translog: log leaf %d of kind %s sets no map entry", logIndex, l.Kind)
}

// Apply returns the entry u sets, given the key's current entry (nil if the
// map has none). It enforces what the map alone decides (a group commit is
// the next seq); signatures and chain rules are the witness's
// coffer.VerifyChain replay.
func (u MapUpdate) Apply(prev *MapEntry) (MapEntry, error) {
	e := MapEntry{Key: u.Key, Hash: u.Hash, LogIndex: u.LogIndex, Deleted: u.Deleted}
	switch u.Key.Kind {
	case MapAccount:
		e.Counter = 1
		if prev != nil {
			e.Counter = prev.Counter + 1
		}
	case MapGroup, MapAccountChain:
		want := uint64(1)
		if prev != nil {
			want = prev.Counter + 1
		}
		if u.Seq != want {
			return MapEntry{}, fmt.Errorf("translog: log leaf %d is link or commit %d of %s, whose head in the map is %d", u.LogIndex, u.Seq, u.Key, want-1)
		}
		e.Counter = u.Seq
	case MapResource:
		if err := u.applyResource(prev); err != nil {
			return MapEntry{}, err
		}
		e.Counter = u.Seq
	default:
		return MapEntry{}, fmt.Errorf("translog: no rule for map entries of kind %s", u.Key.Kind)
	}
	return e, nil
}

// EntryForLeaf is LeafUpdate followed by Apply.
func EntryForLeaf(logIndex int64, raw []byte, l *Leaf, prev *MapEntry) (MapEntry, error) {
	u, err := LeafUpdate(logIndex, raw, l)
	if err != nil {
		return MapEntry{}, err
	}
	return u.Apply(prev)
}

// Bytes is the key's database encoding: kind ‖ account ‖ group ‖
// resource.
func (k MapKey) Bytes() []byte {
	b := make([]byte, 0, 49)
	b = append(b, uint8(k.Kind))
	b = append(b, k.Account[:]...)
	b = append(b, k.Group[:]...)
	return append(b, k.Resource[:]...)
}

// MemoryMap is a heads map held in memory: what a witness, an auditor or a
// test rebuilds from the log's leaves.
type MemoryMap struct {
	hashes  map[int64]tlog.Hash
	tree    *MapTree
	index   map[MapKey]int64
	entries map[MapKey]MapEntry
}

// NewMemoryMap returns an empty map.
func NewMemoryMap() *MemoryMap {
	m := &MemoryMap{hashes: map[int64]tlog.Hash{}, index: map[MapKey]int64{}, entries: map[MapKey]MapEntry{}}
	m.tree = NewMapTree(0, m)
	return m
}

// ReadHashes implements tlog.HashReader.
func (m *MemoryMap) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := m.hashes[x]
		if !ok {
			return nil, fmt.Errorf("translog: map hash %d is missing", x)
		}
		out[i] = h
	}
	return out, nil
}

func (m *MemoryMap) flush() {
	for i, h := range m.tree.dirty {
		m.hashes[i] = h
	}
	clear(m.tree.dirty)
}

// Put sets e (appending its key if new).
func (m *MemoryMap) Put(e MapEntry) error {
	defer m.flush()
	if i, ok := m.index[e.Key]; ok {
		if err := m.tree.Set(i, e.Marshal()); err != nil {
			return err
		}
	} else {
		i, err := m.tree.Append(e.Marshal())
		if err != nil {
			return err
		}
		m.index[e.Key] = i
	}
	m.entries[e.Key] = e
	return nil
}

// ApplyLeaf integrates log leaf logIndex.
func (m *MemoryMap) ApplyLeaf(logIndex int64, raw []byte, l *Leaf) error {
	u, err := LeafUpdate(logIndex, raw, l)
	if err != nil {
		return err
	}
	var prev *MapEntry
	if e, ok := m.entries[u.Key]; ok {
		prev = &e
	}
	e, err := u.Apply(prev)
	if err != nil {
		return err
	}
	return m.Put(e)
}

// Entry returns the current entry of key.
func (m *MemoryMap) Entry(key MapKey) (MapEntry, bool) {
	e, ok := m.entries[key]
	return e, ok
}

// Size is the number of entries.
func (m *MemoryMap) Size() int64 { return m.tree.Size() }

// Root is the map's tree hash.
func (m *MemoryMap) Root() (tlog.Hash, error) { return m.tree.Root() }

// Prove proves key's entry.
func (m *MemoryMap) Prove(key MapKey) (MapProof, error) {
	i, ok := m.index[key]
	if !ok {
		return MapProof{Index: -1}, nil
	}
	p, err := m.tree.Prove(i)
	if err != nil {
		return MapProof{}, err
	}
	return MapProof{Index: i, Entry: m.entries[key].Marshal(), Proof: p}, nil
}
