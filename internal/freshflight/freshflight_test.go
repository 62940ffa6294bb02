package freshflight

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCallersShareOneLaterCall: while call 1 runs, 20 callers arrive. None
// gets call 1's answer, and they share the calls started after it.
func TestCallersShareOneLaterCall(t *testing.T) {
	var g Group[int]
	var calls atomic.Int64
	gate := make(chan struct{})
	started := make(chan struct{})
	fn := func(context.Context) (int, error) {
		n := int(calls.Add(1))
		if n == 1 {
			close(started)
			<-gate
		}
		return n, nil
	}
	first := make(chan int)
	go func() {
		v, _ := g.Do(context.Background(), fn)
		first <- v
	}()
	<-started
	const callers = 20
	var wg sync.WaitGroup
	got := make(chan int, callers)
	for range callers {
		wg.Go(func() {
			v, err := g.Do(context.Background(), fn)
			if err != nil {
				t.Error(err)
			}
			got <- v
		})
	}
	// Let them all queue behind call 1, then let it end.
	for deadline := time.Now().Add(10 * time.Second); ; {
		g.mu.Lock()
		queued := g.next != nil
		g.mu.Unlock()
		if queued || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	if v := <-first; v != 1 {
		t.Fatalf("the first caller got call %d", v)
	}
	wg.Wait()
	close(got)
	for v := range got {
		if v == 1 {
			t.Fatal("a caller that arrived while call 1 ran got its answer")
		}
	}
	// Call 1, the one queued behind it, and a few for callers a loaded
	// machine scheduled only after that one ended.
	if n := calls.Load(); n > callers/2 {
		t.Fatalf("%d concurrent callers made %d calls", callers, n)
	}
}

type leaderKey struct{}

// TestCanceledLeaderIsReplaced: the caller that starts the queued call
// gives up, failing it; a caller still waiting for that call starts
// another, and gets its answer, not the failure nor the older call's.
func TestCanceledLeaderIsReplaced(t *testing.T) {
	var g Group[string]
	gate := make(chan struct{})
	started := make(chan struct{})
	leaderIn := make(chan struct{})
	var calls atomic.Int64
	fn := func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			close(started)
			<-gate
			return "old", nil
		}
		if ctx.Value(leaderKey{}) != nil {
			close(leaderIn)
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "fresh", nil
	}
	go g.Do(context.Background(), fn)
	<-started
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), leaderKey{}, true))
	defer cancel()
	go g.Do(ctx, fn) // queued behind call 1
	for {
		g.mu.Lock()
		queued := g.next != nil
		g.mu.Unlock()
		if queued {
			break
		}
		time.Sleep(time.Millisecond)
	}
	res := make(chan string)
	go func() {
		v, err := g.Do(context.Background(), fn)
		if err != nil {
			t.Error(err)
		}
		res <- v
	}()
	time.Sleep(20 * time.Millisecond) // the waiting caller joins the queued call
	close(gate)
	select {
	case <-leaderIn:
		cancel() // the leader started call 2 and gives up
	case v := <-res:
		// The waiting caller started call 2 itself.
		if v != "fresh" {
			t.Fatalf("the waiting caller got %q", v)
		}
		return
	}
	if v := <-res; v != "fresh" {
		t.Fatalf("the waiting caller got %q, want the answer of a call started after it", v)
	}
}
