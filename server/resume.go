package server

import (
	"context"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Resumable uploads. A PUT of an upload's content that ends early because
// the client went away keeps what arrived (a body the server cut off for
// trickling keeps nothing): the partial
// blob is committed, durably, and recorded as the upload's content. Its
// size is the upload's durable offset, which HEAD /v1/uploads/{u}/content
// answers in Upload-Offset. A PUT with Upload-Offset: N continues it: N
// must be the durable offset, and the new blob is the stored N bytes (copied
// server-side) followed by the body. Without Upload-Offset (or with 0) a PUT
// starts over. The server never trusts the content either way: the chunk
// tree the author signs at finalize is checked against the blob, and every
// reader proves every chunk.

// uploadOffset parses Upload-Offset and checks it against the upload's
// durable offset.
func uploadOffset(r *http.Request, u *coffer.Upload) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("Upload-Offset"))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, coffer.Errorf(coffer.EINVALID, "Upload-Offset must be a byte count")
	}
	if n != 0 && (n != u.Size || (u.BlobKey == "" && u.Content == nil)) {
		return 0, coffer.Errorf(coffer.EPRECONDITION, "the upload holds %d bytes, not %d: continue from Upload-Offset: %d", u.Size, n, u.Size)
	}
	return n, nil
}

// copyPrefix writes the first n bytes of the upload's stored content to w.
func (s *Server) copyPrefix(ctx context.Context, w io.Writer, u *coffer.Upload, n int64) error {
	if n == 0 {
		return nil
	}
	if u.Content != nil {
		// Kept in the row (server/inline.go): complete, so n is all of it.
		_, err := w.Write(u.Content[:n])
		return err
	}
	blob, err := s.blobs.Open(ctx, u.BlobKey)
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		// Replaced by a PUT that finished meanwhile.
		return coffer.Errorf(coffer.EPRECONDITION, "the upload's content changed meanwhile: ask for its offset again")
	}
	if err != nil {
		return err
	}
	defer blob.Close()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	if _, err := io.CopyBuffer(w, io.LimitReader(blob, n), *buf); err != nil {
		return err
	}
	return nil
}

// keepPartial commits the partial blob of an interrupted PUT and records
// its size bytes as the upload's content, on a context of its own: the
// request's may be over. It returns the durable offset, or 0 when nothing
// was kept (the deferred Abort then removes the blob).
func (s *Server) keepPartial(r *http.Request, caller coffer.AccountID, id coffer.UploadID, key string, bw coffer.BlobWriter, h hash.Hash, size int64) int64 {
	if size == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	if err := bw.Commit(); err != nil {
		loggerFrom(r).WarnContext(ctx, "partial upload not kept", "upload", id, "err", err)
		return 0
	}
	old, err := s.resources.SetUploadContent(ctx, caller, id, key, size, [32]byte(h.Sum(nil)))
	if err != nil {
		if err := s.blobs.Delete(ctx, key); err != nil {
			loggerFrom(r).WarnContext(ctx, "blob left for the sweep", "err", err)
		}
		return 0
	}
	if old != "" {
		if err := s.blobs.Delete(ctx, old); err != nil {
			loggerFrom(r).WarnContext(ctx, "blob left for the sweep", "err", err)
		}
	}
	return size
}

// handleGetUpload answers an upload's status: its durable offset, and
// whether a PUT is writing its content now, so that a client resuming after
// a dropped connection can wait for the server to keep what it received.
func (s *Server) handleGetUpload(w http.ResponseWriter, r *http.Request) {
	id, err := coffer.ParseUploadID(chi.URLParam(r, "uploadID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	caller := callerFrom(r.Context())
	u, err := s.resources.Upload(r.Context(), caller, id)
	if err != nil {
		Error(w, r, err)
		return
	}
	gi, err := s.groups.Group(r.Context(), caller, u.Group)
	if err != nil {
		Error(w, r, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(u.Size, 10))
	w.Header().Set("Cache-Control", "no-store")
	respond(w, http.StatusOK, api.UploadStatus{Upload: s.uploadJSON(u, gi.Epoch), Received: u.Size,
		Writing: u.WritingUntil.After(time.Now())})
}

// handleUploadOffset answers the durable offset of an upload's content in
// Upload-Offset: where a PUT with Upload-Offset continues.
func (s *Server) handleUploadOffset(w http.ResponseWriter, r *http.Request) {
	id, err := coffer.ParseUploadID(chi.URLParam(r, "uploadID"))
	if err != nil {
		Error(w, r, err)
		return
	}
	u, err := s.resources.Upload(r.Context(), callerFrom(r.Context()), id)
	if err != nil {
		Error(w, r, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(u.Size, 10))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
