package content_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// target is what a resource's content is bound to.
type target struct {
	k     groupkey.EpochKey
	g     coffer.GroupID
	epoch uint64
	r     coffer.ResourceID
}

func newTarget() target {
	return target{groupkey.NewEpochKey(), coffer.NewGroupID(), 3, coffer.NewResourceID()}
}

// MustEncrypt encrypts plaintext for t and returns the ciphertext with the
// hash and size Writer.Sum reports.
func MustEncrypt(tb testing.TB, t target, plaintext []byte) (ct []byte, hash [32]byte, size int64) {
	tb.Helper()
	var buf bytes.Buffer
	w, err := content.Encrypt(&buf, t.k, t.g, t.epoch, t.r)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	hash, size = w.Sum()
	return buf.Bytes(), hash, size
}

// decryptAll decrypts ct for t and reads the stream to the end.
func decryptAll(ct []byte, t target, hash [32]byte, size int64) ([]byte, error) {
	r, err := content.Decrypt(bytes.NewReader(ct), t.k, t.g, t.epoch, t.r, hash, size)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	const chunk = 64 << 10
	for _, n := range []int{0, 1, 100, chunk - 1, chunk, chunk + 1, 2 * chunk, 3*chunk + 17} {
		tg := newTarget()
		plaintext := make([]byte, n)
		rand.NewChaCha8([32]byte{byte(n)}).Read(plaintext)
		ct, hash, size := MustEncrypt(t, tg, plaintext)
		if hash != sha256.Sum256(ct) || size != int64(len(ct)) {
			t.Fatalf("%d bytes: Sum does not describe the ciphertext written", n)
		}
		got, err := decryptAll(ct, tg, hash, size)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("%d bytes: plaintext differs", n)
		}
	}
}

func TestEncryptUsesFreshFileKeys(t *testing.T) {
	tg := newTarget()
	a, _, _ := MustEncrypt(t, tg, []byte("same"))
	b, _, _ := MustEncrypt(t, tg, []byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two encryptions of the same content are equal")
	}
}

func TestWrongBinding(t *testing.T) {
	tg := newTarget()
	ct, hash, size := MustEncrypt(t, tg, []byte("hello"))
	tests := []struct {
		name string
		t    target
		want string // what the error must name
	}{
		{"other group", target{tg.k, coffer.NewGroupID(), tg.epoch, tg.r}, "group"},
		{"other epoch", target{tg.k, tg.g, tg.epoch + 1, tg.r}, "epoch"},
		{"other resource", target{tg.k, tg.g, tg.epoch, coffer.NewResourceID()}, "resource"},
		{"other key", target{groupkey.NewEpochKey(), tg.g, tg.epoch, tg.r}, "does not unwrap"},
	}
	for _, tt := range tests {
		_, err := decryptAll(ct, tt.t, hash, size)
		if !errors.Is(err, content.ErrWrongKey) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want ErrWrongKey naming %q", tt.name, err, tt.want)
		}
		if !errors.Is(err, age.ErrIncorrectIdentity) {
			t.Errorf("%s: %v does not match age.ErrIncorrectIdentity", tt.name, err)
		}
	}
}

// TestRewrittenStanzaArgs checks that the stanza's clear-text arguments are
// only hints: rewriting them to match the reader does not make content of
// another resource decrypt.
func TestRewrittenStanzaArgs(t *testing.T) {
	tg := newTarget()
	other := tg
	other.r = coffer.NewResourceID()
	ct, _, _ := MustEncrypt(t, other, []byte("hello"))
	ct = bytes.Replace(ct, []byte(other.r.String()), []byte(tg.r.String()), 1)
	_, err := decryptAll(ct, tg, sha256.Sum256(ct), int64(len(ct)))
	if !errors.Is(err, content.ErrWrongKey) {
		t.Fatalf("got %v, want ErrWrongKey", err)
	}
}

