package store_test

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/proccpu"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/store"
)

// BenchmarkHeadsMapUpdate measures what a committed change costs the
// sequencer once the heads map is in every checkpoint: a map of n groups,
// batches of 100 commits to random groups, each batch integrated (log
// hashes, map entries and hashes, signed checkpoint) in one transaction.
// It reports the cost per change beside the target (1 ms) and the size of
// one map proof beside its target (2 KiB). The 1M size is skipped with
// -short; it spends about a minute building its map.
func BenchmarkHeadsMapUpdate(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			if testing.Short() && n > 10_000 {
				b.Skip("-short")
			}
			benchMapUpdate(b, n)
		})
	}
}

func commitLeafRow(g coffer.GroupID, seq uint64) []any {
	sc := coffer.SignedCommit{Body: make([]byte, 96), Signature: make([]byte, coffer.SignatureSize)}
	rand.Read(sc.Body)
	// A commit leaf's signature size follows its body's version byte.
	sc.Body[0] = coffer.SuiteV1
	leaf := translog.CommitLeaf(g, seq, sc)
	h := translog.RecordHash(leaf)
	return []any{leaf, h[:], g, int64(seq), time.Now()}
}

func benchMapUpdate(b *testing.B, n int) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	db := store.New(pool)
	signer := mustSigner(b)
	cols := []string{"leaf", "leaf_hash", "group_id", "seq", "created_at"}
	groups := make([]coffer.GroupID, n)
	heads := make([]uint64, n)
	for start := 0; start < n; start += 50_000 {
		var rows [][]any
		for i := start; i < min(n, start+50_000); i++ {
			groups[i], heads[i] = coffer.NewGroupID(), 1
			rows = append(rows, commitLeafRow(groups[i], 1))
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"log_entries"}, cols, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		for {
			k, err := db.IntegrateLog(ctx, signer, 10_000)
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
		}
	}
	// The cluster's postmaster: its tree's CPU is Postgres's share.
	var backend int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	postmaster := proccpu.Parent(backend)
	rng := mrand.New(mrand.NewPCG(3, 4))
	const batch = 100
	var cpu, pgCPU time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		rows := make([][]any, batch)
		for j := range rows {
			i := rng.IntN(n)
			heads[i]++
			rows[j] = commitLeafRow(groups[i], heads[i])
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"log_entries"}, cols, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		before, pgBefore := proccpu.Self(), proccpu.Tree(postmaster)
		if k, err := db.IntegrateLog(ctx, signer, 10_000); err != nil || k != batch {
			b.Fatal(k, err)
		}
		cpu += proccpu.Self() - before
		pgCPU += proccpu.Tree(postmaster) - pgBefore
	}
	b.StopTimer()
	perChange := b.Elapsed().Seconds() / float64(b.N*batch)
	b.ReportMetric(perChange*1e6, "µs/change")
	b.ReportMetric(1000, "target-µs/change")
	// The sequencer's own CPU (this process) and the cluster's (every
	// Postgres process, so WAL writing too); the rest of the wall time is
	// waiting, mostly for fsync. /proc counts in 10 ms ticks: run enough
	// batches (-benchtime 20x is 2,000 changes) for a figure to the µs.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*batch), "cofferd-cpu-µs/change")
	b.ReportMetric(float64(pgCPU.Microseconds())/float64(b.N*batch), "postgres-cpu-µs/change")
	b.ReportMetric(float64((cpu+pgCPU).Microseconds())/float64(b.N*batch), "server-cpu-µs/change")

	note, _ := db.LogCheckpoint(ctx)
	v, _ := translog.NewVerifier(signer.VerifierKey())
	cp, err := v.Open(note)
	if err != nil {
		b.Fatal(err)
	}
	key := translog.GroupKey(groups[1+rng.IntN(n-1)])
	ps, err := db.MapProofs(ctx, cp.Size, []translog.MapKey{key})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := translog.CheckMapEntry(cp, key, ps[0]); err != nil {
		b.Fatal(err)
	}
	size := len(ps[0].Entry) + 32*len(ps[0].Proof) + 8
	b.ReportMetric(float64(size), "proof-bytes")
	b.ReportMetric(2048, "target-proof-bytes")
}
