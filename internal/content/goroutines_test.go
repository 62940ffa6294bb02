package content_test

import (
	"bytes"
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
// chunks are sealed and opened on worker goroutines, which must all end
// with the call that started them, however the stream ends.
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

// wantGoroutinesCollected is wantGoroutines for goroutines that end when
// what they serve is collected.
func wantGoroutinesCollected(t *testing.T, base int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	wantGoroutines(t, base, what)
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
	s := MustEncrypt(t, tg, make([]byte, 3<<20+123))
	hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()

	// A reader dropped after one read, without Close: its read-ahead ends
	// when the reader is collected.
	func() {
		r, err := content.Decrypt(bytes.NewReader(s.age()), hs, tg.k, tg.g, tg.epoch, tg.r, s.size)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}()
	wantGoroutinesCollected(t, base, "abandoned reader")

	// A writer whose destination fails, and one dropped without Close.
	w, err := content.Encrypt(&failAfter{n: 200 << 10}, tg.k, tg.g, tg.epoch, tg.r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, bytes.NewReader(make([]byte, 4<<20))); err == nil {
		t.Fatal("no error from a failing destination")
	}
	w, err = content.Encrypt(io.Discard, tg.k, tg.g, tg.epoch, tg.r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 5<<20))
	wantGoroutines(t, base, "abandoned writer")
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
	s := sealed{blob: buf.Bytes()}
	s.root, s.chunks, s.size = w.Sum()
	if len(put) != 1 || len(put[0]) != 16 {
		t.Fatalf("Encrypt reported %d file keys (%x), want one of 16 bytes", len(put), put)
	}
	hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	if err != nil {
		t.Fatal(err)
	}
	r, err := content.Decrypt(bytes.NewReader(s.age()), hs, tg.k, tg.g, tg.epoch, tg.r, s.size,
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
	audit, err := content.AuditFileKey(bytes.NewReader(s.blob), []groupkey.EpochKey{tg.k})
	if err != nil || !bytes.Equal(audit, put[0]) {
		t.Fatalf("AuditFileKey: %x, %v; want the reported key", audit, err)
	}
	// The observer gets a copy: changing it changes nothing.
	clear(put[0])
	if _, err := decryptAll(s, tg); err != nil {
		t.Fatal(err)
	}

	// A key that does not unwrap is not reported.
	got = nil
	_, err = content.Decrypt(bytes.NewReader(s.age()), hs, groupkey.NewEpochKey(), tg.g, tg.epoch, tg.r, s.size,
		content.WithFileKeyObserver(func(fk []byte) { got = append(got, fk) }))
	if !errors.Is(err, content.ErrWrongKey) || len(got) != 0 {
		t.Fatalf("wrong key: %v, reported %d keys", err, len(got))
	}
}
