package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// Run with:
//
//	go test ./e2e -run '^$' -bench 'Resource' -benchtime 5s
//
// These run server and client in one process; the figures in
// docs/BENCHMARKS.md come from cmd/coffer-bench, which separates them to
// measure each one's memory. The benchmarks here are for profiling:
//
//	go test ./e2e -run '^$' -bench 'ResourceSmallReads' -cpuprofile cpu.out

func BenchmarkResourceSmallReads(b *testing.B) {
	ctx := context.Background()
	srv := MustServer(b)
	alice := MustClient(b, srv, "alice")
	reader := MustClient(b, srv, "reader")
	g := mustGroup(b, alice, "bench", nil)
	mustAdd(b, alice, reader, g, coffer.RoleReader)
	data := randomContent(b, 1024)
	ids := make([]coffer.ResourceID, 200)
	for i := range ids {
		ids[i] = mustPut(b, alice, g, fmt.Sprint("small-", i), data).ID
	}
	for _, id := range ids {
		mustReadResource(b, reader, g, id) // warm: the reader's view of the group is cached
	}
	var next atomic.Int64
	b.SetParallelism(16) // × GOMAXPROCS goroutines: 32 on two cores
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 4096)
		for pb.Next() {
			id := ids[int(next.Add(1))%len(ids)]
			rr, err := reader.Get(ctx, g, id)
			if err != nil {
				b.Error(err)
				return
			}
			n, err := io.ReadFull(rr, buf[:len(data)])
			rr.Close()
			if err != nil || n != len(data) {
				b.Errorf("read %d bytes: %v", n, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkResourceLarge moves 64 MiB up and down per iteration, in one
// process: a quick look at the encrypted path's cost.
func BenchmarkResourceLarge(b *testing.B) {
	ctx := context.Background()
	srv := MustServer(b)
	alice := MustClient(b, srv, "alice")
	g := mustGroup(b, alice, "bench", nil)
	data := randomContent(b, 64<<20)
	b.Run("put", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := alice.Put(ctx, g, bytes.NewReader(data), clientlib.Meta{Name: "large"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	r := mustPut(b, alice, g, "large", data)
	b.Run("get", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rr, err := alice.Get(ctx, g, r.ID)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rr); err != nil {
				b.Fatal(err)
			}
			rr.Close()
		}
	})
}
