package clientlib

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// testChain builds a suite v1 group whose owner adds members at genesis
// (so that the snapshot is large enough to hold a long tail) and then
// rotates, one signed commit at a time.
type testChain struct {
	t      *testing.T
	owner  *Identity
	me     coffer.AccountID
	g      coffer.GroupID
	states []*coffer.GroupState          // states[i] is at seq i+1
	signed []coffer.SignedCommit         // signed[i] is commit seq i+1
	forks  map[uint64]*coffer.GroupState // another commit at a seq
}

func newTestChain(t *testing.T, members int) *testChain {
	t.Helper()
	owner, err := GenerateIdentity("owner")
	if err != nil {
		t.Fatal(err)
	}
	tc := &testChain{t: t, owner: owner, me: coffer.NewAccountID(), g: coffer.NewGroupID(), forks: map[uint64]*coffer.GroupState{}}
	pub := owner.Public()
	ops := []coffer.Op{{Kind: coffer.OpAdd, Member: tc.me, Handle: owner.Handle(), Role: coffer.RoleOwner,
		SigningKey: pub.SigningKey, EncryptionKey: pub.EncryptionKey}}
	for i := range members {
		id, err := GenerateIdentity(coffer.Handle(fmt.Sprintf("member%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		p := id.Public()
		ops = append(ops, coffer.Op{Kind: coffer.OpAdd, Member: coffer.NewAccountID(), Handle: id.Handle(), Role: coffer.RoleReader,
			SigningKey: p.SigningKey, EncryptionKey: p.EncryptionKey})
	}
	k := groupkey.NewEpochKey()
	sc := coffer.SignCommit(&coffer.Commit{
		Group: tc.g, Seq: 1, Epoch: 1, Author: tc.me, Time: time.Now().UnixMilli(), ShareHistory: true,
		KeyCommitment: groupkey.Commitment(k, tc.g, 1), Ops: ops,
	}, owner.signing)
	s, err := coffer.VerifyChain(nil, []coffer.SignedCommit{sc})
	if err != nil {
		t.Fatal(err)
	}
	tc.states, tc.signed = []*coffer.GroupState{s}, []coffer.SignedCommit{sc}
	return tc
}

// rotation signs a rotation after s.
func (tc *testChain) rotation(s *coffer.GroupState) coffer.SignedCommit {
	k := groupkey.NewEpochKey()
	return coffer.SignCommit(&coffer.Commit{
		Group: tc.g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch + 1, Author: tc.me, Time: time.Now().UnixMilli(),
		ShareHistory: true, KeyCommitment: groupkey.Commitment(k, tc.g, s.Epoch+1), Ops: []coffer.Op{{Kind: coffer.OpRotate}},
	}, tc.owner.signing)
}

// extend appends n rotations and returns the last state.
func (tc *testChain) extend(n int) *coffer.GroupState {
	tc.t.Helper()
	for range n {
		prev := tc.head()
		sc := tc.rotation(prev)
		next, err := coffer.VerifyChain(prev, []coffer.SignedCommit{sc})
		if err != nil {
			tc.t.Fatal(err)
		}
		tc.states, tc.signed = append(tc.states, next), append(tc.signed, sc)
	}
	return tc.head()
}

func (tc *testChain) head() *coffer.GroupState { return tc.states[len(tc.states)-1] }

// at returns the state at seq.
func (tc *testChain) at(seq uint64) *coffer.GroupState { return tc.states[seq-1] }

// fork returns a state at seq with another head than the chain's.
func (tc *testChain) fork(seq uint64) *coffer.GroupState {
	tc.t.Helper()
	prev := tc.at(seq - 1)
	s, err := coffer.VerifyChain(prev, []coffer.SignedCommit{tc.rotation(prev)})
	if err != nil {
		tc.t.Fatal(err)
	}
	if s.Head == tc.at(seq).Head {
		tc.t.Fatal("the fork is the chain")
	}
	return s
}

// countingKeyStore counts the writes and reads of each name.
type countingKeyStore struct {
	*MemoryKeyStore
	mu         sync.Mutex
	puts, gets map[string]int
}

func newCountingKeyStore() *countingKeyStore {
	return &countingKeyStore{MemoryKeyStore: NewMemoryKeyStore(), puts: map[string]int{}, gets: map[string]int{}}
}

func (k *countingKeyStore) Put(name string, v []byte) error {
	k.mu.Lock()
	k.puts[name]++
	k.mu.Unlock()
	return k.MemoryKeyStore.Put(name, v)
}

func (k *countingKeyStore) Get(name string) ([]byte, error) {
	k.mu.Lock()
	k.gets[name]++
	k.mu.Unlock()
	return k.MemoryKeyStore.Get(name)
}

// namesContaining counts the stored names that contain sub.
func (k *countingKeyStore) namesContaining(sub string) int {
	k.MemoryKeyStore.mu.Lock()
	defer k.MemoryKeyStore.mu.Unlock()
	n := 0
	for name := range k.MemoryKeyStore.m {
		if strings.Contains(name, sub) {
			n++
		}
	}
	return n
}

func (k *countingKeyStore) snapshotWrites(g coffer.GroupID) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.puts[snapshotKey(g, 0)] + k.puts[snapshotKey(g, 1)]
}

func (k *countingKeyStore) snapshotReads(g coffer.GroupID) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gets[snapshotKey(g, 0)] + k.gets[snapshotKey(g, 1)]
}

func mustSave(t *testing.T, c *Client, s, from *coffer.GroupState, commits ...coffer.SignedCommit) {
	t.Helper()
	if err := c.saveState(s, from, commits); err != nil {
		t.Fatalf("saving seq %d: %v", s.Seq, err)
	}
}

// mustLoadFresh loads g's state through a new Client on ks, which has no
// cache, and requires it to be want, byte for byte.
func mustLoadFresh(t *testing.T, ks KeyStore, want *coffer.GroupState) {
	t.Helper()
	got, err := (&Client{ks: ks}).localState(want.Group)
	if err != nil {
		t.Fatalf("loading seq %d: %v", want.Seq, err)
	}
	if got == nil || got.Seq != want.Seq || got.Head != want.Head {
		t.Fatalf("loaded %v, want seq %d", got, want.Seq)
	}
	a, _ := got.MarshalBinary()
	b, _ := want.MarshalBinary()
	if string(a) != string(b) {
		t.Fatalf("the state loaded at seq %d differs from the one saved", want.Seq)
	}
}

// TestStateTailRoundTrip: a state saved commit by commit loads back, from
// a fresh client, equal to the one saved, across tail appends, sealed
// segments and snapshot rewrites; a commit rewrites only the tail
// record's open part, which is sealed at segmentCommits; the tail holds
// up to maxTailCommits commits, so the snapshot is written about once per
// that many; and the segments of a replaced tail are deleted.
func TestStateTailRoundTrip(t *testing.T) {
	// A snapshot large enough that a quarter of it holds maxTailCommits
	// rotations: the commit bound, not the byte bound, starts snapshots.
	tc := newTestChain(t, 1100)
	tc.extend(2*maxTailCommits + 20)
	ks := newCountingKeyStore()
	c := &Client{ks: ks}
	mustSave(t, c, tc.at(1), nil)
	maxTail, slots := 0, map[uint8]bool{}
	n := int(tc.head().Seq)
	for seq := uint64(2); seq <= uint64(n); seq++ {
		mustSave(t, c, tc.at(seq), tc.at(seq-1), tc.signed[seq-1])
		tl, _, err := c.readTail(tc.g, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(tl.commits) >= segmentCommits {
			t.Fatalf("at seq %d the tail record's open part holds %d commits (sealed at %d)", seq, len(tl.commits), segmentCommits)
		}
		for _, r := range tl.segments {
			if r.commits != segmentCommits {
				t.Fatalf("at seq %d a segment holds %d commits, want %d", seq, r.commits, segmentCommits)
			}
		}
		if segs := ks.namesContaining("/tailseg/"); segs != len(tl.segments) {
			t.Fatalf("at seq %d the key store holds %d segments, the tail names %d", seq, segs, len(tl.segments))
		}
		maxTail, slots[tl.slot] = max(maxTail, int(tl.seq-tl.baseSeq)), true
		if seq%97 == 0 || tl.seq == tl.baseSeq || tl.seq-tl.baseSeq == maxTailCommits || seq == uint64(n) {
			mustLoadFresh(t, ks, tc.at(seq))
		}
	}
	if w := ks.snapshotWrites(tc.g); w != 1+n/(maxTailCommits+1) {
		t.Errorf("%d commits wrote the snapshot %d times, want one per %d commits", n, w, maxTailCommits+1)
	}
	if maxTail != maxTailCommits || len(slots) != 2 {
		t.Errorf("the tail held at most %d commits (want %d), in slots %v (want both)", maxTail, maxTailCommits, slots)
	}

	// Several commits at once (a sync) append as one.
	tc.extend(5)
	c2 := &Client{ks: ks}
	from := tc.at(uint64(n))
	mustSave(t, c2, tc.head(), from, tc.signed[n:]...)
	mustLoadFresh(t, ks, tc.head())

	// Without the commits, the state is written whole.
	before := ks.snapshotWrites(tc.g)
	mustSave(t, c2, tc.extend(1), nil)
	if ks.snapshotWrites(tc.g) != before+1 {
		t.Error("a state saved without its commits was not written as a snapshot")
	}
	mustLoadFresh(t, ks, tc.head())

	// Commits that do not start at the stored head are not appended: the
	// state is written whole.
	tc.extend(2)
	before = ks.snapshotWrites(tc.g)
	last := int(tc.head().Seq)
	mustSave(t, c2, tc.head(), tc.at(uint64(last-1)), tc.signed[last-1])
	if ks.snapshotWrites(tc.g) != before+1 {
		t.Error("commits that do not follow the stored head were appended to its tail")
	}
	mustLoadFresh(t, ks, tc.head())
}

// TestStateTailBoundedByBytes: a tail whose bytes, segments and open part
// together, pass a quarter of the snapshot's is folded into a new
// snapshot, however few its commits.
func TestStateTailBoundedByBytes(t *testing.T) {
	tc := newTestChain(t, 1) // a snapshot of ~3 KB: a quarter holds ~3 rotations
	tc.extend(20)
	c := &Client{ks: NewMemoryKeyStore()}
	mustSave(t, c, tc.at(1), nil)
	for seq := uint64(2); seq <= tc.head().Seq; seq++ {
		mustSave(t, c, tc.at(seq), tc.at(seq-1), tc.signed[seq-1])
		tl, _, err := c.readTail(tc.g, false)
		if err != nil {
			t.Fatal(err)
		}
		if size := tl.sealedBytes() + uint64(commitsSize(tl.commits, tl.keys)); size > tl.snapLen/4 && tl.seq > tl.baseSeq {
			t.Fatalf("at seq %d the tail is %d bytes over a snapshot of %d", seq, size, tl.snapLen)
		}
		mustLoadFresh(t, c.ks, tc.at(seq))
	}
}

// TestStateTailSegments: a sealed segment that is edited, missing, of
// another group, or not the one the tail record names (reordered, one
// left out, a commit dropped) makes loading fail with ErrStoredState, not
// load another state.
func TestStateTailSegments(t *testing.T) {
	tc := newTestChain(t, 200)
	tc.extend(2*segmentCommits + 3)
	ks := NewMemoryKeyStore()
	c := &Client{ks: ks}
	mustSave(t, c, tc.at(1), nil)
	for seq := uint64(2); seq <= tc.head().Seq; seq++ {
		mustSave(t, c, tc.at(seq), tc.at(seq-1), tc.signed[seq-1])
	}
	good, _, err := c.readTail(tc.g, false)
	if err != nil || len(good.segments) != 2 || len(good.commits) != 3 || good.baseSeq != 1 {
		t.Fatalf("tail %+v, %v; want 2 segments and 3 open commits over seq 1", good, err)
	}
	mustLoadFresh(t, ks, tc.head())
	refused := func(t *testing.T) {
		t.Helper()
		s, err := (&Client{ks: ks}).localState(tc.g)
		if !errors.Is(err, ErrStoredState) {
			t.Fatalf("loaded %v, %v; want ErrStoredState", s, err)
		}
		if coffer.IsSecurity(err) {
			t.Fatalf("%v is a security error, which blames the server", err)
		}
	}
	// withTail stores tl for the test and the good tail after it.
	withTail := func(t *testing.T, tl *stateTail) {
		ks.Put(tailKey(tc.g), mustMarshalTail(t, tl))
		t.Cleanup(func() { ks.Put(tailKey(tc.g), mustMarshalTail(t, good)) })
	}
	// withSegment stores a segment record of commits under its hash and
	// returns its reference.
	withSegment := func(t *testing.T, g coffer.GroupID, commits []coffer.SignedCommit) segmentRef {
		b, err := marshalSegment(g, commits, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		ks.Put(segmentKey(tc.g, h), b)
		t.Cleanup(func() { ks.Delete(segmentKey(tc.g, h)) })
		return segmentRef{commits: uint16(len(commits)), size: uint32(len(b)), hash: h}
	}
	first := segmentKey(tc.g, good.segments[0].hash)
	seg, err := ks.Get(first)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every byte of a segment edited", func(t *testing.T) {
		defer ks.Put(first, seg)
		for i := range seg {
			bad := bytes.Clone(seg)
			bad[i] ^= 0x41
			ks.Put(first, bad)
			refused(t)
		}
		ks.Put(first, seg[:len(seg)-1])
		refused(t)
		ks.Put(first, append(bytes.Clone(seg), 0))
		refused(t)
	})
	t.Run("a segment missing", func(t *testing.T) {
		defer ks.Put(first, seg)
		ks.Delete(first)
		refused(t)
	})
	t.Run("segments reordered", func(t *testing.T) {
		tl := *good
		tl.segments = []segmentRef{good.segments[1], good.segments[0]}
		withTail(t, &tl)
		refused(t)
	})
	t.Run("a segment left out", func(t *testing.T) {
		tl := *good
		tl.segments = good.segments[1:]
		tl.seq -= segmentCommits
		withTail(t, &tl)
		refused(t)
	})
	t.Run("a segment named twice", func(t *testing.T) {
		tl := *good
		tl.segments = []segmentRef{good.segments[0], good.segments[0], good.segments[1]}
		tl.seq += segmentCommits
		withTail(t, &tl)
		refused(t)
	})
	t.Run("a commit dropped from a segment", func(t *testing.T) {
		tl := *good
		ref := withSegment(t, tc.g, append(append([]coffer.SignedCommit(nil), tc.signed[1:4]...), tc.signed[5:1+segmentCommits]...))
		tl.segments = []segmentRef{ref, good.segments[1]}
		tl.seq--
		withTail(t, &tl)
		refused(t)
	})
	t.Run("a segment of another group", func(t *testing.T) {
		other := newTestChain(t, 0)
		other.extend(segmentCommits)
		tl := *good
		tl.segments = []segmentRef{withSegment(t, other.g, other.signed[1:1+segmentCommits]), good.segments[1]}
		withTail(t, &tl)
		refused(t)
	})
	t.Run("a segment's count edited", func(t *testing.T) {
		tl := *good
		tl.segments = []segmentRef{good.segments[0], good.segments[1]}
		tl.segments[0].commits--
		tl.seq--
		withTail(t, &tl)
		refused(t)
	})
	mustLoadFresh(t, ks, tc.head())
}

// TestStateTailMangled: every byte of a stored tail record changed makes
// loading fail, never load another state: the record's framing, its
// snapshot reference and head, and its commits (re-verified from the
// snapshot) are all checked.
func TestStateTailMangled(t *testing.T) {
	tc := newTestChain(t, 8)
	tc.extend(3)
	ks := NewMemoryKeyStore()
	c := &Client{ks: ks}
	mustSave(t, c, tc.at(1), nil)
	for seq := uint64(2); seq <= 4; seq++ {
		mustSave(t, c, tc.at(seq), tc.at(seq-1), tc.signed[seq-1])
	}
	good, err := ks.Get(tailKey(tc.g))
	if err != nil {
		t.Fatal(err)
	}
	if tl, err := parseTail(good, tc.g, false); err != nil || len(tl.commits) != 3 {
		t.Fatalf("the tail holds %v commits (%v), want 3", tl, err)
	}
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x41
		ks.Put(tailKey(tc.g), bad)
		if s, err := (&Client{ks: ks}).localState(tc.g); err == nil {
			t.Fatalf("a tail with byte %d changed loaded, at seq %d", i, s.Seq)
		}
	}
	for _, n := range []int{0, 1, tailHeaderSize, len(good) - 1} {
		ks.Put(tailKey(tc.g), good[:n])
		if _, err := (&Client{ks: ks}).localState(tc.g); err == nil {
			t.Fatalf("a tail cut to %d bytes loaded", n)
		}
	}
	ks.Put(tailKey(tc.g), append(good, 0))
	if _, err := (&Client{ks: ks}).localState(tc.g); err == nil {
		t.Fatal("a tail with a trailing byte loaded")
	}
	ks.Put(tailKey(tc.g), good)
	mustLoadFresh(t, ks, tc.at(4))
}

