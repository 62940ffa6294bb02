package clientlib

import (
	"errors"
	"io"
	"sync"
)

// bufPipe is an in-memory pipe, like io.Pipe, but with a bounded queue of
// buffers between its two ends, so that the writer (encryption) and the
// reader (the HTTP transport sending an upload) run at the same time on
// different cores instead of taking turns, as they would with io.Pipe's
// synchronous handoff. Memory stays at depth+2 buffers, whatever the
// stream's length.
type bufPipe struct {
	full chan []byte   // filled buffers, in order
	free chan []byte   // buffers to fill
	done chan struct{} // closed when the reader gives up

	mu   sync.Mutex
	werr error // why the writer stopped (io.EOF for a clean end)
	rerr error // why the reader stopped

	wbuf []byte // the writer's buffer being filled
	rbuf []byte // the reader's unread rest
	rcur []byte // the reader's buffer, to recycle

	closeWrite, closeRead sync.Once
}

func newBufPipe(depth, size int) *bufPipe {
	p := &bufPipe{
		full: make(chan []byte, depth),
		free: make(chan []byte, depth+2),
		done: make(chan struct{}),
	}
	for range depth + 2 {
		p.free <- make([]byte, 0, size)
	}
	return p
}

var errPipeClosed = errors.New("clientlib: pipe closed")

// Write queues p, blocking while the queue is full.
func (p *bufPipe) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if p.wbuf == nil {
			select {
			case p.wbuf = <-p.free:
			case <-p.done:
				return n, p.readErr()
			}
		}
		c := copy(p.wbuf[len(p.wbuf):cap(p.wbuf)], b)
		p.wbuf = p.wbuf[:len(p.wbuf)+c]
		b, n = b[c:], n+c
		if len(p.wbuf) == cap(p.wbuf) {
			if err := p.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (p *bufPipe) flush() error {
	if len(p.wbuf) == 0 {
		return nil
	}
	select {
	case p.full <- p.wbuf:
		p.wbuf = nil
		return nil
	case <-p.done:
		return p.readErr()
	}
}

func (p *bufPipe) readErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rerr != nil {
		return p.rerr
	}
	return errPipeClosed
}

// CloseWithError ends the stream: the reader gets the queued data, then
// err (io.EOF when err is nil).
func (p *bufPipe) CloseWithError(err error) error {
	if err == nil {
		err = p.flush()
	}
	if err == nil {
		err = io.EOF
	}
	p.closeWrite.Do(func() {
		p.mu.Lock()
		p.werr = err
		p.mu.Unlock()
		close(p.full)
	})
	return nil
}

// Read returns queued data, then the writer's error.
func (p *bufPipe) Read(b []byte) (int, error) {
	if err := p.fill(); err != nil {
		return 0, err
	}
	n := copy(b, p.rbuf)
	p.rbuf = p.rbuf[n:]
	return n, nil
}

// fill makes rbuf hold unread data, recycling the buffer read before, or
// returns the writer's error (io.EOF at the end) or the reader's.
func (p *bufPipe) fill() error {
	for len(p.rbuf) == 0 {
		if p.rcur != nil {
			select {
			case p.free <- p.rcur[:0]:
			default:
			}
			p.rcur = nil
		}
		select {
		case buf, ok := <-p.full:
			if !ok {
				p.mu.Lock()
				defer p.mu.Unlock()
				return p.werr
			}
			p.rcur, p.rbuf = buf, buf
		case <-p.done:
			return p.readErr()
		}
	}
	return nil
}

// WriteTo writes the queued buffers to w whole, as they come. The HTTP
// transport copies a request body with io.Copy, which then hands it each
// buffer as one write (one chunk, one system call) instead of copying it
// through a 32 KiB buffer of its own: a copy of every byte of an upload
// and three write calls in four less.
func (p *bufPipe) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if err := p.fill(); err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
		n, err := w.Write(p.rbuf)
		total += int64(n)
		p.rbuf = p.rbuf[n:]
		if err != nil {
			return total, err
		}
	}
}

// CloseRead makes the writer's pending and later writes fail with err.
func (p *bufPipe) CloseRead(err error) {
	if err == nil {
		err = errPipeClosed
	}
	p.closeRead.Do(func() {
		p.mu.Lock()
		p.rerr = err
		p.mu.Unlock()
		close(p.done)
	})
}
