package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// soakDuration is how long TestSoakHonestConcurrency runs its workload. It
// defaults to 60 s, long enough for hundreds of rotations to land between
// the reads of every client, and stops by itself. COFFER_SOAK_DURATION (a
// Go duration) sets it when flags are awkward, as under `go test ./...`.
var soakDuration = flag.Duration("soak", 0, "how long the honest-concurrency soak runs (default 60s, or $COFFER_SOAK_DURATION)")

func soakFor(tb testing.TB) time.Duration {
	tb.Helper()
	if *soakDuration > 0 {
		return *soakDuration
	}
	if s := os.Getenv("COFFER_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			tb.Fatalf("COFFER_SOAK_DURATION=%q is not a positive duration", s)
		}
		return d
	}
	return 60 * time.Second
}

// soakTally counts what a soak did and keeps every security error: under
// an honest server there must be none.
type soakTally struct {
	ctx      context.Context // the workload's; once done, failures are the cut-off
	mu       sync.Mutex
	ok       map[string]int
	other    map[string]int // non-security failures, by op and code
	security []string
	sample   []string // the first failure of each other kind, for the log
}

func (t *soakTally) record(who, op string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err == nil:
		t.ok[op]++
	case coffer.IsSecurity(err):
		t.security = append(t.security, fmt.Sprintf("%s %s: %v", who, op, err))
	case t.ctx.Err() != nil && !coffer.IsSecurity(err):
		// The soak's end cut the operation short.
	default:
		k := op + "/" + string(coffer.ErrorCode(err))
		if t.other[k] == 0 {
			t.sample = append(t.sample, fmt.Sprintf("%s %s: %v", who, op, err))
		}
		t.other[k]++
	}
}

// soakContent is what the soak writes and what every reader must get back:
// content by hash, for every write that was attempted.
type soakContent struct {
	mu      sync.Mutex
	written map[[32]byte]bool
}

func (s *soakContent) make(who string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	b = append(b, who...)
	s.mu.Lock()
	s.written[sha256.Sum256(b)] = true
	s.mu.Unlock()
	return b
}

func (s *soakContent) known(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written[sha256.Sum256(b)]
}

