package mobile_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/clientlib/mobile"
)

// BenchmarkPutGet1MiB puts 1 MiB and gets it back, through clientlib
// directly and through the facade (without and with a Progress callback),
// against one real server: the difference is what the facade costs. See
// docs/BENCHMARKS.md for the figures.
//
//	go test -run '^$' -bench PutGet1MiB -count 6 ./clientlib/mobile
func BenchmarkPutGet1MiB(b *testing.B) {
	ctx := context.Background()
	srv := MustServer(b)
	data := randomBytes(1 << 20)

	// Each sub-benchmark runs several times with growing b.N: set up once.
	direct, err := clientlib.New(srv.URL(), clientlib.NewMemoryKeyStore(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := direct.Register(ctx, "direct"); err != nil {
		b.Fatal(err)
	}
	directGroup, err := direct.CreateGroup(ctx, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	facade, _ := MustClient(b, srv, "facade")
	facadeGroup, err := facade.CreateGroup("bench", nil)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("clientlib", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for range b.N {
			res, err := direct.Put(ctx, directGroup, bytes.NewReader(data), clientlib.Meta{Name: "bench.bin", Size: int64(len(data))})
			if err != nil {
				b.Fatal(err)
			}
			rr, err := direct.Get(ctx, directGroup, res.ID)
			if err != nil {
				b.Fatal(err)
			}
			got, err := io.ReadAll(rr)
			rr.Close()
			if err != nil || len(got) != len(data) {
				b.Fatalf("get: %d bytes, %v", len(got), err)
			}
		}
	})
	for _, name := range []string{"facade", "facade+progress"} {
		b.Run(name, func(b *testing.B) {
			var p mobile.Progress
			if name == "facade+progress" {
				p = &progress{}
			}
			meta := &mobile.Meta{Name: "bench.bin"}
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for range b.N {
				res, err := facade.PutBytes(facadeGroup, data, meta, p, nil)
				if err != nil {
					b.Fatal(err)
				}
				got, err := facade.GetBytes(facadeGroup, res.ID, p, nil)
				if err != nil || len(got) != len(data) {
					b.Fatalf("get: %d bytes, %v", len(got), err)
				}
			}
		})
	}
}