// TestStateTailRefused: tails that decode but do not extend their
// snapshot to their head are ErrStoredState: a signed commit edited, a
// tail whose first commit does not follow the snapshot, commits of another
// chain, a tail that stops short of its head, a tail over a missing
// snapshot or over another snapshot.
func TestStateTailRefused(t *testing.T) {
	tc := newTestChain(t, 8)
	tc.extend(6)
	ks := NewMemoryKeyStore()
	c := &Client{ks: ks}
	mustSave(t, c, tc.at(1), nil)
	mustSave(t, c, tc.at(2), nil) // the snapshot at seq 2
	for seq := uint64(3); seq <= 5; seq++ {
		mustSave(t, c, tc.at(seq), tc.at(seq-1), tc.signed[seq-1])
	}
	good, _, err := c.readTail(tc.g, false)
	if err != nil || good.baseSeq != 2 || len(good.commits) != 3 {
		t.Fatalf("tail %+v, %v; want 3 commits over the snapshot at 2", good, err)
	}
	other := newTestChain(t, 0)
	other.extend(3)
	edit := func(f func(tl *stateTail)) []byte {
		tl := *good
		tl.commits = append([]coffer.SignedCommit(nil), good.commits...)
		f(&tl)
		b, err := tl.marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		"signature edited": edit(func(tl *stateTail) {
			sig := append([]byte(nil), tl.commits[1].Signature...)
			sig[0] ^= 1
			tl.commits[1].Signature = sig
		}),
		"first commit does not follow the snapshot": edit(func(tl *stateTail) {
			tl.commits = append([]coffer.SignedCommit{tc.signed[3]}, tc.signed[4:7]...)
			tl.seq, tl.head = 6, tc.at(6).Head
		}),
		"a commit left out": edit(func(tl *stateTail) {
			tl.commits = []coffer.SignedCommit{tc.signed[2], tc.signed[4]}
			tl.seq, tl.head = 4, tc.at(4).Head
		}),
		"a forked commit": edit(func(tl *stateTail) {
			tl.commits[2] = tc.rotation(tc.at(4))
		}),
		"commits of another group": edit(func(tl *stateTail) { tl.commits = other.signed[1:4] }),
		"a head the commits do not reach": edit(func(tl *stateTail) {
			tl.seq, tl.head = 6, tc.at(6).Head
			tl.commits = append(tl.commits, tc.signed[2])
		}),
		"another head at the seq": edit(func(tl *stateTail) { tl.head = tc.fork(5).Head }),
		"the other snapshot slot": edit(func(tl *stateTail) { tl.slot = 1 - tl.slot }),
		"another base": edit(func(tl *stateTail) {
			tl.baseSeq, tl.baseHead = 1, tc.at(1).Head
			tl.commits = tc.signed[1:5] // a valid chain from seq 1, over the snapshot at 2
			tl.seq, tl.head = 5, tc.at(5).Head
		}),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			ks.Put(tailKey(tc.g), b)
			defer ks.Put(tailKey(tc.g), mustMarshalTail(t, good))
			s, err := (&Client{ks: ks}).localState(tc.g)
			if !errors.Is(err, ErrStoredState) {
				t.Fatalf("loaded %v, %v; want ErrStoredState", s, err)
			}
			if coffer.IsSecurity(err) {
				t.Fatalf("%v is a security error, which blames the server", err)
			}
		})
	}
	// The snapshot itself edited: corrupt, or not the one the tail names.
	snap, _ := ks.Get(snapshotKey(tc.g, good.slot))
	ks.Put(snapshotKey(tc.g, good.slot), snap[:len(snap)-1])
	if _, err := (&Client{ks: ks}).localState(tc.g); err == nil {
		t.Fatal("a truncated snapshot loaded")
	}
	ks.Delete(snapshotKey(tc.g, good.slot))
	if _, err := (&Client{ks: ks}).localState(tc.g); !errors.Is(err, ErrStoredState) {
		t.Fatalf("a tail over a missing snapshot: %v, want ErrStoredState", err)
	}
	ks.Put(snapshotKey(tc.g, good.slot), snap)
	mustLoadFresh(t, ks, tc.at(5))
}

