package content_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// FuzzDecrypt feeds arbitrary bytes to Decrypt under a fixed key, once with
// a signed hash and size that match the input (so only age's own checks and
// the binding can fail) and once with ones that do not. It must never panic,
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
		ct, _, _ := MustEncrypt(f, tg, pt)
		f.Add(ct)
	}
	other := tg
	other.epoch++
	ct, _, _ := MustEncrypt(f, other, []byte("other epoch"))
	f.Add(ct)
	f.Add([]byte("age-encryption.org/v1\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, signed := range []struct {
			hash [32]byte
			size int64
		}{
			{sha256.Sum256(data), int64(len(data))},
			{[32]byte{}, int64(len(data)) / 2},
		} {
			r, err := content.Decrypt(bytes.NewReader(data), tg.k, tg.g, tg.epoch, tg.r, signed.hash, signed.size)
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
			if err != nil && !errors.Is(err, content.ErrWrongKey) && !errors.Is(err, content.ErrTampered) &&
				!errors.Is(err, content.ErrTruncated) && !errors.Is(err, content.ErrHashMismatch) {
				t.Fatalf("unclassified error: %v", err)
			}
		}
	})
}