func TestHashMismatch(t *testing.T) {
	tg := newTarget()
	// A replace: version 2 of the same resource under the same epoch. age
	// accepts version 1's ciphertext; only the signed hash can tell.
	v1, _, _ := MustEncrypt(t, tg, []byte("version 1"))
	_, hash2, size2 := MustEncrypt(t, tg, []byte("version 2"))
	if _, err := decryptAll(v1, tg, hash2, size2); !errors.Is(err, content.ErrHashMismatch) {
		t.Errorf("rollback to version 1: got %v, want ErrHashMismatch", err)
	}

	ct, hash, size := MustEncrypt(t, tg, []byte("hello"))
	tests := []struct {
		name string
		ct   []byte
		hash [32]byte
		size int64
	}{
		{"other hash", ct, sha256.Sum256([]byte("x")), size},
		{"signed size larger", ct, hash, size + 1},
		{"signed size smaller", ct, hash, size - 1},
		{"signed size zero", ct, hash, 0},
		{"trailing byte", append(bytes.Clone(ct), 0), hash, size},
		{"trailing chunk", append(bytes.Clone(ct), make([]byte, 1<<20)...), hash, size},
	}
	for _, tt := range tests {
		if _, err := decryptAll(tt.ct, tg, tt.hash, tt.size); !errors.Is(err, content.ErrHashMismatch) {
			t.Errorf("%s: got %v, want ErrHashMismatch", tt.name, err)
		}
	}
}

// TestErrorsAreSticky checks that a failed stream keeps failing: a caller
// that retries a read must not get more plaintext.
func TestErrorsAreSticky(t *testing.T) {
	tg := newTarget()
	ct, _, size := MustEncrypt(t, tg, []byte("hello"))
	r, err := content.Decrypt(bytes.NewReader(ct), tg.k, tg.g, tg.epoch, tg.r, [32]byte{}, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, content.ErrHashMismatch) {
		t.Fatalf("got %v, want ErrHashMismatch", err)
	}
	for range 2 {
		if n, err := r.Read(make([]byte, 10)); n != 0 || !errors.Is(err, content.ErrHashMismatch) {
			t.Fatalf("read after failure: %d, %v", n, err)
		}
	}
}

// TestTruncation cuts a two-chunk ciphertext at every interesting length.
// With the honest signed size every cut is ErrTruncated; with a header
// re-signed for the cut bytes, age alone must still refuse them.
func TestTruncation(t *testing.T) {
	tg := newTarget()
	plaintext := make([]byte, 64<<10+10)
	ct, hash, size := MustEncrypt(t, tg, plaintext)
	cuts := []int{0, 1, 20, 60, 100, 150}
	for n := len(ct) - 64<<10 - 200; n < len(ct); n += 509 {
		cuts = append(cuts, n)
	}
	cuts = append(cuts, len(ct)-10-16-1, len(ct)-10-16, len(ct)-1)
	for _, n := range cuts {
		cut := ct[:n]
		if _, err := decryptAll(cut, tg, hash, size); !errors.Is(err, content.ErrTruncated) {
			t.Errorf("cut at %d: got %v, want ErrTruncated", n, err)
		}
		if _, err := decryptAll(cut, tg, sha256.Sum256(cut), int64(n)); err == nil {
			t.Errorf("cut at %d: age accepted a truncated file", n)
		}
	}
}

// TestMangling flips every byte of a small ciphertext. Every variant must
// fail: against the honest signed hash, and against a hash re-signed for the
// mangled bytes (which only age's own authentication can catch).
func TestMangling(t *testing.T) {
	tg := newTarget()
	ct, hash, size := MustEncrypt(t, tg, []byte("a small resource"))
	for i := range ct {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			m := bytes.Clone(ct)
			m[i] ^= mask
			if _, err := decryptAll(m, tg, hash, size); err == nil {
				t.Fatalf("byte %d ^ %#x: accepted under the signed hash", i, mask)
			}
			if _, err := decryptAll(m, tg, sha256.Sum256(m), size); err == nil {
				t.Fatalf("byte %d ^ %#x: age accepted a mangled file", i, mask)
			} else if !errors.Is(err, content.ErrTampered) && !errors.Is(err, content.ErrWrongKey) &&
				!errors.Is(err, content.ErrTruncated) {
				t.Fatalf("byte %d ^ %#x: unclassified error %v", i, mask, err)
			}
		}
	}
}

