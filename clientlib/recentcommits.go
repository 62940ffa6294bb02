package clientlib

import (
	"sync"

	"github.com/cofferhq/coffer"
)

// A tree group member follows its path commit by commit (treeEpochKeys),
// and used to fetch again the commits the sync before it had just fetched
// and verified: a second copy of the newest commit on every receive (15 KB
// of a receiver's 36 KB at 1,000 members), and the whole chain again on a
// new member's first sync. recentCommits keeps, per group, the commits the
// last sync verified, so that the replay reads them from memory. They are
// the verified chain itself; the replay checks them against the state's
// head exactly as it checks commits it fetches.

// maxRecentBytes bounds the commits kept per group: a sync that verified
// more keeps none, and the replay fetches them.
const maxRecentBytes = 256 << 20

// recentRun is the signed commits after seq after up to the verified head.
type recentRun struct {
	after   uint64
	head    [32]byte
	commits []coffer.SignedCommit
}

type recentCommits struct {
	mu sync.Mutex
	m  map[coffer.GroupID]*recentRun
}

// put keeps the commits a sync of g verified after seq after, ending at
// head, replacing what it kept of g before.
func (rc *recentCommits) put(g coffer.GroupID, after uint64, head [32]byte, commits []coffer.SignedCommit) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.m == nil {
		rc.m = map[coffer.GroupID]*recentRun{}
	}
	if len(commits) == 0 {
		delete(rc.m, g)
		return
	}
	rc.m[g] = &recentRun{after: after, head: head, commits: commits}
}

// since returns the kept commits of g after seq after when they reach
// exactly the head (seq, head); ok is false when they do not cover it.
func (rc *recentCommits) since(g coffer.GroupID, after, seq uint64, head [32]byte) (commits []coffer.SignedCommit, ok bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	r := rc.m[g]
	if r == nil || r.head != head || r.after+uint64(len(r.commits)) != seq || after < r.after || after > seq {
		return nil, false
	}
	return r.commits[after-r.after:], true
}

// signedCommitsSize is the bytes of commits, for maxRecentBytes.
func signedCommitsSize(commits []coffer.SignedCommit) (n int) {
	for _, sc := range commits {
		n += len(sc.Body) + len(sc.Signature)
	}
	return n
}
