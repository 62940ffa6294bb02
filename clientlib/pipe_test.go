package clientlib

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestBufPipe(t *testing.T) {
	data := make([]byte, 1<<20+333)
	rand.Read(data)
	p := newBufPipe(2, 1000)
	go func() {
		// Odd write sizes, across buffer boundaries.
		for b := data; len(b) > 0; {
			n := min(len(b), 1777)
			if _, err := p.Write(b[:n]); err != nil {
				p.CloseWithError(err)
				return
			}
			b = b[n:]
		}
		p.CloseWithError(nil)
	}()
	got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(p, 10)))
	if err != nil || !bytes.Equal(got, data[:10]) {
		t.Fatalf("first bytes: %v", err)
	}
	rest, err := io.ReadAll(p)
	if err != nil || !bytes.Equal(append(got, rest...), data) {
		t.Fatalf("read %d bytes, %v", len(got)+len(rest), err)
	}
}

func TestBufPipeErrors(t *testing.T) {
	boom := errors.New("boom")
	p := newBufPipe(1, 4)
	go func() {
		p.Write([]byte("abcdefgh"))
		p.CloseWithError(boom)
	}()
	got, err := io.ReadAll(p)
	if !errors.Is(err, boom) || string(got) != "abcdefgh" {
		t.Fatalf("got %q, %v; want the data, then the writer's error", got, err)
	}

	// A reader that gives up unblocks a writer stuck on a full queue.
	p = newBufPipe(1, 4)
	done := make(chan error)
	go func() {
		_, err := p.Write(make([]byte, 100))
		done <- err
	}()
	p.CloseRead(boom)
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("writer got %v, want the reader's error", err)
	}
}

// writeCounter counts the writes it gets. It is a plain io.Writer (no
// ReadFrom), as the transport's chunked writer is.
type writeCounter struct {
	buf    bytes.Buffer
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}

// TestBufPipeWriteTo: io.Copy from the pipe (as the HTTP transport sends a
// request body) gets each queued buffer as one write, not copied through
// its own 32 KiB buffer, with the stream intact after a partial Read and
// the writer's error at the end.
func TestBufPipeWriteTo(t *testing.T) {
	data := make([]byte, 1<<20+333)
	rand.Read(data)
	const size = 128 << 10
	p := newBufPipe(2, size)
	go func() {
		for b := data; len(b) > 0; {
			n := min(len(b), 10_000)
			if _, err := p.Write(b[:n]); err != nil {
				p.CloseWithError(err)
				return
			}
			b = b[n:]
		}
		p.CloseWithError(nil)
	}()
	head := make([]byte, 5)
	if _, err := io.ReadFull(p, head); err != nil {
		t.Fatal(err)
	}
	var w writeCounter
	n, err := io.Copy(&w, p)
	if err != nil || n != int64(len(data)-5) || !bytes.Equal(append(head, w.buf.Bytes()...), data) {
		t.Fatalf("copied %d bytes, %v", n, err)
	}
	if want := len(data)/size + 1; w.writes > want {
		t.Errorf("%d writes for %d bytes in %d-byte buffers, want at most %d", w.writes, len(data), size, want)
	}

	boom := errors.New("boom")
	p = newBufPipe(1, 4)
	go func() {
		p.Write([]byte("abcdefgh"))
		p.CloseWithError(boom)
	}()
	w = writeCounter{}
	if _, err := io.Copy(&w, p); !errors.Is(err, boom) || w.buf.String() != "abcdefgh" {
		t.Fatalf("got %q, %v; want the data, then the writer's error", w.buf.String(), err)
	}
}
