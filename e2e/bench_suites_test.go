package e2e_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// BenchmarkSyncSuites times a member's first sync of the same history in a
// suite v1 group and in a suite v2 group (hybrid commits, members' keys by
// hash), in one run, against a real cofferd and PostgreSQL. Each history is
// made through clientlib by a suite v2 account: COFFER_BENCH_SYNC_COMMITS
// commits (default 1,000) that add and remove members of a pool of eight
// in turn (every removal rotates). The syncing member joined at the
// genesis, so its first sync verifies every commit, proves every commit's
// inclusion in the log and, in suite v2, fetches the keys the commits
// refer to. The v1 sub-benchmark is the limit: issue 13 asks a suite v2
// sync for at most 1.5 times it.
//
//	COFFER_BENCH_SYNC_COMMITS=10000 go test ./e2e -run '^$' -bench BenchmarkSyncSuites -benchtime 1x -timeout 60m
func BenchmarkSyncSuites(b *testing.B) {
	n := 1000
	if testing.Short() {
		n = 12 // CI runs every benchmark once with -short
	}
	if v := os.Getenv("COFFER_BENCH_SYNC_COMMITS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2 {
			b.Fatalf("COFFER_BENCH_SYNC_COMMITS=%q: want a number of commits, at least 2", v)
		}
	}
	ctx := context.Background()
	srv := MustServer(b)
	var limit time.Duration
	for _, suite := range []string{"v1", "v2"} {
		owner := MustNewClientWith(b, srv.URL(), NewCanaryKeyStore(), &clientlib.Options{SuiteV2Groups: suite == "v2", TrustOnFirstUse: true})
		if _, err := owner.CreateAccount(ctx, "owner"+suite, "desk"); err != nil {
			b.Fatal(err)
		}
		var pool []string
		for i := range 8 {
			h := fmt.Sprintf("p%d%s", i, suite)
			c := MustNewClientWith(b, srv.URL(), NewCanaryKeyStore(), nil)
			if _, err := c.CreateAccount(ctx, h, "desk"); err != nil {
				b.Fatal(err)
			}
			pool = append(pool, h)
		}
		reader := MustNewClientWith(b, srv.URL(), NewCanaryKeyStore(), &clientlib.Options{TrustOnFirstUse: true})
		if _, err := reader.CreateAccount(ctx, "reader"+suite, "desk"); err != nil {
			b.Fatal(err)
		}
		g, err := owner.CreateGroup(ctx, "long "+suite, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := owner.AddMember(ctx, g, "reader"+suite, coffer.RoleReader); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		for k := 2; k < n; k++ {
			h := pool[(k/2)%len(pool)]
			if k%2 == 0 {
				err = owner.AddMember(ctx, g, h, coffer.RoleReader)
			} else {
				err = owner.RemoveMember(ctx, g, h)
			}
			if err != nil {
				b.Fatalf("commit %d: %v", k+1, err)
			}
			if k%500 == 0 {
				b.Logf("suite %s: %d of %d commits made in %s", suite, k, n, time.Since(t0).Round(time.Second))
			}
		}
		b.Run("sync-"+suite, func(b *testing.B) {
			for range b.N {
				res, err := reader.Sync(ctx, g)
				if err != nil {
					b.Fatal(err)
				}
				if res.State.Seq != uint64(n) || (suite == "v2") != (res.State.Suite == coffer.SuiteV2) {
					b.Fatalf("synced to seq %d of suite %d", res.State.Seq, res.State.Suite)
				}
			}
			if suite == "v1" {
				limit = b.Elapsed() / time.Duration(b.N)
			} else {
				reportAgainstLimit(b, limit, 1.5)
			}
		})
	}
}
