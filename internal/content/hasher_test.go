package content

import (
	"crypto/sha256"
	"hash"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// TestHasherOrder writes pieces of every kind of size (hashed inline,
// queued whole, split over several buffers), in random order of sizes, and
// checks the hash is that of their concatenation.
func TestHasherOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fill := rand.NewChaCha8([32]byte{1})
	sizes := []int{0, 1, hashInline, hashInline + 1, hashBufferSize - 1, hashBufferSize, hashBufferSize + 1,
		3*hashBufferSize + 7, 10 * hashBufferSize}
	for round := range 20 {
		a := newHasher()
		want := sha256.New()
		for range 10 {
			p := make([]byte, sizes[rng.IntN(len(sizes))])
			fill.Read(p)
			want.Write(p)
			a.write(p)
			clear(p)
		}
		if got := a.sum(); got != [32]byte(want.Sum(nil)) {
			t.Fatalf("round %d: hash differs from the hash of the concatenation", round)
		}
	}
}

// gatedHash is a hash whose Write waits for a token on gate.
type gatedHash struct {
	hash.Hash
	gate   chan struct{}
	writes atomic.Int64
}

func (g *gatedHash) Write(p []byte) (int, error) {
	<-g.gate
	g.writes.Add(1)
	return g.Hash.Write(p)
}

// TestHasherBounded checks that a producer faster than the hash waits once
// hashBuffers buffers are out, and that everything is still hashed in order
// once the hash catches up.
func TestHasherBounded(t *testing.T) {
	const pieces = 3 * hashBuffers
	gate := make(chan struct{})
	a := newHasher()
	gh := &gatedHash{Hash: sha256.New(), gate: gate}
	a.h = gh
	want := sha256.New()
	var queued atomic.Int64
	done := make(chan struct{})
	data := make([][]byte, pieces)
	for i := range data {
		data[i] = make([]byte, hashBufferSize)
		data[i][0] = byte(i)
		want.Write(data[i])
	}
	go func() {
		defer close(done)
		for _, p := range data {
			a.write(p)
			queued.Add(1)
		}
	}()
	// One buffer is in the worker's Write, the other hashBuffers-1 are
	// queued; the producer waits for a free one.
	for deadline := time.Now().Add(5 * time.Second); queued.Load() < hashBuffers && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if n := queued.Load(); n != hashBuffers {
		t.Fatalf("the producer queued %d buffers while the hash was stuck, want %d", n, hashBuffers)
	}
	close(gate)
	<-done
	if got := a.sum(); got != [32]byte(want.Sum(nil)) {
		t.Fatal("hash differs")
	}
	if gh.writes.Load() != pieces {
		t.Fatalf("%d writes reached the hash, want %d", gh.writes.Load(), pieces)
	}
	if a.free != nil && len(a.free) != hashBuffers {
		t.Fatalf("%d of %d buffers returned", len(a.free), hashBuffers)
	}
}

// TestHasherInline checks that small pieces on an idle hasher start no
// goroutine, so that small resources cost what they did.
func TestHasherInline(t *testing.T) {
	a := newHasher()
	a.write(make([]byte, 100))
	a.write(make([]byte, hashInline))
	if a.free != nil || !a.idle() {
		t.Fatal("a small piece was handed to a worker")
	}
	a.write(make([]byte, hashInline+1))
	if a.free == nil {
		t.Fatal("a large piece was hashed inline")
	}
	a.wait()
	if !a.idle() {
		t.Fatal("the worker still runs after wait")
	}
}