// TestTamperedChunk flips a byte of the second chunk: the first chunk's
// plaintext is delivered, then the read fails with ErrTampered.
func TestTamperedChunk(t *testing.T) {
	tg := newTarget()
	ct, _, size := MustEncrypt(t, tg, make([]byte, 100<<10))
	ct[len(ct)-100] ^= 1
	r, err := content.Decrypt(bytes.NewReader(ct), tg.k, tg.g, tg.epoch, tg.r, sha256.Sum256(ct), size)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if !errors.Is(err, content.ErrTampered) {
		t.Fatalf("got %v, want ErrTampered", err)
	}
	if n != 64<<10 {
		t.Errorf("read %d bytes before the tampered chunk, want 65536", n)
	}
}

func TestExtraStanza(t *testing.T) {
	tg := newTarget()
	ct, _, _ := MustEncrypt(t, tg, []byte("hello"))
	// Insert a second stanza before the header MAC line; the MAC no longer
	// matches either, but the identity must refuse before that.
	i := bytes.Index(ct, []byte("\n---"))
	m := append(bytes.Clone(ct[:i+1]), []byte("-> X25519 AAAA\nAAAA\n")...)
	m = append(m, ct[i+1:]...)
	_, err := decryptAll(m, tg, sha256.Sum256(m), int64(len(m)))
	if !errors.Is(err, content.ErrTampered) {
		t.Fatalf("got %v, want ErrTampered", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestSourceErrorIsNotSecurity(t *testing.T) {
	tg := newTarget()
	ct, hash, size := MustEncrypt(t, tg, make([]byte, 200<<10))
	boom := errors.New("connection reset")
	src := io.MultiReader(bytes.NewReader(ct[:70<<10]), failingReader{boom})
	r, err := content.Decrypt(src, tg.k, tg.g, tg.epoch, tg.r, hash, size)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the source's error", err)
	}
	for _, sentinel := range []error{content.ErrTampered, content.ErrTruncated, content.ErrHashMismatch, content.ErrWrongKey} {
		if errors.Is(err, sentinel) {
			t.Errorf("an I/O error is reported as %v", sentinel)
		}
	}
}

func TestDecryptRejectsInvalidSize(t *testing.T) {
	tg := newTarget()
	ct, hash, _ := MustEncrypt(t, tg, nil)
	for _, size := range []int64{-1, 1<<63 - 1} {
		if _, err := decryptAll(ct, tg, hash, size); err == nil {
			t.Errorf("size %d accepted", size)
		}
	}
}

func TestSumBeforeClosePanics(t *testing.T) {
	tg := newTarget()
	w, err := content.Encrypt(io.Discard, tg.k, tg.g, tg.epoch, tg.r)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Sum before Close did not panic")
		}
	}()
	w.Sum()
}

// generated is a deterministic plaintext source of n bytes.
func generated(seed byte, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed}), n)
}

// heapWatch wraps a stream and samples the heap every few MiB.
type heapWatch struct {
	next, n, peak uint64
}

func (h *heapWatch) saw(n int) {
	h.n += uint64(n)
	if h.n >= h.next {
		h.next = h.n + 4<<20
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		h.peak = max(h.peak, m.HeapAlloc)
	}
}

type watchedWriter struct {
	io.Writer
	*heapWatch
}

func (w watchedWriter) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.saw(n)
	return n, err
}

type watchedReader struct {
	io.Reader
	*heapWatch
}

func (r watchedReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	r.saw(n)
	return n, err
}

