package server

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// readFromRecorder is a ResponseWriter whose connection takes a source
// whole, as net/http's does with sendfile: it records what it was given.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	pieces []*io.LimitedReader
	files  int
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if ok {
		r.pieces = append(r.pieces, lr)
		if _, isFile := lr.R.(syscall.Conn); isFile {
			r.files++
		}
	}
	return io.Copy(r.ResponseRecorder, src)
}

// TestServeContentReachesSendfile: content served by http.ServeContent
// through the progress deadline reaches the connection as the file itself
// under one LimitedReader (what sendfile recognises), in pieces of at most
// progressBytes each under a fresh deadline, and arrives whole.
func TestServeContentReachesSendfile(t *testing.T) {
	data := make([]byte, 5*progressBytes+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, rng := range []string{"", "bytes=0-" + "200000", "bytes=1000-"} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
		deadlines := 0
		pw := &progressWriter{ResponseWriter: rec, progress: progress{timeout: time.Minute, set: func(time.Time) error {
			deadlines++
			return nil
		}}}
		req := httptest.NewRequest(http.MethodGet, "/content", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		http.ServeContent(pw, req, "", time.Time{}, f)
		f.Close()

		want := data
		switch rng {
		case "bytes=0-200000":
			want = data[:200001]
		case "bytes=1000-":
			want = data[1000:]
		}
		if !bytes.Equal(rec.Body.Bytes(), want) {
			t.Fatalf("range %q: %d bytes served, want %d", rng, rec.Body.Len(), len(want))
		}
		if len(rec.pieces) == 0 || rec.files != len(rec.pieces) {
			t.Fatalf("range %q: %d pieces reached the connection's ReadFrom, %d of them over the file: want all, over the file", rng, len(rec.pieces), rec.files)
		}
		if least := (len(want) + progressBytes - 1) / progressBytes; len(rec.pieces) < least || deadlines < len(rec.pieces) {
			t.Errorf("range %q: %d pieces under %d deadlines for %d bytes: want pieces of at most %d bytes, each under a deadline", rng, len(rec.pieces), deadlines, len(want), progressBytes)
		}
	}
}
