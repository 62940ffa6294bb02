package server

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/cofferhq/coffer"
)

// Slow clients must not hold a connection, a goroutine or an open blob for
// as long as they like. Every request body and every response is watched
// by a progress deadline: the connection's read (or write) deadline lies
// ProgressTimeout ahead, and is moved forward only after progressBytes more
// bytes have flowed. A client that trickles a body, or that stops reading a
// download, is cut off after at most ProgressTimeout without progress; one
// that keeps up at least progressBytes per ProgressTimeout is never cut off,
// however large the transfer. A JSON body must moreover arrive whole within
// JSONBodyTimeout: it is small, and a steady trickle of one must not keep a
// handler waiting either.
//
// The deadlines are set through http.ResponseController on the connection
// (or the HTTP/2 stream). net/http keeps a write deadline across the
// requests of a keep-alive connection, so every request starts with a fresh
// one; the deadline left after the last write also bounds the final flush
// that net/http does after the handler returns.

// progressBytes is the progress a transfer must make per ProgressTimeout to
// keep going: 64 KiB, about 2 KiB/s with the default timeout.
const progressBytes = 64 << 10

// progress moves a deadline forward as bytes flow.
type progress struct {
	timeout time.Duration
	set     func(time.Time) error
	// hard, when set, is a deadline no progress moves.
	hard   time.Time
	end    time.Time // current deadline; zero before the first transfer
	moved  int64     // bytes since the deadline was last moved
	broken bool      // the connection cannot take deadlines
}

// arm moves the deadline when the window is new or enough bytes flowed.
func (p *progress) arm() {
	if p.broken || (!p.end.IsZero() && p.moved < progressBytes) {
		return
	}
	p.moved = 0
	p.end = time.Now().Add(p.timeout)
	if !p.hard.IsZero() && p.hard.Before(p.end) {
		p.end = p.hard
	}
	if err := p.set(p.end); err != nil {
		// Only a test's in-memory ResponseWriter lacks deadlines.
		p.broken = true
	}
}

// progressBody is a request body under a progress read deadline.
type progressBody struct {
	io.ReadCloser
	progress
	jsonTimeout time.Duration
}

func (b *progressBody) Read(p []byte) (int, error) {
	b.arm()
	n, err := b.ReadCloser.Read(p)
	b.moved += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = slowBody(err)
	}
	return n, err
}

// wholeBy requires the rest of the body within JSONBodyTimeout.
func (b *progressBody) wholeBy() {
	b.hard = time.Now().Add(b.jsonTimeout)
	b.end = time.Time{} // re-arm with the hard deadline at the next Read
}

// slowBodyError is the error a body read gets when its deadline passed.
type slowBodyError struct{ err error }

func (e *slowBodyError) Error() string { return "request body too slow: " + e.err.Error() }
func (e *slowBodyError) Unwrap() error { return e.err }

func slowBody(err error) error { return &slowBodyError{err} }

func isSlowBody(err error) bool {
	var e *slowBodyError
	return errors.As(err, &e)
}

func slowBodyProblem() error {
	return coffer.Errorf(coffer.EINVALID, "the request body arrived too slowly and was cut off: send it at a steady pace")
}

// progressWriter is a ResponseWriter under a progress write deadline. It
// writes in pieces of progressBytes, so that one large Write cannot outlast
// the deadline by being a single call.
type progressWriter struct {
	http.ResponseWriter
	progress
}

func (w *progressWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		w.arm()
		n, err := w.ResponseWriter.Write(p[:min(len(p), progressBytes)])
		written += n
		w.moved += int64(n)
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (w *progressWriter) WriteHeader(code int) {
	w.arm()
	w.ResponseWriter.WriteHeader(code)
}

// fresh makes the next arm start a new window: the time a handler spends
// before it answers is not the client's.
func (w *progressWriter) fresh() { w.moved = progressBytes }

// Unwrap lets http.ResponseController reach the connection.
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// deadlines puts every request body and response under progress deadlines.
func (s *Server) deadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		pw := &progressWriter{ResponseWriter: w, progress: progress{timeout: s.cfg.ProgressTimeout, set: rc.SetWriteDeadline}}
		// Armed now, against a deadline left by an earlier request on the
		// connection; each answer then starts a fresh window.
		pw.arm()
		pw.fresh()
		if r.Body != nil && r.Body != http.NoBody {
			pb := &progressBody{ReadCloser: r.Body, jsonTimeout: s.cfg.JSONBodyTimeout,
				progress: progress{timeout: s.cfg.ProgressTimeout, set: rc.SetReadDeadline}}
			// On HTTP/1, armed now as well: a body the handler never reads
			// (no token, an unknown route) is drained by net/http before it
			// answers, and that drain has no deadline of its own. The
			// handler's first Read starts a fresh window. HTTP/2 drains
			// nothing, and a stream's read deadline, once passed, closes
			// the body for good: there, the first Read arms it.
			if r.ProtoMajor == 1 {
				pb.arm()
				pb.moved = progressBytes
			}
			r.Body = pb
		}
		next.ServeHTTP(pw, r)
		// What the handler left in net/http's buffer reaches the socket
		// after it returns, under this last deadline.
		pw.fresh()
		pw.arm()
	})
}
