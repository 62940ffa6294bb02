package store

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// The verified state of a group is a function of its chain, named by its
// head: (seq, head hash). A commit to a large group used to load the whole
// state from groups.state (14 MB for 10,000 members; now a header and one
// row per account, staterows.go) and, for a tree group, every row of
// tree_nodes (about 250 MB for 100,000 leaves), decode it, apply one
// commit and store it again. stateCache keeps the newest states
// this process verified or loaded, and GroupState serves one only when the
// database's head still names it: a commit through another process, or a
// lost race, moves the head and the state is read again. What is cached
// was verified before it was stored, exactly as what the database holds.

// DefaultStateCacheBytes bounds the cache when DB.StateCacheBytes is zero:
// room for a 100,000-member tree group and many small ones.
const DefaultStateCacheBytes = 512 << 20

// cachedState is a state no caller holds: GroupState hands out clones, as
// Apply changes a state in place. Trees are shared: a tree commit applies
// to a copy of the tree (ratchettree.Commit.Apply), never to the tree.
type cachedState struct {
	state *coffer.GroupState
	bytes int64
}

type stateCache struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	lru   *lru.Cache[coffer.GroupID, cachedState]
}

func newStateCache(max int64) *stateCache {
	c := &stateCache{max: max}
	// The count bound is only a backstop: eviction is by bytes, below.
	c.lru, _ = lru.NewWithEvict(1<<16, func(_ coffer.GroupID, v cachedState) { c.bytes -= v.bytes })
	return c
}

// stateBytes estimates what a state holds in memory: its members (with
// suite v1 keys inline; a suite v2 entry names its keys by hash, and the
// keys resolved into it are shared with the member key cache), and its
// tree's public keys and hashes. It is an estimate by count, not a walk
// over the members, which cost 13 ms per commit at 100,000 members.
func stateBytes(s *coffer.GroupState) int64 {
	perMember := int64(320)
	if s.Suite != coffer.SuiteV2 {
		perMember += coffer.SigningKeySize + 1216
	}
	n := int64(len(s.Members)) * perMember
	if s.Tree != nil {
		n += int64(2*s.Tree.Leaves()) * (ratchettree.PublicKeySize + 64)
	}
	return n
}

// get returns a clone of the cached state of g if it is at seq with head.
func (c *stateCache) get(g coffer.GroupID, seq uint64, head []byte) *coffer.GroupState {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	v, ok := c.lru.Get(g)
	c.mu.Unlock()
	if !ok || v.state.Seq != seq || string(v.state.Head[:]) != string(head) {
		return nil
	}
	return v.state.Clone()
}

// put caches s, which the caller must not change afterwards, unless a
// newer state of its group is cached.
func (c *stateCache) put(s *coffer.GroupState) {
	if c == nil {
		return
	}
	size := stateBytes(s)
	c.mu.Lock()
	defer c.mu.Unlock()
	if size > c.max {
		c.lru.Remove(s.Group)
		return
	}
	if old, ok := c.lru.Peek(s.Group); ok && old.state.Seq > s.Seq {
		return
	}
	c.lru.Remove(s.Group)
	c.lru.Add(s.Group, cachedState{s, size})
	c.bytes += size
	for c.bytes > c.max {
		c.lru.RemoveOldest()
	}
}

// remove forgets the cached state of g.
func (c *stateCache) remove(g coffer.GroupID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(g)
}
