package content_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
	"fmt"
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

// sealed is a resource blob with what its signed header binds.
type sealed struct {
	blob   []byte // age file, then chunk hash list
	root   [32]byte
	chunks uint64
	size   int64 // age file size
}

func (s sealed) age() []byte  { return s.blob[:s.size] }
func (s sealed) list() []byte { return s.blob[s.size:] }

// MustEncrypt encrypts plaintext for t.
func MustEncrypt(tb testing.TB, t target, plaintext []byte) sealed {
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
	s := sealed{blob: buf.Bytes()}
	s.root, s.chunks, s.size = w.Sum()
	return s
}

// decryptWith proves list against the signed values, then reads ageFile to
// the end. It returns what a caller received before the error.
func decryptWith(t target, ageFile, list []byte, root [32]byte, chunks uint64, size int64) ([]byte, error) {
	hs, err := content.VerifyChunkHashes(list, root, chunks)
	if err != nil {
		return nil, err
	}
	r, err := content.Decrypt(bytes.NewReader(ageFile), hs, t.k, t.g, t.epoch, t.r, size)
	if err != nil {
		return nil, err
	}
	var got bytes.Buffer
	_, err = io.Copy(&got, r)
	return got.Bytes(), err
}

func decryptAll(s sealed, t target) ([]byte, error) {
	return decryptWith(t, s.age(), s.list(), s.root, s.chunks, s.size)
}

// sizes are the plaintext lengths every round-trip and interoperability
// test covers: empty, tiny, every chunk boundary, and several batches.
var sizes = []int{0, 1, 100, 64<<10 - 1, 64 << 10, 64<<10 + 1, 2<<16 - 1, 2 << 16, 2<<16 + 1,
	3<<16 + 17, 40 << 16, 40<<16 + 5, 77<<16 - 3}

func plaintextOf(n int) []byte {
	p := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(p)
	return p
}

func TestRoundTrip(t *testing.T) {
	for _, n := range sizes {
		tg := newTarget()
		plaintext := plaintextOf(n)
		s := MustEncrypt(t, tg, plaintext)
		wantChunks := uint64(max(1, (n+64<<10-1)/(64<<10)))
		if s.chunks != wantChunks || int64(len(s.blob)) != s.size+content.ChunkHashListSize(s.chunks) {
			t.Fatalf("%d bytes: Sum says %d chunks, size %d, blob %d", n, s.chunks, s.size, len(s.blob))
		}
		got, err := decryptAll(s, tg)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("%d bytes: plaintext differs", n)
		}
	}
}

// TestWritePatterns writes the same content in pieces of many sizes: the
// sealed chunks must not depend on how the writes were cut.
func TestWritePatterns(t *testing.T) {
	tg := newTarget()
	plaintext := plaintextOf(9<<16 + 3)
	for _, piece := range []int{1, 1000, 64 << 10, 64<<10 + 1, 5 << 16, len(plaintext)} {
		var buf bytes.Buffer
		w, err := content.Encrypt(&buf, tg.k, tg.g, tg.epoch, tg.r)
		if err != nil {
			t.Fatal(err)
		}
		for p := plaintext; len(p) > 0; {
			k := min(piece, len(p))
			if _, err := w.Write(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		s := sealed{blob: buf.Bytes()}
		s.root, s.chunks, s.size = w.Sum()
		got, err := decryptAll(s, tg)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("pieces of %d: %v", piece, err)
		}
		// age itself reads the same file.
		pt, err := ageDecrypt(tg, s.age())
		if err != nil || !bytes.Equal(pt, plaintext) {
			t.Fatalf("pieces of %d: age: %v", piece, err)
		}
	}
}

func TestEncryptUsesFreshFileKeys(t *testing.T) {
	tg := newTarget()
	a := MustEncrypt(t, tg, []byte("same"))
	b := MustEncrypt(t, tg, []byte("same"))
	if bytes.Equal(a.blob, b.blob) || a.root == b.root {
		t.Fatal("two encryptions of the same content are equal")
	}
}

func TestWrongBinding(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, []byte("hello"))
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
		_, err := decryptAll(s, tt.t)
		if !errors.Is(err, content.ErrWrongKey) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want ErrWrongKey naming %q", tt.name, err, tt.want)
		}
		if !errors.Is(err, age.ErrIncorrectIdentity) {
			t.Errorf("%s: %v does not match age.ErrIncorrectIdentity", tt.name, err)
		}
	}
}

