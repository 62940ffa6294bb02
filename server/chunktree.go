package server

import (
	"context"
	"io"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
)

// checkChunkTree checks, before a header is stored, that the blob is an age
// file of the signed size followed by a chunk hash list of the signed count
// whose tree has the signed root. The chunks themselves are proven by every
// reader; this keeps an honest client from storing a header readers would
// refuse, and lets the server later answer range reads with proofs from the
// stored list. h comes from ParseResourceHeader, which bounds Chunks by
// ContentSize, so the list read here is at most 32 bytes per 64 KiB.
func (s *Server) checkChunkTree(ctx context.Context, blobKey string, size int64, h *coffer.ResourceHeader) error {
	listSize := content.ChunkHashListSize(h.Chunks)
	if h.ContentSize > size || size-h.ContentSize != listSize {
		return coffer.Errorf(coffer.EINVALID, "the header's size %d and %d chunks do not match the %d bytes received (an age file and its chunk hash list)", h.ContentSize, h.Chunks, size)
	}
	blob, err := s.blobs.Open(ctx, blobKey)
	if err != nil {
		return err
	}
	defer blob.Close()
	if _, err := blob.Seek(h.ContentSize, io.SeekStart); err != nil {
		return err
	}
	list := make([]byte, listSize)
	if _, err := io.ReadFull(blob, list); err != nil {
		return err
	}
	if _, err := content.VerifyChunkHashes(list, h.TreeRoot, h.Chunks); err != nil {
		return coffer.Errorf(coffer.EINVALID, "the chunk hash list received does not hash to the header's tree root")
	}
	return nil
}