// TestSoakHonestConcurrency runs an honest cofferd under membership churn:
// the owner rotates continuously, an admin and the owner add and remove
// members, and every member puts, replaces, gets, lists and deletes at the
// same time, for soakFor. No client may report a security error: a
// rotation landing between a client's reads is honest concurrency, not an
// attack. At the end every current member must agree on the membership and
// read every resource, byte for byte as written.
func TestSoakHonestConcurrency(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: not in -short")
	}
	// It waits more than it computes, on servers of its own: it runs beside
	// the other parallel tests so the suite stays well inside go test's
	// default timeout.
	t.Parallel()
	const (
		stable   = 12 // writers that stay members throughout
		floating = 6  // writers the owner and admin remove and add back
	)
	ctx := context.Background()
	srv := MustServer(t)
	owner := MustClient(t, srv, "soak-owner")
	admin := MustClient(t, srv, "soak-admin")
	g := mustGroup(t, owner, "soak", nil)
	mustAdd(t, owner, admin, g, coffer.RoleAdmin)

	var writers []*clientlib.Client
	isFloating := map[string]bool{}
	for i := range stable + floating {
		h := fmt.Sprintf("soak-w%02d", i)
		c := MustClient(t, srv, h)
		mustVerify(t, admin, c)
		mustAdd(t, owner, c, g, coffer.RoleWriter)
		writers = append(writers, c)
		if i >= stable {
			isFloating[h] = true
		}
	}
	everyone := append([]*clientlib.Client{owner, admin}, writers...)
	handle := func(c *clientlib.Client) string { return string(c.Identity().Handle()) }

	content := &soakContent{written: map[[32]byte]bool{}}
	d := soakFor(t)
	t.Logf("soak: %d clients for %v", len(everyone), d)
	runCtx, stop := context.WithTimeout(ctx, d)
	defer stop()
	tally := &soakTally{ctx: runCtx, ok: map[string]int{}, other: map[string]int{}}

	// membershipMu serializes the test's own picks of whom to add or
	// remove, not the commits: the owner's and the admin's commits still
	// race on the server.
	var membershipMu sync.Mutex
	out := map[string]bool{} // floating writers currently removed
	changeMembership := func(c *clientlib.Client, r *rand.Rand) {
		membershipMu.Lock()
		var candidates []string
		for h := range isFloating {
			candidates = append(candidates, h)
		}
		sort.Strings(candidates)
		h := candidates[r.IntN(len(candidates))]
		wasOut := out[h]
		membershipMu.Unlock()
		var err error
		op := "remove"
		if wasOut {
			op = "add"
			err = c.AddMember(runCtx, g, h, coffer.RoleWriter)
		} else {
			err = c.RemoveMember(runCtx, g, h)
		}
		tally.record(handle(c), op, err)
		if err == nil {
			membershipMu.Lock()
			out[h] = !wasOut
			membershipMu.Unlock()
		}
	}

	var rotations atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		r := rand.New(rand.NewPCG(1, 1))
		for runCtx.Err() == nil {
			if r.IntN(3) == 0 {
				changeMembership(owner, r)
				continue
			}
			err := owner.Rotate(runCtx, g)
			tally.record(handle(owner), "rotate", err)
			if err == nil {
				rotations.Add(1)
			}
		}
	})
	wg.Go(func() {
		r := rand.New(rand.NewPCG(2, 2))
		for runCtx.Err() == nil {
			if r.IntN(2) == 0 {
				changeMembership(admin, r)
			} else {
				_, err := admin.List(runCtx, g)
				tally.record(handle(admin), "list", err)
				gr, err := admin.Group(runCtx, g)
				tally.record(handle(admin), "group", err)
				if err == nil && gr.Name != "soak" {
					t.Errorf("the admin sees the group named %q during a rotation", gr.Name)
				}
			}
			sleepCtx(runCtx, time.Duration(r.IntN(50))*time.Millisecond)
		}
	})
	for i, w := range writers {
		wg.Go(func() { soakWriter(runCtx, t, w, g, uint64(10+i), tally, content) })
		// A second goroutine on the same client, as an app reading while
		// it uploads: one client's own requests race each other too.
		wg.Go(func() { soakReader(runCtx, t, w, g, uint64(100+i), tally, content) })
	}
	wg.Wait()

	tally.mu.Lock()
	t.Logf("soak: %d rotations; succeeded %v; other failures %v", rotations.Load(), tally.ok, tally.other)
	for _, s := range tally.sample {
		t.Logf("soak: first of its kind: %s", s)
	}
	for _, s := range tally.security {
		t.Errorf("security error under an honest server: %s", s)
	}
	tally.mu.Unlock()
	for _, op := range []string{"rotate", "add", "remove", "put", "replace", "get", "list", "group"} {
		if tally.ok[op] == 0 {
			t.Errorf("no %s succeeded: the soak did not exercise it", op)
		}
	}

	// Everyone the owner's verified head lists agrees on it, and reads
	// every resource byte for byte.
	final, err := owner.Sync(ctx, g)
	if err != nil {
		t.Fatalf("owner's final sync: %v", err)
	}
	var want []string
	for _, m := range final.State.SortedMembers() {
		want = append(want, string(m.Handle))
	}
	resources, err := owner.List(ctx, g)
	if err != nil {
		t.Fatalf("owner's final list: %v", err)
	}
	if len(resources) == 0 {
		t.Fatal("the soak left no resources to read")
	}
	var reference map[coffer.ResourceID][]byte
	for _, c := range everyone {
		if !slices.Contains(want, handle(c)) {
			if _, err := c.Sync(ctx, g); coffer.IsSecurity(err) {
				t.Errorf("%s, removed, gets a security error on sync: %v", handle(c), err)
			}
			continue
		}
		res, err := c.Sync(ctx, g)
		if err != nil {
			t.Errorf("%s: final sync: %v", handle(c), err)
			continue
		}
		var got []string
		for _, m := range res.State.SortedMembers() {
			got = append(got, string(m.Handle))
		}
		if res.State.Head != final.State.Head || !slices.Equal(got, want) {
			t.Errorf("%s sees seq %d with %v; the owner sees seq %d with %v", handle(c), res.State.Seq, got, final.State.Seq, want)
		}
		read := map[coffer.ResourceID][]byte{}
		for _, r := range resources {
			b, err := soakRead(ctx, c, g, r.ID)
			if err != nil {
				t.Errorf("%s cannot read %s (version %d): %v", handle(c), r.ID, r.Version, err)
				continue
			}
			if !content.known(b) {
				t.Errorf("%s reads %s as content nobody wrote", handle(c), r.ID)
			}
			read[r.ID] = b
		}
		if reference == nil {
			reference = read
			continue
		}
		for id, b := range read {
			if !bytes.Equal(b, reference[id]) {
				t.Errorf("%s reads %s differently from %s", handle(c), id, handle(owner))
			}
		}
	}
}

