package clientlib

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer"
)

// A sync of a long history overlaps its three stages, which otherwise take
// turns on the client's and the server's cores: the next page is fetched
// while this one is verified, and each verified page is proven to be in the
// transparency log while the next ones are verified. Nothing is relied on
// early: the verified state is saved, and Sync returns, only after every
// page has passed both checks, and any failure fails the whole sync.

// commitPageResult is one page of a sync, or the error that ended it.
type commitPageResult struct {
	commits []coffer.SignedCommit
	err     error
}

// prefetchCommits fetches the commits of g after seq after, up to seq head,
// page by page on its own goroutine, at most one page ahead of the reader.
// The channel closes after the last page, an empty page (a withheld tail,
// which the caller's head check catches), or an error. The goroutine ends
// when ctx is done.
func (c *Client) prefetchCommits(ctx context.Context, p *pager[[32]byte], g coffer.GroupID, after, head uint64) <-chan commitPageResult {
	out := make(chan commitPageResult, 1)
	go func() {
		defer close(out)
		for after < head {
			commits, err := c.commitPage(ctx, p, g, after)
			// Writers may have appended since head was read; verify up to
			// it, whose hash the caller checks.
			if n := head - after; uint64(len(commits)) > n {
				commits = commits[:n]
			}
			select {
			case out <- commitPageResult{commits, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(commits) == 0 {
				return
			}
			after += uint64(len(commits))
		}
	}()
	return out
}

// proofsInFlight bounds the pages whose log proofs run beside verification.
const proofsInFlight = 2

// newProofGroup runs the log proofs of a sync's pages in the background.
func newProofGroup(ctx context.Context) (*errgroup.Group, context.Context) {
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(proofsInFlight)
	return eg, ctx
}
