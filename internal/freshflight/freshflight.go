// Package freshflight shares one call of a function among the concurrent
// callers that want its answer, like singleflight, with one difference that
// freshness needs: a caller only ever shares a call that started after the
// caller arrived. A call already under way when a caller arrives may have
// read the state before the caller's own request began (a checkpoint from
// before a delete the caller knows finished), so that caller waits for the
// next call, which it shares with everyone who arrived meanwhile. Under
// load, N concurrent callers cost about two calls instead of N, and each
// answer is at least as new as its caller's request.
package freshflight

import (
	"context"
	"errors"
	"sync"
)

// Group runs calls of one function. The zero value is ready to use.
type Group[T any] struct {
	mu      sync.Mutex
	running *call[T] // the call under way
	next    *call[T] // the call queued behind it, for callers that came later
}

type call[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// Do returns the answer of a call of fn that started after Do was called:
// its own, or one it shares with other callers. fn runs with the context of
// the caller that starts it; when that caller's context ends and fails the
// call, a caller whose context has not ended starts another.
func (g *Group[T]) Do(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var mine *call[T] // the call this caller joined
	for {
		if mine != nil {
			// The call joined may have ended while this caller was not
			// looking (calls can be quick): take its answer.
			select {
			case <-mine.done:
				if mine.err != nil && ctx.Err() == nil && (errors.Is(mine.err, context.Canceled) || errors.Is(mine.err, context.DeadlineExceeded)) {
					// The caller that started it gave up; this one has not.
					mine = nil
					continue
				}
				return mine.val, mine.err
			default:
			}
		}
		g.mu.Lock()
		if g.running == nil {
			// Nothing is under way: start the queued call (every caller of
			// it arrived before now, this one included) or a new one.
			c := g.next
			if c == nil {
				c = &call[T]{done: make(chan struct{})}
			}
			g.running, g.next = c, nil
			g.mu.Unlock()
			c.val, c.err = fn(ctx)
			g.mu.Lock()
			g.running = nil
			close(c.done)
			g.mu.Unlock()
			return c.val, c.err
		}
		if mine == nil || (mine != g.running && mine != g.next) {
			// The call under way started before this caller: queue behind it.
			if g.next == nil {
				g.next = &call[T]{done: make(chan struct{})}
			}
			mine = g.next
		}
		wait := g.running
		g.mu.Unlock()
		select {
		case <-wait.done:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}
