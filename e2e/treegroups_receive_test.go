package e2e_test

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer"
)

// TestTreeReceiveRequests: a member that receives a removal, and a member
// that joins, fetch each commit once: the path replay after the sync reads
// the commits the sync verified (a second fetch was 15 KB of a receiver's
// 36 KB at 1,000 members). A receive also proves its commit in the
// checkpoint the witnesses cosigned, fetched once, and proves that
// checkpoint consistent with what the device held once.
func TestTreeReceiveRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	s := mustTreeStory(t, srv, "", "")
	if _, err := s.bob.ReadableEpochs(ctx, s.g); err != nil {
		t.Fatal(err)
	}
	routes := []struct{ method, route string }{
		{"GET", "/v1/groups/{groupID}/commits"},
		{"GET", "/v1/groups/{groupID}/commits/{seq}/tree-ciphertexts"},
		{"GET", "/v1/log/checkpoint"},
		{"GET", "/v1/log/proof/consistency"},
	}
	count := func() []int {
		n := make([]int, len(routes))
		for i, r := range routes {
			n[i] = srv.RequestCount(t, r.method, r.route)
		}
		return n
	}
	// check runs f and requires at most max[i] requests of route i, and
	// exactly max[0] commit pages.
	check := func(who string, f func() error, max ...int) {
		t.Helper()
		before := count()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		after := count()
		for i, r := range routes {
			got := after[i] - before[i]
			if got > max[i] || i == 0 && got != max[i] {
				t.Errorf("%s: %d requests of %s %s, want at most %d", who, got, r.method, r.route, max[i])
			}
		}
	}
	s.remove(t)
	check("a receiving member", func() error {
		epochs, err := s.bob.ReadableEpochs(ctx, s.g)
		if err == nil && len(epochs) == 0 {
			t.Error("bob reads no epoch after the removal")
		}
		return err
	}, 1, 1, 1, 1)

	dave := mustV2Client(t, srv.URL(), "dave")
	if err := s.alice.AddMember(ctx, s.g, "dave", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	check("a new member", func() error {
		epochs, err := dave.ReadableEpochs(ctx, s.g)
		if err == nil && len(epochs) == 0 {
			t.Error("dave reads no epoch of the group he joined")
		}
		return err
	}, 1, 1, 2, 2)
}
