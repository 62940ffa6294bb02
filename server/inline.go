package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Small resources keep their ciphertext in the row (see migration 00010):
// an upload that ends within InlineContentMax bytes is stored by one
// statement, and a read of it is one indexed row, with no blob to open.
// Readers ask for the content with the header (GET .../{r}?include=content)
// and get both from that one row, so they never see content of another
// version than the header beside it. Small resources whose content is in a
// blob (stored before, or over a lower limit) come the same way, read with
// one blob-store call.

// inlineBufs hold the bodies of small uploads while they are read.
var inlineBufs = sync.Pool{New: func() any { b := make([]byte, 0, coffer.MaxInlineContentSize+1); return &b }}

// readInline reads body into a pooled buffer, covered by the reservation,
// until it ends (fits) or passes InlineContentMax. The buffer is never nil;
// the caller puts it back.
func (s *Server) readInline(body io.Reader, res *reservation) (*[]byte, bool, error) {
	bp := inlineBufs.Get().(*[]byte)
	limit := int(s.cfg.InlineContentMax)
	b := (*bp)[:0]
	for len(b) <= limit {
		k, err := body.Read(b[len(b) : limit+1])
		if k > 0 {
			if cerr := res.cover(int64(k)); cerr != nil {
				*bp = b
				return bp, false, cerr
			}
			b = b[:len(b)+k]
		}
		if errors.Is(err, io.EOF) {
			*bp = b
			return bp, true, nil
		}
		if err != nil {
			*bp = b
			return bp, false, err
		}
	}
	*bp = b
	return bp, false, nil
}

// storeInline records small as the upload's content. The row keeps its own
// copy: small goes back to the pool.
func (s *Server) storeInline(w http.ResponseWriter, r *http.Request, caller coffer.AccountID, id coffer.UploadID, small []byte) {
	sum := sha256.Sum256(small)
	old, err := s.resources.SetUploadInline(r.Context(), caller, id, small, sum)
	if err != nil {
		Error(w, r, err)
		return
	}
	if old != "" {
		s.deleteBlob(r, old) // an earlier attempt that went to a blob
	}
	respond(w, http.StatusOK, api.UploadContent{Size: int64(len(small)), ContentHash: sum[:]})
}

// includeContent returns the ciphertext to send with res when the reader
// asked for it and it is small: from the row, or read from its blob. It
// returns nil when the reader must fetch the content with range requests
// instead (large, or the blob went away under a concurrent replace).
func (s *Server) includeContent(r *http.Request, res *coffer.Resource) []byte {
	if !includes(r, "content") {
		return nil
	}
	if res.Content != nil || res.Size > coffer.MaxInlineContentSize {
		return res.Content
	}
	blob, err := s.blobs.Open(r.Context(), res.BlobKey)
	if err != nil {
		return nil
	}
	defer blob.Close()
	if blob.Size() != res.Size {
		return nil // served by the content endpoint, which logs it
	}
	b := make([]byte, res.Size)
	if _, err := io.ReadFull(blob, b); err != nil {
		return nil
	}
	return b
}

// rowBlob serves content kept in the row like a blob, for range reads.
type rowBlob struct{ *bytes.Reader }

func (rowBlob) Close() error { return nil }

// answerBufs hold compact read answers while they are written; most are a
// small resource's few KiB.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// writeResourceAnswer writes out in the compact encoding (api.ResourceType)
// that the reader asked for with Accept.
func writeResourceAnswer(w http.ResponseWriter, r *http.Request, out *api.Resource) {
	bp := answerBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 256<<10 {
			answerBufs.Put(bp)
		}
	}()
	b, err := api.AppendResource((*bp)[:0], out)
	if err != nil {
		Error(w, r, err)
		return
	}
	*bp = b
	respondCompact(w, api.ResourceType, b)
}
