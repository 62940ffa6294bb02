package content_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// wantGoroutines waits briefly for the goroutine count to return to base:
// SHA-256 runs on a goroutine of its own, which must end with the stream
// however the stream ends.
func wantGoroutines(t *testing.T, base int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var dump strings.Builder
			pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("%s: %d goroutines, %d before:\n%s", what, runtime.NumGoroutine(), base, dump.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// failAfter is a writer that fails once n bytes were written.
type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestNoGoroutineLeftBehind(t *testing.T) {
	tg := newTarget()
	plaintext := make([]byte, 1<<20+123)
	ct, hash, size := MustEncrypt(t, tg, plaintext)
	decrypt := func(src io.Reader, hash [32]byte, size int64) io.Reader {
		t.Helper()
		r, err := content.Decrypt(src, tg.k, tg.g, tg.epoch, tg.r, hash, size)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := runtime.NumGoroutine()

	// Complete streams.
	MustEncrypt(t, tg, plaintext)
	wantGoroutines(t, base, "after Close")
	if got, err := io.ReadAll(decrypt(bytes.NewReader(ct), hash, size)); err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("decrypt: %v", err)
	}
	wantGoroutines(t, base, "after io.EOF")

	// Streams that fail.
	tampered := bytes.Clone(ct)
	tampered[len(tampered)/2] ^= 1
	boom := errors.New("connection reset")
	for _, tt := range []struct {
		name string
		src  io.Reader
		hash [32]byte
		size int64
		want error
	}{
		{"tampered chunk", bytes.NewReader(tampered), sha256.Sum256(tampered), size, content.ErrTampered},
		{"hash mismatch", bytes.NewReader(ct), [32]byte{}, size, content.ErrHashMismatch},
		{"truncated", bytes.NewReader(ct[:len(ct)-1000]), hash, size, content.ErrTruncated},
		{"too long", bytes.NewReader(append(bytes.Clone(ct), make([]byte, 200<<10)...)), hash, size, content.ErrHashMismatch},
		{"source error", io.MultiReader(bytes.NewReader(ct[:500<<10]), failingReader{boom}), hash, size, boom},
	} {
		_, err := io.Copy(io.Discard, decrypt(tt.src, tt.hash, tt.size))
		if !errors.Is(err, tt.want) {
			t.Fatalf("%s: got %v, want %v", tt.name, err, tt.want)
		}
		wantGoroutines(t, base, tt.name)
	}
	if _, err := content.Decrypt(bytes.NewReader(ct), groupkey.NewEpochKey(), tg.g, tg.epoch, tg.r, hash, size); !errors.Is(err, content.ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	wantGoroutines(t, base, "wrong key")

	w, err := content.Encrypt(&failAfter{n: 300 << 10}, tg.k, tg.g, tg.epoch, tg.r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err == nil {
		t.Fatal("writing to a failing destination succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a failed write succeeded")
	}
	wantGoroutines(t, base, "failed write")

	// Streams their caller drops midway, without Close or a final read.
	if _, err := io.ReadFull(decrypt(bytes.NewReader(ct), hash, size), make([]byte, 300<<10)); err != nil {
		t.Fatal(err)
	}
	wantGoroutines(t, base, "abandoned reader")

	if w, err = content.Encrypt(io.Discard, tg.k, tg.g, tg.epoch, tg.r); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	wantGoroutines(t, base, "abandoned writer")
}

// TestDecryptEOFWaitsForHash reads a stream in small reads: the plaintext
// is all delivered before the hash is known, and the reader must still
// refuse io.EOF for a stream whose last bytes differ from the signed ones.
func TestDecryptEOFWaitsForHash(t *testing.T) {
	tg := newTarget()
	ct, hash, size := MustEncrypt(t, tg, make([]byte, 300<<10))
	for _, signed := range [][32]byte{hash, sha256.Sum256(ct[:len(ct)-1])} {
		r, err := content.Decrypt(bytes.NewReader(ct), tg.k, tg.g, tg.epoch, tg.r, signed, size)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1000)
		var total int
		for {
			n, err := r.Read(buf)
			total += n
			if err == io.EOF {
				if signed != hash {
					t.Fatal("io.EOF for a stream whose hash differs from the signed one")
				}
				if total != 300<<10 {
					t.Fatalf("read %d bytes", total)
				}
				break
			}
			if err != nil {
				if signed == hash || !errors.Is(err, content.ErrHashMismatch) {
					t.Fatalf("got %v", err)
				}
				break
			}
		}
	}
}

// TestFileKeyObserver checks that the auditing hook sees the file key that
// Encrypt wraps, that Decrypt unwraps the same one, and that it is the key
// coffer-audit recovers from the stored file.
func TestFileKeyObserver(t *testing.T) {
	tg := newTarget()
	var put, got [][]byte
	var buf bytes.Buffer
	w, err := content.Encrypt(&buf, tg.k, tg.g, tg.epoch, tg.r,
		content.WithFileKeyObserver(func(fk []byte) { put = append(put, fk) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("observed")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	hash, size := w.Sum()
	if len(put) != 1 || len(put[0]) != 16 {
		t.Fatalf("Encrypt reported %d file keys (%x), want one of 16 bytes", len(put), put)
	}
	r, err := content.Decrypt(bytes.NewReader(buf.Bytes()), tg.k, tg.g, tg.epoch, tg.r, hash, size,
		content.WithFileKeyObserver(func(fk []byte) { got = append(got, fk) }))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := io.ReadAll(r); err != nil || string(pt) != "observed" {
		t.Fatalf("read %q, %v", pt, err)
	}
	if len(got) != 1 || !bytes.Equal(got[0], put[0]) {
		t.Fatalf("Decrypt reported %x, want the key Encrypt reported", got)
	}
	audit, err := content.AuditFileKey(bytes.NewReader(buf.Bytes()), []groupkey.EpochKey{tg.k})
	if err != nil || !bytes.Equal(audit, put[0]) {
		t.Fatalf("AuditFileKey: %x, %v; want the reported key", audit, err)
	}
	// The observer gets a copy: changing it changes nothing.
	clear(put[0])
	if _, err := decryptAll(buf.Bytes(), tg, hash, size); err != nil {
		t.Fatal(err)
	}

	// A key that does not unwrap is not reported.
	got = nil
	_, err = content.Decrypt(bytes.NewReader(buf.Bytes()), groupkey.NewEpochKey(), tg.g, tg.epoch, tg.r, hash, size,
		content.WithFileKeyObserver(func(fk []byte) { got = append(got, fk) }))
	if !errors.Is(err, content.ErrWrongKey) || len(got) != 0 {
		t.Fatalf("wrong key: %v, reported %d keys", err, len(got))
	}
}
