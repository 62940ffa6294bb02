package clientlib

import (
	"context"
	"sync"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// A receiving member of a tree group needs, after its sync, the
// ciphertexts of the newest commit's path (treeReceive). The sync's last
// step is proving its commits in the log, which needs nothing from them,
// so the sync asks for them as soon as the commit is verified and the two
// requests overlap; the replay takes the answer. What is prefetched is
// checked exactly as what is fetched: nothing is trusted earlier.

// prefetchTimeout bounds a prefetch nobody may wait for.
const prefetchTimeout = 30 * time.Second

type ctFetch struct {
	seq  uint64
	done chan struct{}
	cts  []ratchettree.Ciphertext
	err  error
}

// ctPrefetches holds at most one prefetch per group: the newest.
type ctPrefetches struct {
	mu sync.Mutex
	m  map[coffer.GroupID]*ctFetch
}

// prefetchTreeCiphertexts starts fetching the path ciphertexts of the
// verified commit sc at seq of group g when this member will open them: a
// tree commit of another account that refreshes the root.
func (c *Client) prefetchTreeCiphertexts(ctx context.Context, g coffer.GroupID, sc coffer.SignedCommit) {
	if len(sc.Body) == 0 || sc.Body[0] != coffer.CommitVersionTree {
		return
	}
	cm, err := coffer.ParseCommit(sc.Body)
	if err != nil || !rooted(cm) {
		return
	}
	if _, me, err := c.me(); err != nil || cm.Author == me {
		return
	}
	f := &ctFetch{seq: cm.Seq, done: make(chan struct{})}
	c.ctPrefetch.mu.Lock()
	if c.ctPrefetch.m == nil {
		c.ctPrefetch.m = map[coffer.GroupID]*ctFetch{}
	}
	c.ctPrefetch.m[g] = f
	c.ctPrefetch.mu.Unlock()
	// Not the sync's context, which ends when the sync returns.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), prefetchTimeout)
	go func() {
		defer cancel()
		defer close(f.done)
		f.cts, f.err = c.fetchTreeCiphertexts(fctx, g, cm.Seq)
	}()
}

// takePrefetched returns the prefetched ciphertexts of commit seq of g,
// waiting for them; ok is false when there are none, or the prefetch
// failed (the caller fetches them itself).
func (c *Client) takePrefetched(ctx context.Context, g coffer.GroupID, seq uint64) (cts []ratchettree.Ciphertext, ok bool) {
	c.ctPrefetch.mu.Lock()
	f := c.ctPrefetch.m[g]
	if f != nil && f.seq == seq {
		delete(c.ctPrefetch.m, g)
	}
	c.ctPrefetch.mu.Unlock()
	if f == nil || f.seq != seq {
		return nil, false
	}
	select {
	case <-f.done:
		return f.cts, f.err == nil
	case <-ctx.Done():
		return nil, false
	}
}
