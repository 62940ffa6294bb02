package content_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/content"
)

// The Reader of a payload of more than one batch reads ahead while the
// caller consumes it (pipeline.go). These tests hold it to what the
// synchronous reader guaranteed: plaintext only of proven chunks, in order,
// the first failure in chunk order, bounded memory, and no goroutine left
// running.

const encChunk = content.ChunkSize + 16

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// shortReader returns at most a random number of bytes per Read, so that
// chunks arrive in pieces and several chunks end in one read.
type shortReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (s *shortReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 1 + s.rng.IntN(min(len(p), 3*encChunk))
	if s.rng.IntN(4) == 0 {
		n = 1 + s.rng.IntN(min(len(p), 100)) // a few bytes, often mid-chunk
	}
	return s.r.Read(p[:n])
}

func mustHashes(tb testing.TB, s sealed) *content.ChunkHashes {
	tb.Helper()
	hs, err := content.VerifyChunkHashes(s.list(), s.root, s.chunks)
	if err != nil {
		tb.Fatal(err)
	}
	return hs
}

// settled waits until n stops growing and returns its value.
func settled(n *atomic.Int64) int64 {
	last := n.Load()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		cur := n.Load()
		if cur == last {
			return cur
		}
		last = cur
	}
	return last
}

// TestReadAheadIsBounded: a caller that stops after one byte lets the
// Reader read ahead more than one batch (the reading no longer waits for
// the cryptography), and never more than its ring, whatever the size.
func TestReadAheadIsBounded(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	base := runtime.NumGoroutine()
	tg := newTarget()
	plaintext := plaintextOf(200*content.ChunkSize + 7)
	s := MustEncrypt(t, tg, plaintext)
	hdr := s.size - 200*encChunk - 7 - 16
	src := &countingReader{r: bytes.NewReader(s.age())}
	r, err := content.Decrypt(src, mustHashes(t, s), tg.k, tg.g, tg.epoch, tg.r, s.size)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(r, first); err != nil {
		t.Fatal(err)
	}
	// On a loaded machine the read-ahead may take a while to start.
	batch := int64(content.BatchChunks())
	for deadline := time.Now().Add(10 * time.Second); src.n.Load() <= hdr+batch*encChunk && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	read := settled(&src.n)
	ahead := (read - hdr) / encChunk
	if limit := int64(content.RingChunks()); ahead > limit {
		t.Errorf("read %d chunks ahead of a caller that took one byte, want at most the ring's %d", ahead, limit)
	}
	if ahead <= batch {
		t.Errorf("read %d chunks ahead of a caller that took one byte: no more than one batch (%d)", ahead, batch)
	}
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(append(first, rest...), plaintext) {
		t.Fatalf("read on: %d bytes, %v", len(rest), err)
	}
	// Read to the end, nothing is left running, without Close.
	wantGoroutines(t, base, "reader read to EOF")
}

// TestReadAheadInPieces: whatever pieces the ciphertext arrives in, and
// however many Ps open it, the plaintext comes out whole and in order.
func TestReadAheadInPieces(t *testing.T) {
	tg := newTarget()
	for _, n := range []int{5*content.ChunkSize + 1, 40 * content.ChunkSize, 97*content.ChunkSize - 3} {
		plaintext := plaintextOf(n)
		s := MustEncrypt(t, tg, plaintext)
		for _, procs := range []int{1, 2, 3, 8} {
			func() {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				src := &shortReader{r: bytes.NewReader(s.age()), rng: rand.New(rand.NewPCG(uint64(n), uint64(procs)))}
				r, err := content.Decrypt(src, mustHashes(t, s), tg.k, tg.g, tg.epoch, tg.r, s.size)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readChunks(r)
				if err != nil || !bytes.Equal(got, plaintext) {
					t.Errorf("%d bytes at GOMAXPROCS %d: %d bytes out, %v", n, procs, len(got), err)
				}
			}()
		}
	}
}

// TestReadAheadFailsInOrder: with two bad chunks close together, opened on
// several Ps in any order, the stream stops at the first, after exactly
// the plaintext before it, however the ciphertext arrives.
func TestReadAheadFailsInOrder(t *testing.T) {
	tg := newTarget()
	plaintext := plaintextOf(60*content.ChunkSize + 11)
	s := MustEncrypt(t, tg, plaintext)
	hdr := int(s.size) - 60*encChunk - 11 - 16
	ct := bytes.Clone(s.age())
	ct[hdr+20*encChunk+100] ^= 1 // chunk 20: fails its leaf
	ct[hdr+21*encChunk+5] ^= 1   // chunk 21 too, opened alongside
	for _, procs := range []int{1, 2, 4} {
		for seed := range uint64(4) {
			func() {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				src := io.Reader(bytes.NewReader(ct))
				if seed > 0 {
					src = &shortReader{r: src, rng: rand.New(rand.NewPCG(seed, uint64(procs)))}
				}
				base := runtime.NumGoroutine()
				r, err := content.Decrypt(src, mustHashes(t, s), tg.k, tg.g, tg.epoch, tg.r, s.size)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readChunks(r)
				var ce *content.ChunkError
				if !errors.As(err, &ce) || ce.Chunk != 20 || !errors.Is(err, content.ErrTampered) {
					t.Fatalf("GOMAXPROCS %d, seed %d: %v, want ErrTampered at chunk 20", procs, seed, err)
				}
				if !bytes.Equal(got, plaintext[:20*content.ChunkSize]) {
					t.Fatalf("GOMAXPROCS %d, seed %d: %d bytes released, want exactly the %d of chunks 0-19", procs, seed, len(got), 20*content.ChunkSize)
				}
				// The failure ends the read-ahead, without Close.
				wantGoroutines(t, base, "reader after a tampered chunk")
			}()
		}
	}
}