func mustMarshalTail(t *testing.T, tl *stateTail) []byte {
	t.Helper()
	b, err := tl.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSaveStateRules: saveState never stores an older state than the one
// held, whether the held one is a snapshot or the end of a tail; the same
// seq with another head is a fork; and a state stored before tails (a
// lone snapshot) is read and extended.
func TestSaveStateRules(t *testing.T) {
	tc := newTestChain(t, 4)
	tc.extend(5)
	ks := NewMemoryKeyStore()
	c := &Client{ks: ks}
	mustSave(t, c, tc.at(1), nil)
	mustSave(t, c, tc.at(2), tc.at(1), tc.signed[1])
	mustSave(t, c, tc.at(3), tc.at(2), tc.signed[2])
	for _, older := range []uint64{1, 2, 3} {
		mustSave(t, c, tc.at(older), nil)
		mustSave(t, &Client{ks: ks}, tc.at(older), nil)
		if seq, _, _, _ := c.storedHead(tc.g); seq != 3 {
			t.Fatalf("saving seq %d over seq 3 stored seq %d", older, seq)
		}
	}
	// At the stored seq, with and without its commit (appended, the fork
	// would follow the stored seq 2).
	fork := tc.fork(3)
	for _, saver := range []*Client{c, {ks: ks}} {
		for _, commits := range [][]coffer.SignedCommit{nil, {tc.rotation(tc.at(2))}} {
			err := saver.saveState(fork, tc.at(2), commits)
			var se *coffer.SecurityError
			if !errors.As(err, &se) || se.Check != "fork" {
				t.Fatalf("a fork at seq 3: %v, want a fork security error", err)
			}
		}
	}
	mustLoadFresh(t, ks, tc.at(3))

	// A lone snapshot, as stored before tails.
	legacy := NewMemoryKeyStore()
	b, _ := tc.at(4).MarshalBinary()
	legacy.Put(stateKey(tc.g), b)
	mustLoadFresh(t, legacy, tc.at(4))
	lc := &Client{ks: legacy}
	mustSave(t, lc, tc.at(3), nil)
	if seq, _, _, _ := lc.storedHead(tc.g); seq != 4 {
		t.Fatalf("an older state replaced a lone snapshot at seq 4: seq %d", seq)
	}
	if err := lc.saveState(tc.fork(4), tc.at(3), nil); !coffer.IsSecurity(err) {
		t.Fatalf("a fork of a lone snapshot: %v", err)
	}
	mustSave(t, lc, tc.at(5), tc.at(4), tc.signed[4])
	mustSave(t, lc, tc.at(6), tc.at(5), tc.signed[5])
	mustLoadFresh(t, legacy, tc.at(6))
}

// TestStateCache: a client keeps the state it saved or loaded and does
// not read the snapshot again while the stored head is the same; a state
// another Client on the same key store saved since is loaded; another
// head at the cached seq is a fork; a stored state that went back leaves
// the newer one in memory.
func TestStateCache(t *testing.T) {
	tc := newTestChain(t, 4)
	tc.extend(4)
	ks := newCountingKeyStore()
	a, b := &Client{ks: ks}, &Client{ks: ks}
	mustSave(t, a, tc.at(1), nil)
	mustSave(t, a, tc.at(2), tc.at(1), tc.signed[1])
	reads := ks.snapshotReads(tc.g)
	s, err := a.localState(tc.g)
	if err != nil || s != tc.at(2) {
		t.Fatalf("the saving client's state: %v, %v; want the state it saved", s, err)
	}
	if ks.snapshotReads(tc.g) != reads {
		t.Fatal("the saving client read its snapshot again")
	}

	// b loads seq 2 from the key store, then a saves seq 3: b sees it.
	if s, err := b.localState(tc.g); err != nil || s.Seq != 2 {
		t.Fatalf("b: %v, %v", s, err)
	}
	mustSave(t, a, tc.at(3), tc.at(2), tc.signed[2])
	if s, err := b.localState(tc.g); err != nil || s.Seq != 3 || s.Head != tc.at(3).Head {
		t.Fatalf("after a saved seq 3, b holds %v, %v", s, err)
	}
	reads = ks.snapshotReads(tc.g)
	if s, err := b.localState(tc.g); err != nil || s.Seq != 3 || ks.snapshotReads(tc.g) != reads {
		t.Fatalf("b read its snapshot again for the head it holds: %v, %v", s, err)
	}

	// A fork between memory and storage: b verified another commit at
	// seq 4 than the one stored.
	b.states.put(tc.fork(4))
	mustSave(t, a, tc.at(4), tc.at(3), tc.signed[3])
	if _, err := b.localState(tc.g); !coffer.IsSecurity(err) {
		t.Fatalf("another head in memory than in storage at seq 4: %v, want a fork", err)
	}

	// Storage deleted: memory keeps the newest state, and the next save
	// stores it again.
	for _, n := range []string{snapshotKey(tc.g, 0), snapshotKey(tc.g, 1), tailKey(tc.g)} {
		ks.Delete(n)
	}
	if s, err := a.localState(tc.g); err != nil || s.Seq != 4 {
		t.Fatalf("after the stored state was deleted a holds %v, %v; want seq 4", s, err)
	}
	if s, err := (&Client{ks: ks}).localState(tc.g); err != nil || s != nil {
		t.Fatalf("a fresh client on an emptied key store: %v, %v", s, err)
	}
	mustSave(t, a, tc.at(5), tc.at(4), tc.signed[4])
	mustLoadFresh(t, ks, tc.at(5))
}
