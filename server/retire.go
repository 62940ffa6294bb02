package server

import (
	"context"
	"net/http"
	"time"
)

// retireBlob deletes the blob of a version that a replace or delete has
// just superseded, after SupersededBlobGrace. A download that read the old
// row a moment before may still be opening or reading the blob; on a
// filesystem an open file outlives its deletion, but an S3 backend reads
// each range with a new request, and a blob deleted under it would cut a
// download short, which the client would have to take for tampering. The
// row no longer names the blob, so if cofferd stops before the timer fires,
// the orphan sweep deletes it later.
func (s *Server) retireBlob(r *http.Request, key string) {
	if key == "" {
		return // the version kept its content in its row, gone with it
	}
	if s.cfg.SupersededBlobGrace < 0 {
		s.deleteBlob(r, key)
		return
	}
	logger := loggerFrom(r)
	time.AfterFunc(s.cfg.SupersededBlobGrace, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.blobs.Delete(ctx, key); err != nil {
			logger.WarnContext(ctx, "superseded blob left for the sweep", "err", err)
		}
	})
}
