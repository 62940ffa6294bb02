// Package blobtest is the conformance suite every coffer.BlobStore must
// pass: the filesystem store runs it, and an S3-compatible store would run
// the same function against its own backend.
//
//	func TestStore(t *testing.T) {
//		blobtest.TestBlobStore(t, func(t *testing.T) coffer.BlobStore { ... })
//	}
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
)

// TestBlobStore runs the suite. newStore must return an empty store that
// no other test uses.
func TestBlobStore(t *testing.T, newStore func(t *testing.T) coffer.BlobStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s coffer.BlobStore)
	}{
		{"RoundTrip", testRoundTrip},
		{"Empty", testEmpty},
		{"InvisibleUntilCommit", testInvisibleUntilCommit},
		{"Abort", testAbort},
		{"AbortAfterCommit", testAbortAfterCommit},
		{"WriteAfterCommit", testWriteAfterCommit},
		{"Replace", testReplace},
		{"Seek", testSeek},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"InvalidKeys", testInvalidKeys},
		{"Walk", testWalk},
		{"WalkStops", testWalkStops},
		{"Concurrent", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

// MustPut writes a committed blob.
func MustPut(tb testing.TB, s coffer.BlobStore, key string, data []byte) {
	tb.Helper()
	w, err := s.Create(context.Background(), key)
	if err != nil {
		tb.Fatalf("Create(%s): %v", key, err)
	}
	defer w.Abort()
	if n, err := w.Write(data); err != nil || n != len(data) {
		tb.Fatalf("Write: %d, %v", n, err)
	}
	if err := w.Commit(); err != nil {
		tb.Fatalf("Commit: %v", err)
	}
}

// MustRead reads a whole blob and checks that Size agrees.
func MustRead(tb testing.TB, s coffer.BlobStore, key string) []byte {
	tb.Helper()
	b, err := s.Open(context.Background(), key)
	if err != nil {
		tb.Fatalf("Open(%s): %v", key, err)
	}
	defer b.Close()
	data, err := io.ReadAll(b)
	if err != nil {
		tb.Fatalf("read %s: %v", key, err)
	}
	if b.Size() != int64(len(data)) {
		tb.Fatalf("Size() = %d, read %d bytes", b.Size(), len(data))
	}
	return data
}

func put(s coffer.BlobStore, key string, data []byte) error {
	w, err := s.Create(context.Background(), key)
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Commit()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func wantCode(tb testing.TB, err error, code coffer.Code) {
	tb.Helper()
	if got := coffer.ErrorCode(err); got != code {
		tb.Fatalf("got %v (code %q), want code %q", err, got, code)
	}
}

func keys(tb testing.TB, s coffer.BlobStore) []string {
	tb.Helper()
	var out []string
	err := s.Walk(context.Background(), func(key string, mod time.Time) error {
		if mod.IsZero() {
			tb.Errorf("Walk reported a zero time for %s", key)
		}
		out = append(out, key)
		return nil
	})
	if err != nil {
		tb.Fatalf("Walk: %v", err)
	}
	slices.Sort(out)
	return out
}

func testRoundTrip(t *testing.T, s coffer.BlobStore) {
	// Larger than any internal buffer, and not a multiple of a chunk.
	data := randomBytes(3<<20 + 17)
	key := coffer.NewBlobKey()
	w, err := s.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyBuffer(w, bytes.NewReader(data), make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := MustRead(t, s, key); !bytes.Equal(got, data) {
		t.Fatal("read back different bytes")
	}
}

func testEmpty(t *testing.T, s coffer.BlobStore) {
	key := coffer.NewBlobKey()
	MustPut(t, s, key, nil)
	if got := MustRead(t, s, key); len(got) != 0 {
		t.Fatalf("empty blob reads %d bytes", len(got))
	}
}

func testInvisibleUntilCommit(t *testing.T, s coffer.BlobStore) {
	ctx := context.Background()
	key := coffer.NewBlobKey()
	w, err := s.Create(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Open(ctx, key)
	wantCode(t, err, coffer.ENOTFOUND)
	if k := keys(t, s); len(k) != 0 {
		t.Fatalf("Walk reports %v before Commit", k)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := MustRead(t, s, key); string(got) != "partial" {
		t.Fatalf("read %q", got)
	}
}

func testAbort(t *testing.T, s coffer.BlobStore) {
	ctx := context.Background()
	key := coffer.NewBlobKey()
	w, err := s.Create(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(randomBytes(1 << 20))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	_, err = s.Open(ctx, key)
	wantCode(t, err, coffer.ENOTFOUND)
	if k := keys(t, s); len(k) != 0 {
		t.Fatalf("Walk reports %v after Abort", k)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
}

func testAbortAfterCommit(t *testing.T, s coffer.BlobStore) {
	key := coffer.NewBlobKey()
	w, err := s.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("kept"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	if got := MustRead(t, s, key); string(got) != "kept" {
		t.Fatalf("Abort after Commit changed the blob: %q", got)
	}
}

func testWriteAfterCommit(t *testing.T, s coffer.BlobStore) {
	key := coffer.NewBlobKey()
	w, err := s.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("done"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if err := w.Commit(); err == nil {
		t.Fatal("second Commit succeeded")
	}
	if got := MustRead(t, s, key); string(got) != "done" {
		t.Fatalf("read %q", got)
	}
}

func testReplace(t *testing.T, s coffer.BlobStore) {
	key := coffer.NewBlobKey()
	MustPut(t, s, key, []byte("first"))
	MustPut(t, s, key, []byte("second, longer"))
	if got := MustRead(t, s, key); string(got) != "second, longer" {
		t.Fatalf("read %q after replace", got)
	}
	if k := keys(t, s); len(k) != 1 {
		t.Fatalf("Walk reports %d blobs after a replace, want 1", len(k))
	}
}

func testSeek(t *testing.T, s coffer.BlobStore) {
	data := randomBytes(100_000)
	key := coffer.NewBlobKey()
	MustPut(t, s, key, data)
	b, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, off := range []int64{0, 1, 65535, 65536, 99_999} {
		if _, err := b.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 1)
		if _, err := io.ReadFull(b, got); err != nil || got[0] != data[off] {
			t.Fatalf("byte at %d: %v, %v", off, got, err)
		}
	}
	end, err := b.Seek(0, io.SeekEnd)
	if err != nil || end != int64(len(data)) {
		t.Fatalf("Seek to end: %d, %v", end, err)
	}
	if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read at end: %d, %v", n, err)
	}
}

func testDelete(t *testing.T, s coffer.BlobStore) {
	ctx := context.Background()
	key, other := coffer.NewBlobKey(), coffer.NewBlobKey()
	MustPut(t, s, key, []byte("x"))
	MustPut(t, s, other, []byte("y"))
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	_, err := s.Open(ctx, key)
	wantCode(t, err, coffer.ENOTFOUND)
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete of a deleted blob: %v", err)
	}
	if k := keys(t, s); !slices.Equal(k, []string{other}) {
		t.Fatalf("Walk after Delete reports %v, want [%s]", k, other)
	}
}

func testNotFound(t *testing.T, s coffer.BlobStore) {
	_, err := s.Open(context.Background(), coffer.NewBlobKey())
	wantCode(t, err, coffer.ENOTFOUND)
}

func testInvalidKeys(t *testing.T, s coffer.BlobStore) {
	ctx := context.Background()
	for _, key := range []string{
		"", "../../etc/passwd", "0123456789abcdef0123456789abcde", "0123456789ABCDEF0123456789ABCDEF",
		"0123456789abcdef0123456789abcdef0", "0123456789abcdef/123456789abcdef", ".tmp-0123456789abcdef0123456789a",
	} {
		if _, err := s.Create(ctx, key); coffer.ErrorCode(err) != coffer.EINVALID {
			t.Errorf("Create(%q): %v, want EINVALID", key, err)
		}
		if _, err := s.Open(ctx, key); coffer.ErrorCode(err) != coffer.EINVALID {
			t.Errorf("Open(%q): %v, want EINVALID", key, err)
		}
		if err := s.Delete(ctx, key); coffer.ErrorCode(err) != coffer.EINVALID {
			t.Errorf("Delete(%q): %v, want EINVALID", key, err)
		}
	}
}

func testWalk(t *testing.T, s coffer.BlobStore) {
	before := time.Now().Add(-time.Minute)
	var want []string
	for range 50 {
		k := coffer.NewBlobKey()
		MustPut(t, s, k, []byte(k))
		want = append(want, k)
	}
	slices.Sort(want)
	if got := keys(t, s); !slices.Equal(got, want) {
		t.Fatalf("Walk reports %d keys, want %d", len(got), len(want))
	}
	err := s.Walk(context.Background(), func(key string, mod time.Time) error {
		if mod.Before(before) || mod.After(time.Now().Add(time.Minute)) {
			t.Errorf("modTime of %s is %v, not about now", key, mod)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testWalkStops(t *testing.T, s coffer.BlobStore) {
	for range 5 {
		MustPut(t, s, coffer.NewBlobKey(), []byte("z"))
	}
	stop := errors.New("stop")
	calls := 0
	err := s.Walk(context.Background(), func(string, time.Time) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk returned %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func testConcurrent(t *testing.T, s coffer.BlobStore) {
	const n = 16
	data := make([][]byte, n)
	ks := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		data[i], ks[i] = randomBytes(200_000+i), coffer.NewBlobKey()
		wg.Go(func() {
			// Not MustPut: Fatal must not be called from another goroutine.
			if err := put(s, ks[i], data[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if !bytes.Equal(MustRead(t, s, ks[i]), data[i]) {
			t.Fatalf("blob %d differs", i)
		}
	}
}
