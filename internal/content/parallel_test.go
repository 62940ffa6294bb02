package content_test

import (
	"bytes"
	"io"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/cofferhq/coffer/internal/content"
)

func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestBatchGoroutines: the goroutine that reads or writes a stream works on
// its batches too, so a batch starts GOMAXPROCS-1 goroutines, not
// GOMAXPROCS (each start costs a stack grown for the cipher and a wake-up
// of the waiting caller: CPU beyond the cryptography). With two Ps, a
// 64-chunk stream is 16 batches each way.
func TestBatchGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	tg := newTarget()
	plaintext := plaintextOf(64 * content.ChunkSize)
	const batches, slack = 16, 4
	before := goroutinesCreated()
	s := MustEncrypt(t, tg, plaintext)
	if n := goroutinesCreated() - before; n > batches+1+slack {
		t.Errorf("encrypting %d batches started %d goroutines, want about %d", batches, n, batches+1)
	}
	hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	if err != nil {
		t.Fatal(err)
	}
	before = goroutinesCreated()
	r, err := content.Decrypt(bytes.NewReader(s.age()), hs, tg.k, tg.g, tg.epoch, tg.r, s.size)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("decrypt: %d bytes, %v", len(got), err)
	}
	if n := goroutinesCreated() - before; n > batches+slack {
		t.Errorf("decrypting %d batches started %d goroutines, want about %d", batches, n, batches)
	}
}