// TestRewrittenStanzaArgs checks that the stanza's clear-text arguments are
// only hints: rewriting them to match the reader, and re-signing a tree for
// the rewritten file, does not make content of another resource decrypt.
func TestRewrittenStanzaArgs(t *testing.T) {
	tg := newTarget()
	other := tg
	other.r = coffer.NewResourceID()
	s := MustEncrypt(t, other, []byte("hello"))
	ct := bytes.Replace(s.age(), []byte(other.r.String()), []byte(tg.r.String()), 1)
	list, root := treeOf(t, ct)
	_, err := decryptWith(tg, ct, list, root, s.chunks, int64(len(ct)))
	if !errors.Is(err, content.ErrWrongKey) {
		t.Fatalf("got %v, want ErrWrongKey", err)
	}
}

// TestRollback serves version 1's blob for version 2's signed header: the
// list does not prove against version 2's root.
func TestRollback(t *testing.T) {
	tg := newTarget()
	v1 := MustEncrypt(t, tg, []byte("version 1"))
	v2 := MustEncrypt(t, tg, []byte("version 2"))
	if _, err := decryptWith(tg, v1.age(), v1.list(), v2.root, v2.chunks, v2.size); !errors.Is(err, content.ErrChunkHashes) {
		t.Errorf("v1's list under v2's root: got %v, want ErrChunkHashes", err)
	}
	// v2's list with v1's file: the header leaf differs.
	_, err := decryptWith(tg, v1.age(), v2.list(), v2.root, v2.chunks, v2.size)
	var ce *content.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != -1 || !errors.Is(err, content.ErrTampered) {
		t.Errorf("v1's file under v2's list: got %v, want the age header refused", err)
	}
}

// TestChunkHashList checks the list against the signed values: every
// change of the list, the count or the root is refused before any
// ciphertext is read.
func TestChunkHashList(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, plaintextOf(3<<16+5))
	list := s.list()
	swapped := bytes.Clone(list)
	copy(swapped[32:64], list[64:96])
	copy(swapped[64:96], list[32:64])
	forged := bytes.Clone(list)
	forged[70] ^= 1
	tests := []struct {
		name   string
		list   []byte
		root   [32]byte
		chunks uint64
	}{
		{"swapped leaves", swapped, s.root, s.chunks},
		{"forged leaf", forged, s.root, s.chunks},
		{"truncated list", list[:len(list)-32], s.root, s.chunks},
		{"truncated list and count", list[:len(list)-32], s.root, s.chunks - 1},
		{"extended list", append(bytes.Clone(list), list[32:64]...), s.root, s.chunks},
		{"extended list and count", append(bytes.Clone(list), list[32:64]...), s.root, s.chunks + 1},
		{"wrong count", list, s.root, s.chunks + 1},
		{"wrong root", list, [32]byte{1}, s.chunks},
		{"ragged list", list[:len(list)-1], s.root, s.chunks},
	}
	for _, tt := range tests {
		if _, err := content.VerifyChunkHashes(tt.list, tt.root, tt.chunks); !errors.Is(err, content.ErrChunkHashes) {
			t.Errorf("%s: got %v, want ErrChunkHashes", tt.name, err)
		}
	}
	hs, err := content.VerifyChunkHashes(list, s.root, s.chunks)
	if err != nil || hs.Chunks() != s.chunks {
		t.Fatalf("the honest list: %v", err)
	}
}