// TestReadAheadHoldsAPartialChunk: a chunk whose bytes arrive slowly is
// not handed out, nor judged, before it is whole; the chunks before it
// are.
func TestReadAheadHoldsAPartialChunk(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	tg := newTarget()
	plaintext := plaintextOf(30 * content.ChunkSize)
	s := MustEncrypt(t, tg, plaintext)
	hdr := int(s.size) - 30*encChunk
	const k = 12 // past the first batch
	cut := hdr + k*encChunk + encChunk/2
	for _, tamper := range []bool{false, true} {
		ct := bytes.Clone(s.age())
		if tamper {
			ct[cut+10] ^= 1 // in the half that arrives late
		}
		pr, pw := io.Pipe()
		late := make(chan struct{})
		go func() {
			pw.Write(ct[:cut])
			// Sent once the caller has taken chunks 0 … k-1, so the
			// first half of chunk k waited in the Reader meanwhile.
			<-late
			pw.Write(ct[cut:])
			pw.Close()
		}()
		r, err := content.Decrypt(pr, mustHashes(t, s), tg.k, tg.g, tg.epoch, tg.r, s.size)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, k*content.ChunkSize)
		if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, plaintext[:len(got)]) {
			t.Fatalf("tamper %v: the chunks before the partial one: %v", tamper, err)
		}
		close(late)
		rest, err := readChunks(r)
		var ce *content.ChunkError
		switch {
		case !tamper && (err != nil || !bytes.Equal(rest, plaintext[len(got):])):
			t.Errorf("a chunk that arrived in two pieces: %d bytes, %v", len(rest), err)
		case tamper && (!errors.As(err, &ce) || ce.Chunk != k || len(rest) != 0):
			t.Errorf("a chunk tampered in its late half: %d bytes of it released, %v; want none and ErrTampered at chunk %d", len(rest), err, k)
		}
		r.Close()
		pr.CloseWithError(errors.New("test over"))
	}
}

// TestReaderCloseStopsReadAhead: Close ends the goroutines of a Reader
// stopped midway at once, except one blocked reading src, which ends when
// src does; Read then ends the chunk it was handing out and says the
// Reader is closed.
func TestReaderCloseStopsReadAhead(t *testing.T) {
	tg := newTarget()
	plaintext := plaintextOf(100 * content.ChunkSize)
	s := MustEncrypt(t, tg, plaintext)
	base := runtime.NumGoroutine()

	r, err := content.Decrypt(bytes.NewReader(s.age()), mustHashes(t, s), tg.k, tg.g, tg.epoch, tg.r, s.size)
	if err != nil {
		t.Fatal(err)
	}
	const taken = 3*content.ChunkSize + 5
	if _, err := io.ReadFull(r, make([]byte, taken)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	wantGoroutines(t, base, "closed reader")
	// What is left is the rest of the chunk being handed out, no more.
	rest, err := io.ReadAll(r)
	if !errors.Is(err, content.ErrClosed) || !bytes.Equal(rest, plaintext[taken:4*content.ChunkSize]) {
		t.Fatalf("Read after Close: %d bytes, %v; want the %d left of chunk 3, then ErrClosed", len(rest), err, 4*content.ChunkSize-taken)
	}

	// A source that stalls halfway: the read-ahead waits in src.Read.
	pr, pw := io.Pipe()
	go pw.Write(s.age()[:len(s.age())/2])
	r, err = content.Decrypt(pr, mustHashes(t, s), tg.k, tg.g, tg.epoch, tg.r, s.size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 5*content.ChunkSize)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	pr.CloseWithError(errors.New("connection closed"))
	wantGoroutines(t, base, "closed reader of a stalled source")
}

// TestReaderCloseDuringRead: a Read waiting for a chunk that does not come
// returns ErrClosed when another goroutine closes the Reader.
func TestReaderCloseDuringRead(t *testing.T) {
	tg := newTarget()
	s := MustEncrypt(t, tg, plaintextOf(50*content.ChunkSize))
	base := runtime.NumGoroutine()
	pr, pw := io.Pipe()
	defer pr.CloseWithError(errors.New("test over"))
	go pw.Write(s.age()[:len(s.age())-20*encChunk]) // then the source stalls
	r, err := content.Decrypt(pr, mustHashes(t, s), tg.k, tg.g, tg.epoch, tg.r, s.size)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r)
		read <- err
	}()
	// Wait until the reader has taken what arrived and waits for more.
	time.Sleep(50 * time.Millisecond)
	r.Close()
	if err := <-read; !errors.Is(err, content.ErrClosed) {
		t.Fatalf("Read during Close: %v, want ErrClosed", err)
	}
	pr.CloseWithError(errors.New("connection closed"))
	wantGoroutines(t, base, "reader closed during a Read")
}
