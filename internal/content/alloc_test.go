package content_test

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/cofferhq/coffer/internal/content"
)

// bytesAllocated returns the heap bytes f allocates, on average over runs.
// It counts allocations, not time, so it is exact whatever the machine's
// load.
func bytesAllocated(runs int, f func()) uint64 {
	f() // warm up: pools and lazily built tables
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

func mustDecryptTo(tb testing.TB, tg target, s sealed, dst io.Writer) {
	tb.Helper()
	hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := content.Decrypt(bytes.NewReader(s.age()), hs, tg.k, tg.g, tg.epoch, tg.r, s.size)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.CopyBuffer(dst, r, make([]byte, 32<<10)); err != nil {
		tb.Fatal(err)
	}
}

// TestSmallDecryptAllocatesLittle: reading a small resource costs buffers
// of its size, not a batch of 64 KiB chunks (which, made and cleared for
// every read, dominated the CPU of small reads).
func TestSmallDecryptAllocatesLittle(t *testing.T) {
	for _, n := range []int{0, 1, 1024, 16 << 10} {
		tg := newTarget()
		pt := plaintextOf(n)
		s := MustEncrypt(t, tg, pt)
		var got bytes.Buffer
		mustDecryptTo(t, tg, s, &got)
		if !bytes.Equal(got.Bytes(), pt) {
			t.Fatalf("%d bytes: plaintext differs", n)
		}
		// The copy buffer of the test (32 KiB) and what decryption needs:
		// the ciphertext and plaintext once each, age's header parsing and
		// the AEAD keys (about 16 KiB, most of it in age).
		budget := uint64(32<<10 + 2*n + 24<<10)
		if a := bytesAllocated(20, func() { mustDecryptTo(t, tg, s, io.Discard) }); a > budget {
			t.Errorf("decrypting %d bytes allocates %d bytes, want at most %d", n, a, budget)
		}
	}
}

// TestLargeDecryptReusesBuffers: the batch buffers of a stream that was
// read to the end serve the next stream.
func TestLargeDecryptReusesBuffers(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, plaintextOf(40<<16+5))
	batch := uint64(2 * runtime.GOMAXPROCS(0) * 64 << 10) // plaintext and ciphertext of one batch, at least
	if a := bytesAllocated(10, func() { mustDecryptTo(t, tg, s, io.Discard) }); a >= batch {
		t.Errorf("decrypting %d bytes allocates %d bytes a stream, want less than a batch of buffers (%d)", 40<<16+5, a, batch)
	}
}
