package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/store"
)

// BenchmarkLogAppend measures concurrent registrations (each one
// transaction: the account row and whatever the log needs) under three
// designs of the log append:
//
//   - nolog: the baseline, no log at all;
//   - pending: Coffer's design: one INSERT of a pending leaf into
//     log_entries; a sequencer integrates leaves in batches concurrently;
//   - counter: the alternative: the same INSERT plus taking the next leaf
//     index from a single counter row in the same transaction, whose row
//     lock every writer holds until it commits.
//
// Run with -cpu and with a cluster that fsyncs (COFFER_TEST_DATABASE_URL)
// to see the counter's lock held across each commit's WAL flush; see
// docs/BENCHMARKS.md.
func BenchmarkLogAppend(b *testing.B) {
	for _, design := range []string{"nolog", "pending", "counter"} {
		for _, writers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", design, writers), func(b *testing.B) {
				benchAppend(b, design, writers)
			})
		}
	}
}

func benchAppend(b *testing.B, design string, writers int) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	db := store.New(pool)
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_counter (n bigint NOT NULL); INSERT INTO bench_counter VALUES (0)`); err != nil {
		b.Fatal(err)
	}
	var lockWait atomic.Int64 // nanoseconds writers spent waiting for the counter row
	saved := *store.AfterAccountCreated
	b.Cleanup(func() { *store.AfterAccountCreated = saved })
	switch design {
	case "nolog":
		*store.AfterAccountCreated = func(context.Context, pgx.Tx, *coffer.Account) error { return nil }
	case "pending":
		*store.AfterAccountCreated = store.LogIdentity
	case "counter":
		*store.AfterAccountCreated = func(ctx context.Context, tx pgx.Tx, a *coffer.Account) error {
			if err := store.LogIdentity(ctx, tx, a); err != nil {
				return err
			}
			// Last statement before COMMIT: the row lock is held as briefly
			// as this design allows, yet across the commit itself.
			var n int64
			start := time.Now()
			err := tx.QueryRow(ctx, `UPDATE bench_counter SET n = n + 1 RETURNING n`).Scan(&n)
			lockWait.Add(int64(time.Since(start)))
			return err
		}
	}

	// A sequencer integrates in the background in every design, so that
	// all three pay for a busy database alike.
	signer := mustSigner(b)
	stop := make(chan struct{})
	var seq sync.WaitGroup
	seq.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n, err := db.IntegrateLog(ctx, signer, 10000); err != nil {
				b.Error(err)
				return
			} else if n == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	})
	defer func() { close(stop); seq.Wait() }()

	// Accounts are made before the timer: signing is not what we measure.
	accounts := make([]*coffer.Account, b.N)
	for i := range accounts {
		accounts[i] = newAccount(b, fmt.Sprintf("u%d-%d", i, time.Now().UnixNano()%1e6))
	}
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := db.CreateAccount(ctx, accounts[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if design == "counter" {
		b.ReportMetric(float64(lockWait.Load())/float64(b.N)/1e3, "µs-counter-wait/op")
	}
}

// BenchmarkLogProofs measures what the proofs of a sync of 10,000 commits
// cost the store: ten batches of 1,000 commits of one group, each proved in
// the tree that holds them all (LogProofs), as clientlib asks.
func BenchmarkLogProofs(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	db := store.New(pool)
	signer := mustSigner(b)
	const n = 10_000
	g := coffer.NewGroupID()
	var rows [][]any
	for seq := uint64(1); seq <= n; seq++ {
		rows = append(rows, commitLeafRow(g, seq))
	}
	cols := []string{"leaf", "leaf_hash", "group_id", "seq", "created_at"}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"log_entries"}, cols, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	size := int64(0)
	for {
		k, err := db.IntegrateLog(ctx, signer, n)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			break
		}
		size += int64(k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for first := uint64(1); first <= n; first += 1000 {
			refs := make([]coffer.LogRef, 1000)
			for i := range refs {
				refs[i] = coffer.LogRef{Group: g, Seq: first + uint64(i)}
			}
			proofs, err := db.LogProofs(ctx, size, refs)
			if err != nil {
				b.Fatal(err)
			}
			if proofs[999].Index < 0 || len(proofs[999].Proof) == 0 {
				b.Fatalf("commit %d is not proved", first+999)
			}
		}
	}
}
