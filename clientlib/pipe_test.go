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