// TestStreamingMemory encrypts 64 MiB to a file and decrypts it back, and
// checks that the heap never holds more than a small, fixed amount: content
// is streamed, never buffered whole.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 64 MiB each way")
	}
	const n = 64 << 20
	const budget = 16 << 20
	tg := newTarget()
	f, err := os.Create(filepath.Join(t.TempDir(), "ct"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	hw := &heapWatch{}
	w, err := content.Encrypt(watchedWriter{f, hw}, tg.k, tg.g, tg.epoch, tg.r)
	if err != nil {
		t.Fatal(err)
	}
	ptHash := sha256.New()
	if _, err := io.Copy(w, io.TeeReader(generated(1, n), ptHash)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	hash, size := w.Sum()
	if hw.peak-min(hw.peak, base.HeapAlloc) > budget {
		t.Errorf("encrypting 64 MiB grew the heap by %d MiB", (hw.peak-base.HeapAlloc)>>20)
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&base)
	hr := &heapWatch{}
	r, err := content.Decrypt(f, tg.k, tg.g, tg.epoch, tg.r, hash, size)
	if err != nil {
		t.Fatal(err)
	}
	gotHash := sha256.New()
	if _, err := io.Copy(gotHash, watchedReader{r, hr}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotHash.Sum(nil), ptHash.Sum(nil)) {
		t.Fatal("decrypted plaintext differs")
	}
	if hr.peak-min(hr.peak, base.HeapAlloc) > budget {
		t.Errorf("decrypting 64 MiB grew the heap by %d MiB", (hr.peak-base.HeapAlloc)>>20)
	}
	t.Logf("heap peak above baseline: encrypt %d KiB, decrypt %d KiB", (hw.peak-min(hw.peak, base.HeapAlloc))>>10, (hr.peak-min(hr.peak, base.HeapAlloc))>>10)
}

const benchSize = 64 << 20

func BenchmarkEncrypt(b *testing.B) {
	tg := newTarget()
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		w, err := content.Encrypt(io.Discard, tg.k, tg.g, tg.epoch, tg.r)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, generatedZeros(benchSize)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	tg := newTarget()
	ct, hash, size := MustEncrypt(b, tg, make([]byte, benchSize))
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r, err := content.Decrypt(bytes.NewReader(ct), tg.k, tg.g, tg.epoch, tg.r, hash, size)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}

// The baselines: age alone (an X25519 recipient; the header costs nothing
// at this size), and raw AES-256-GCM over 64 KiB chunks.

func BenchmarkBaselineAgeEncrypt(b *testing.B) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		w, err := age.Encrypt(io.Discard, id.Recipient())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, generatedZeros(benchSize)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineAgeDecrypt(b *testing.B) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, id.Recipient())
	if err != nil {
		b.Fatal(err)
	}
	w.Write(make([]byte, benchSize))
	w.Close()
	ct := buf.Bytes()
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r, err := age.Decrypt(bytes.NewReader(ct), id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineAESGCM(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	gcm, _ := cipher.NewGCM(block)
	chunk := make([]byte, 64<<10)
	out := make([]byte, 0, len(chunk)+gcm.Overhead())
	nonce := make([]byte, gcm.NonceSize())
	b.SetBytes(benchSize)
	for b.Loop() {
		for range benchSize / len(chunk) {
			nonce[0]++
			out = gcm.Seal(out[:0], nonce, chunk, nil)
		}
	}
}

func BenchmarkBaselineSHA256(b *testing.B) {
	chunk := make([]byte, 64<<10)
	b.SetBytes(benchSize)
	for b.Loop() {
		h := sha256.New()
		for range benchSize / len(chunk) {
			h.Write(chunk)
		}
		h.Sum(nil)
	}
}

// generatedZeros is an allocation-free plaintext source for benchmarks.
func generatedZeros(n int64) io.Reader { return io.LimitReader(zeros{}, n) }

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