// readChunks reads r in small pieces and returns what the caller received.
func readChunks(r io.Reader) ([]byte, error) {
	var got []byte
	buf := make([]byte, 1000)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

// TestTamperedChunks swaps, replaces, reorders and flips chunks of a file
// under its honest signed tree. Each fails at the first chunk concerned,
// after exactly the plaintext of the chunks before it.
func TestTamperedChunks(t *testing.T) {
	const chunk, enc = 64 << 10, 64<<10 + 16
	tg := newTarget()
	plaintext := plaintextOf(40<<16 + 99) // 41 chunks: several batches
	s := MustEncrypt(t, tg, plaintext)
	other := MustEncrypt(t, tg, plaintextOf(40<<16+99)) // same resource, another upload
	hdr := int(s.size) - 40*enc - 99 - 16
	at := func(ct []byte, i int) []byte { return ct[hdr+i*enc : hdr+(i+1)*enc] }
	tests := []struct {
		name   string
		mangle func(ct []byte)
		first  int64 // the chunk that must fail
	}{
		{"flipped bit in chunk 0", func(ct []byte) { ct[hdr+5] ^= 1 }, 0},
		{"flipped tag of chunk 17", func(ct []byte) { ct[hdr+18*enc-1] ^= 1 }, 17},
		{"flipped final chunk", func(ct []byte) { ct[len(ct)-1] ^= 0x80 }, 40},
		{"swapped chunks 3 and 4", func(ct []byte) {
			a := bytes.Clone(at(ct, 3))
			copy(at(ct, 3), at(ct, 4))
			copy(at(ct, 4), a)
		}, 3},
		{"chunk 20 from another upload", func(ct []byte) { copy(at(ct, 20), at(other.age(), 20)) }, 20},
		{"chunk 9 repeated as 10", func(ct []byte) { copy(at(ct, 10), at(ct, 9)) }, 10},
		{"reordered: chunk 30 moved to 25", func(ct []byte) {
			c30 := bytes.Clone(at(ct, 30))
			copy(ct[hdr+26*enc:hdr+31*enc], ct[hdr+25*enc:hdr+30*enc])
			copy(at(ct, 25), c30)
		}, 25},
	}
	for _, tt := range tests {
		ct := bytes.Clone(s.age())
		tt.mangle(ct)
		hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
		if err != nil {
			t.Fatal(err)
		}
		r, err := content.Decrypt(bytes.NewReader(ct), hs, tg.k, tg.g, tg.epoch, tg.r, s.size)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got, err := readChunks(r)
		var ce *content.ChunkError
		if !errors.As(err, &ce) || ce.Chunk != tt.first || !errors.Is(err, content.ErrTampered) {
			t.Errorf("%s: got %v, want ErrTampered at chunk %d", tt.name, err, tt.first)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("chunk %d", tt.first)) {
			t.Errorf("%s: %v does not name the chunk", tt.name, err)
		}
		if want := plaintext[:tt.first*chunk]; !bytes.Equal(got, want) {
			t.Errorf("%s: the caller received %d bytes, want exactly the %d before chunk %d", tt.name, len(got), len(want), tt.first)
		}
		// The failure is sticky: no more plaintext on a retry.
		if n, err2 := r.Read(make([]byte, 10)); n != 0 || err2 == nil {
			t.Errorf("%s: read after failure: %d, %v", tt.name, n, err2)
		}
	}
}

// TestTruncation cuts a file at every interesting length under the honest
// tree: each cut is ErrTruncated at the first incomplete chunk, after the
// plaintext of the whole chunks before it.
func TestTruncation(t *testing.T) {
	const chunk, enc = 64 << 10, 64<<10 + 16
	tg := newTarget()
	plaintext := plaintextOf(20<<16 + 10)
	s := MustEncrypt(t, tg, plaintext)
	hdr := int(s.size) - 20*enc - 10 - 16
	cuts := []int{0, 1, 20, hdr - 17, hdr - 1, hdr, hdr + 1, hdr + enc - 1, hdr + enc, hdr + enc + 1,
		hdr + 17*enc, hdr + 20*enc, hdr + 20*enc + 25, int(s.size) - 1}
	for _, n := range cuts {
		got, err := decryptWith(tg, s.age()[:n], s.list(), s.root, s.chunks, s.size)
		if !errors.Is(err, content.ErrTruncated) {
			t.Errorf("cut at %d: got %v, want ErrTruncated", n, err)
			continue
		}
		var ce *content.ChunkError
		errors.As(err, &ce)
		whole := int64(-1)
		if n >= hdr {
			whole = int64((n - hdr) / enc)
		}
		if ce.Chunk != whole || !bytes.Equal(got, plaintext[:max(0, whole)*chunk]) {
			t.Errorf("cut at %d: failed at chunk %d after %d bytes, want chunk %d", n, ce.Chunk, len(got), whole)
		}
	}
}

// TestSignedLayout checks header values that no honest file has: the
// signed size does not fit the chunk count.
func TestSignedLayout(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, plaintextOf(2<<16+3))
	for _, size := range []int64{s.size - 3 - 1, s.size + 64<<10, s.size - 64<<10} {
		if _, err := decryptWith(tg, s.age(), s.list(), s.root, s.chunks, size); !errors.Is(err, content.ErrTampered) {
			t.Errorf("signed size %d for %d: got %v, want ErrTampered", size, s.size, err)
		}
	}
}

// TestMangling flips every byte of a small file. Every variant must fail
// under the honest tree, and under a tree re-made for the mangled bytes
// (which only age's own authentication can catch).
func TestMangling(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, []byte("a small resource"))
	for i := range s.age() {
		for _, mask := range []byte{0x01, 0x80} {
			m := bytes.Clone(s.age())
			m[i] ^= mask
			if _, err := decryptWith(tg, m, s.list(), s.root, s.chunks, s.size); err == nil {
				t.Fatalf("byte %d ^ %#x: accepted under the signed tree", i, mask)
			}
			list, root, ok := treeOfMaybe(m)
			if !ok {
				continue // no longer parses as an age header: nothing to re-sign
			}
			if _, err := decryptWith(tg, m, list, root, s.chunks, s.size); err == nil {
				t.Fatalf("byte %d ^ %#x: age accepted a mangled file", i, mask)
			} else if !errors.Is(err, content.ErrTampered) && !errors.Is(err, content.ErrWrongKey) &&
				!errors.Is(err, content.ErrTruncated) {
				t.Fatalf("byte %d ^ %#x: unclassified error %v", i, mask, err)
			}
		}
	}
}

