package e2e_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferd"
)

// groupStateNames are the key store names that hold a group's verified
// state (clientlib/statetail.go): the snapshot's two slots and the tail
// record, which names the current slot and holds the head.
func groupStateNames(g coffer.GroupID) []string {
	return []string{"group/" + g.String() + "/state", "group/" + g.String() + "/state.1", "group/" + g.String() + "/tail"}
}

// storedGroupState returns the first of groupStateNames that ks holds, ""
// when it holds none: the device saved no state of g.
func storedGroupState(ks clientlib.KeyStore, g coffer.GroupID) string {
	for _, name := range groupStateNames(g) {
		if _, err := ks.Get(name); !errors.Is(err, clientlib.ErrNotFound) {
			return name
		}
	}
	return ""
}

// TestStoredStateTail: in suite v2 pairwise and tree groups large enough
// for a tail, commits after a snapshot append to the tail record and leave
// the snapshot as it was; a fresh client on the same key store loads the
// snapshot and re-verifies the tail (suite v2 commits need their authors'
// keys, which the tail carries: loading makes no request) and goes on
// from it: it syncs, and removes a member, which an older client then
// sees.
func TestStoredStateTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts *clientlib.GroupOptions
	}{{"v2", nil}, {"tree", &clientlib.GroupOptions{Tree: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			srv := MustServerWith(t, func(c *cofferd.Config) {
				c.AccountRateLimit, c.LogRateLimit, c.AuthRateLimit = 1e7, 1e7, 1e7
			})
			owner, ks := mustV2ClientKS(t, srv.URL(), "owner")
			handles := mustBulkV2Accounts(t, srv, srv.URL(), "m", 600)
			g := mustGroup(t, owner, "big", tc.opts)
			for i := 0; i < len(handles); i += 300 {
				if err := owner.AddMembers(ctx, g, handles[i:i+300], coffer.RoleReader); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := owner.Sync(ctx, g); err != nil {
				t.Fatal(err)
			}
			snapshots := func() map[string]string {
				out := map[string]string{}
				for _, name := range groupStateNames(g)[:2] {
					if b, err := ks.Get(name); err == nil {
						out[name] = string(b)
					}
				}
				return out
			}
			before := snapshots()
			tailBefore, err := ks.Get("group/" + g.String() + "/tail")
			if err != nil {
				t.Fatal(err)
			}
			if err := owner.Rotate(ctx, g); err != nil {
				t.Fatal(err)
			}
			if err := owner.RemoveMember(ctx, g, handles[0]); err != nil {
				t.Fatal(err)
			}
			tail, err := ks.Get("group/" + g.String() + "/tail")
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(snapshots(), before) || len(tail) <= len(tailBefore) {
				t.Fatalf("two commits rewrote the snapshot (tail %d bytes, then %d)", len(tailBefore), len(tail))
			}
			want, err := owner.Sync(ctx, g)
			if err != nil {
				t.Fatal(err)
			}

			fresh := MustNewClientWith(t, srv.URL(), ks, &clientlib.Options{SuiteV2Groups: true, TrustOnFirstUse: true})
			res, err := fresh.Sync(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			if res.State.Seq != want.State.Seq || res.State.Head != want.State.Head || res.New != 0 {
				t.Fatalf("a fresh client on the key store is at seq %d (%d new), want %d with nothing new", res.State.Seq, res.New, want.State.Seq)
			}
			if err := fresh.RemoveMember(ctx, g, handles[1]); err != nil {
				t.Fatal(err)
			}
			after, err := owner.Sync(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			if after.State.Seq != want.State.Seq+1 || after.New != 0 {
				t.Fatalf("the first client is at seq %d (%d new) after the fresh one removed a member at %d: it did not see the stored state", after.State.Seq, after.New, want.State.Seq+1)
			}
			for _, m := range after.State.Members {
				if string(m.Handle) == handles[1] {
					t.Fatalf("%s is still a member", handles[1])
				}
			}
		})
	}
}