// soakWriter is one member's workload until ctx ends: mostly reads and
// lists, some puts, replaces of its own resources and deletes.
func soakWriter(ctx context.Context, t *testing.T, c *clientlib.Client, g coffer.GroupID, seed uint64, tally *soakTally, content *soakContent) {
	r := rand.New(rand.NewPCG(seed, seed))
	who := string(c.Identity().Handle())
	var mine []coffer.ResourceID
	var known []coffer.ResourceID
	for ctx.Err() == nil {
		var err error
		switch n := r.IntN(20); {
		case n < 4 || len(mine) == 0:
			b := content.make(who, 1+r.IntN(100_000))
			var res *clientlib.Resource
			res, err = c.Put(ctx, g, bytes.NewReader(b), clientlib.Meta{Name: fmt.Sprintf("%s-%d", who, len(mine))})
			tally.record(who, "put", err)
			if err == nil {
				mine = append(mine, res.ID)
			}
		case n < 7:
			id := mine[r.IntN(len(mine))]
			b := content.make(who, 1+r.IntN(100_000))
			_, err = c.Replace(ctx, g, id, 0, bytes.NewReader(b), clientlib.Meta{Name: who + "-replaced"}, nil)
			tally.record(who, "replace", err)
		case n < 8 && len(mine) > 3:
			i := r.IntN(len(mine))
			err = c.Delete(ctx, g, mine[i])
			tally.record(who, "delete", err)
			if err == nil || coffer.ErrorCode(err) == coffer.ENOTFOUND {
				mine = slices.Delete(mine, i, i+1)
			}
		case n < 12:
			var list []*clientlib.Resource
			list, err = c.List(ctx, g)
			tally.record(who, "list", err)
			if err == nil {
				known = known[:0]
				for _, res := range list {
					known = append(known, res.ID)
				}
			}
		default:
			if len(known) == 0 {
				known = append(known, mine...)
			}
			id := known[r.IntN(len(known))]
			var b []byte
			b, err = soakRead(ctx, c, g, id)
			tally.record(who, "get", err)
			if err == nil && !content.known(b) {
				t.Errorf("%s read %s as content nobody wrote", who, id)
			}
		}
		if err != nil {
			// Removed members fail fast; do not let them spin.
			sleepCtx(ctx, time.Duration(10+r.IntN(40))*time.Millisecond)
		}
	}
}

// soakReader lists and reads on a writer's client, beside its writes.
func soakReader(ctx context.Context, t *testing.T, c *clientlib.Client, g coffer.GroupID, seed uint64, tally *soakTally, content *soakContent) {
	r := rand.New(rand.NewPCG(seed, seed))
	who := string(c.Identity().Handle())
	for ctx.Err() == nil {
		list, err := c.List(ctx, g)
		tally.record(who, "list", err)
		for i := 0; err == nil && i < 3 && len(list) > 0; i++ {
			id := list[r.IntN(len(list))].ID
			var b []byte
			b, err = soakRead(ctx, c, g, id)
			tally.record(who, "get", err)
			if err == nil && !content.known(b) {
				t.Errorf("%s read %s as content nobody wrote", who, id)
			}
		}
		if err != nil {
			sleepCtx(ctx, time.Duration(10+r.IntN(40))*time.Millisecond)
		}
	}
}

// soakRead reads a whole resource.
func soakRead(ctx context.Context, c *clientlib.Client, g coffer.GroupID, id coffer.ResourceID) ([]byte, error) {
	rr, err := c.Get(ctx, g, id)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	b, err := io.ReadAll(rr)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