func TestExtraStanza(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, []byte("hello"))
	// Insert a second stanza before the header MAC line; the MAC no longer
	// matches either, but the identity must refuse before that.
	ct := s.age()
	i := bytes.Index(ct, []byte("\n---"))
	m := append(bytes.Clone(ct[:i+1]), []byte("-> X25519 AAAA\nAAAA\n")...)
	m = append(m, ct[i+1:]...)
	list, root := treeOf(t, m)
	_, err := decryptWith(tg, m, list, root, s.chunks, int64(len(m)))
	if !errors.Is(err, content.ErrTampered) {
		t.Fatalf("got %v, want ErrTampered", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestSourceErrorIsNotSecurity(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, make([]byte, 200<<10))
	boom := errors.New("connection reset")
	hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	if err != nil {
		t.Fatal(err)
	}
	src := io.MultiReader(bytes.NewReader(s.age()[:70<<10]), failingReader{boom})
	r, err := content.Decrypt(src, hs, tg.k, tg.g, tg.epoch, tg.r, s.size)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the source's error", err)
	}
	for _, sentinel := range []error{content.ErrTampered, content.ErrTruncated, content.ErrChunkHashes, content.ErrWrongKey} {
		if errors.Is(err, sentinel) {
			t.Errorf("an I/O error is reported as %v", sentinel)
		}
	}
}

// TestDecryptStopsAtTheEnd checks that Decrypt never reads past the age
// file: the chunk hash list (or anything) may follow it in src.
func TestDecryptStopsAtTheEnd(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, plaintextOf(3<<16))
	hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	if err != nil {
		t.Fatal(err)
	}
	src := bytes.NewReader(s.blob)
	r, err := content.Decrypt(src, hs, tg.k, tg.g, tg.epoch, tg.r, s.size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	if left := src.Len(); left != len(s.list()) {
		t.Fatalf("%d bytes left unread, list is %d", left, len(s.list()))
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
	root, chunks, size := w.Sum()
	if hw.peak-min(hw.peak, base.HeapAlloc) > budget {
		t.Errorf("encrypting 64 MiB grew the heap by %d MiB", (hw.peak-base.HeapAlloc)>>20)
	}

	list := make([]byte, content.ChunkHashListSize(chunks))
	if _, err := f.ReadAt(list, size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&base)
	hr := &heapWatch{}
	hs, err := content.VerifyChunkHashes(list, root, chunks)
	if err != nil {
		t.Fatal(err)
	}
	r, err := content.Decrypt(f, hs, tg.k, tg.g, tg.epoch, tg.r, size)
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
	s := MustEncrypt(b, tg, make([]byte, benchSize))
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
		if err != nil {
			b.Fatal(err)
		}
		r, err := content.Decrypt(bytes.NewReader(s.age()), hs, tg.k, tg.g, tg.epoch, tg.r, s.size)
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

// TestForgedChunk is the attack the chunk tree exists for: a member who
// holds the epoch key unwraps the file key and seals chunk 5 anew. age
// would accept it; the tree refuses it before any of its plaintext is
// released.
func TestForgedChunk(t *testing.T) {
	const chunk, enc = 64 << 10, 64<<10 + 16
	tg := newTarget()
	var fileKey []byte
	var buf bytes.Buffer
	w, err := content.Encrypt(&buf, tg.k, tg.g, tg.epoch, tg.r, content.WithFileKeyObserver(func(fk []byte) { fileKey = fk }))
	if err != nil {
		t.Fatal(err)
	}
	plaintext := plaintextOf(12 << 16)
	w.Write(plaintext)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s := sealed{blob: buf.Bytes()}
	s.root, s.chunks, s.size = w.Sum()
	ct := bytes.Clone(s.age())
	hdr := int(s.size) - 12*enc
	nonce := ct[hdr-16 : hdr]
	copy(ct[hdr+5*enc:], content.SealChunk(fileKey, nonce, 5, false, bytes.Repeat([]byte("forged!!"), chunk/8)))
	if pt, err := ageDecrypt(tg, ct); err != nil || bytes.Equal(pt, plaintext) {
		t.Fatalf("the forgery is not one age accepts: %v", err)
	}
	got, err := decryptWith(tg, ct, s.list(), s.root, s.chunks, s.size)
	var ce *content.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != 5 || !strings.Contains(err.Error(), "signed chunk tree") {
		t.Fatalf("got %v, want chunk 5 refused by the tree", err)
	}
	if !bytes.Equal(got, plaintext[:5*chunk]) {
		t.Fatalf("the caller received %d bytes, want the %d before chunk 5", len(got), 5*chunk)
	}
}
