package server

import (
	"io"
)

// ReadFrom lets content served by http.ServeContent reach the connection
// the way net/http sends a file: with sendfile(2), the kernel passing the
// blob's pages to the socket, rather than through a 32 KiB buffer with a
// read and a write per piece. It goes in pieces of progressBytes, each
// under the progress deadline as Write does, so that a client keeping up
// is never cut off and one that stopped reading is.
//
// net/http and the kernel recognise a file only as the source itself or
// the one *io.LimitedReader around it (what ServeContent passes), so each
// piece is a single LimitedReader over that source, never a second one
// around the first.
func (w *progressWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{w}, src)
	}
	outer, limited := src.(*io.LimitedReader)
	remain := int64(1<<63 - 1)
	if limited {
		src, remain = outer.R, outer.N
	}
	var total int64
	for remain > 0 {
		w.arm()
		want := min(remain, progressBytes)
		n, err := rf.ReadFrom(&io.LimitedReader{R: src, N: want})
		total += n
		w.moved += n
		remain -= n
		if limited {
			outer.N = remain
		}
		if err != nil || n < want {
			// An error, or the source ended.
			return total, err
		}
	}
	return total, nil
}

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }
