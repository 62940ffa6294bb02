package content_test

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// FuzzDecrypt feeds arbitrary bytes to Decrypt under a fixed key, once with
// a chunk tree and size made for the input (so only age's own checks and
// the binding can fail) and once with a size that does not fit. It must never panic,
// and every failure must be one of the package's errors.
func FuzzDecrypt(f *testing.F) {
	tg := target{
		k:     groupkey.EpochKey(sha256.Sum256([]byte("coffer fuzz epoch key"))),
		g:     coffer.GroupID{1},
		epoch: 7,
		r:     coffer.ResourceID{2},
	}
	// Seeds stay small: the fuzzer cannot forge authenticated chunks, and
	// minimizing a 64 KiB input takes it minutes. Multi-chunk streams are
	// covered by the unit tests.
	for _, pt := range [][]byte{nil, []byte("hello")} {
		f.Add(MustEncrypt(f, tg, pt).age())
	}
	other := tg
	other.epoch++
	f.Add(MustEncrypt(f, other, []byte("other epoch")).age())
	f.Add([]byte("age-encryption.org/v1\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		list, root, chunks, ok := content.TreeOf(data)
		if !ok {
			list, root, chunks = make([]byte, 64), [32]byte{}, 1
		}
		// Once under a tree made for data (only age's checks and the
		// binding can fail), once under a wrong one.
		for _, sz := range []int64{int64(len(data)), int64(len(data)) / 2} {
			_, err := decryptWith(tg, data, list, root, chunks, sz)
			if err != nil && !errors.Is(err, content.ErrWrongKey) && !errors.Is(err, content.ErrTampered) &&
				!errors.Is(err, content.ErrTruncated) && !errors.Is(err, content.ErrChunkHashes) {
				t.Fatalf("unclassified error: %v", err)
			}
		}
	})
}
