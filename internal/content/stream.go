package content

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/mod/sumdb/tlog"
)

// age's STREAM payload (C2SP age, "Payload"), sealed and opened many chunks
// at a time on all cores. age's own reader and writer work one chunk at a
// time on one goroutine, so the chunk AEAD is used here directly, exactly as
// the spec says:
//
//   - payload key = HKDF-SHA-256(ikm = file key, salt = the 16-byte nonce
//     that starts the payload, info = "payload");
//   - plaintext in 64 KiB chunks, each sealed with ChaCha20-Poly1305 under
//     the nonce counter ‖ flag: an 11-byte big-endian chunk counter from 0,
//     and a byte that is 1 for the final chunk and 0 for every other;
//   - the final chunk is 1 to 64 KiB long, or empty only when it is the
//     first and only chunk (empty plaintext).
//
// The tests prove byte-for-byte interoperability with filippo.io/age in both
// directions.
const (
	chunkSize    = 64 << 10
	encChunkSize = chunkSize + chacha20poly1305.Overhead
	nonceSize    = 16 // the payload nonce
)

func payloadAEAD(fileKey, nonce []byte) cipher.AEAD {
	key, err := hkdf.Key(sha256.New, fileKey, nonce, "payload", chacha20poly1305.KeySize)
	if err != nil {
		panic("content: HKDF failed: " + err.Error()) // only for huge outputs
	}
	a, err := chacha20poly1305.New(key)
	if err != nil {
		panic("content: " + err.Error()) // the key is always 32 bytes
	}
	return a
}

func chunkNonce(i uint64, final bool) []byte {
	n := make([]byte, chacha20poly1305.NonceSize)
	binary.BigEndian.PutUint64(n[3:11], i) // the top 3 counter bytes stay 0
	if final {
		n[11] = 1
	}
	return n
}

// batchChunks is how many chunks one batch seals or opens: enough to keep
// every core busy, few enough that a stream holds at most about
// 2 × batchChunks × 64 KiB (plaintext and ciphertext) at a time.
func batchChunks() int {
	return min(max(2*runtime.GOMAXPROCS(0), 2), 32)
}

// parallel runs f(0) … f(n-1) on up to GOMAXPROCS goroutines, the caller's
// among them, and returns when all have finished. No goroutine outlives the
// call, so a stream that is dropped midway leaves nothing running. The
// caller works too: a goroutine started per batch costs a start, a stack
// grown for the cipher and a wake-up of the caller, which is a few percent
// of a batch's CPU when the caller only waits.
func parallel(n int, f func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			f(i)
		}
	}
	for range workers - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}

// sealBatch seals the chunks of pt (full chunks, except that the last may be
// short when final) starting at chunk index first, into out, and puts each
// sealed chunk's leaf hash into leaves. It returns the ciphertext length.
func sealBatch(a cipher.AEAD, first uint64, pt, out []byte, final bool, leaves []tlog.Hash) int {
	n := len(leaves)
	parallel(n, func(j int) {
		lo := j * chunkSize
		hi := min(lo+chunkSize, len(pt))
		last := final && j == n-1
		dst := out[j*encChunkSize : j*encChunkSize]
		sealed := a.Seal(dst, chunkNonce(first+uint64(j), last), pt[lo:hi], nil)
		leaves[j] = leafHash(sealed)
	})
	return (n-1)*encChunkSize + (len(pt) - (n-1)*chunkSize) + chacha20poly1305.Overhead
}

// openBatch checks and opens the chunks of ct (each encChunkSize long but
// the last, which ends ct) starting at chunk index first; proven(j, chunk)
// says whether the j-th of them is proven against the signed tree (its leaf
// is first+1+j). Chunk first+count-1 is final when final is set.
// It writes the plaintext to pt and returns how many chunks, from the
// first, checked and opened, with the plaintext length of those, and
// whether the first bad chunk (if any) failed its hash rather than its
// AEAD.
func openBatch(a cipher.AEAD, proven func(j int, chunk []byte) bool, first uint64, ct, pt []byte, count int, final bool) (good, ptLen int, hashBad bool) {
	type result struct{ ok, hashOK bool }
	res := make([]result, count)
	parallel(count, func(j int) {
		lo := j * encChunkSize
		hi := min(lo+encChunkSize, len(ct))
		chunk := ct[lo:hi]
		if !proven(j, chunk) {
			return
		}
		res[j].hashOK = true
		last := final && j == count-1
		_, err := a.Open(pt[j*chunkSize:j*chunkSize], chunkNonce(first+uint64(j), last), chunk, nil)
		res[j].ok = err == nil
	})
	for good < count && res[good].ok {
		good++
	}
	if good < count {
		hashBad = !res[good].hashOK
	}
	if good == 0 {
		return 0, 0, hashBad
	}
	lastLen := min(len(ct), good*encChunkSize) - (good-1)*encChunkSize - chacha20poly1305.Overhead
	return good, (good-1)*chunkSize + lastLen, hashBad
}
