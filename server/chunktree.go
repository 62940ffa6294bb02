package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"

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
func (s *Server) checkChunkTree(ctx context.Context, u *coffer.Upload, h *coffer.ResourceHeader) error {
	listSize := content.ChunkHashListSize(h.Chunks)
	if h.ContentSize > u.Size || u.Size-h.ContentSize != listSize {
		return coffer.Errorf(coffer.EINVALID, "the header's size %d and %d chunks do not match the %d bytes received (an age file and its chunk hash list)", h.ContentSize, h.Chunks, u.Size)
	}
	var blob coffer.Blob = rowBlob{bytes.NewReader(u.Content)}
	if u.Content == nil {
		var err error
		if blob, err = s.blobs.Open(ctx, u.BlobKey); err != nil {
			return err
		}
		defer blob.Close()
	}
	if _, err := readChunkHashes(blob, h); err != nil {
		return coffer.Errorf(coffer.EINVALID, "the chunk hash list received does not hash to the header's tree root")
	}
	return nil
}

// readChunkHashes reads the list stored after the age file and proves it
// against the header's root. An error means the blob is not what the header
// describes.
func readChunkHashes(blob coffer.Blob, h *coffer.ResourceHeader) (*content.ChunkHashes, error) {
	listSize := content.ChunkHashListSize(h.Chunks)
	if blob.Size() != h.ContentSize+listSize {
		return nil, coffer.Errorf(coffer.EINVALID, "the blob is %d bytes, the header describes %d", blob.Size(), h.ContentSize+listSize)
	}
	if _, err := blob.Seek(h.ContentSize, io.SeekStart); err != nil {
		return nil, err
	}
	list := make([]byte, listSize)
	if _, err := io.ReadFull(blob, list); err != nil {
		return nil, err
	}
	return content.VerifyChunkHashes(list, h.TreeRoot, h.Chunks)
}

// handleResourceChunks answers a verified range read: chunks first …
// first+count-1 of the current version's age file, each after its RFC 6962
// inclusion proof against the signed chunk tree, and first the age header
// leaf with its proof (see content.WriteRange for the frames). The proofs
// come from the list stored with the blob, so a seek anywhere in a resource
// costs the list's read (512 KiB for 1 GiB) and one chunk.
func (s *Server) handleResourceChunks(w http.ResponseWriter, r *http.Request) {
	g, id, err := groupAndResource(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	want, err := ifMatchVersion(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	first, err := queryUint(r, "first", 0)
	if err != nil {
		Error(w, r, err)
		return
	}
	count, err := queryUint(r, "count", 0)
	if err != nil {
		Error(w, r, err)
		return
	}
	res, blob, err := s.openCurrent(r, g, id, want)
	if err != nil {
		Error(w, r, err)
		return
	}
	defer blob.Close()
	h, err := coffer.ParseResourceHeader(res.Header.Body)
	if err != nil {
		Error(w, r, err)
		return
	}
	if count == 0 && first < h.Chunks {
		count = h.Chunks - first // the rest of the file
	}
	if err := content.CheckSpan(first, count, h.Chunks); err != nil {
		Error(w, r, coffer.Errorf(coffer.EINVALID, "chunks %d to %d: the resource has %d chunks", first, first+count, h.Chunks))
		return
	}
	hashes, err := readChunkHashes(blob, h)
	if err != nil {
		// The stored blob does not match the stored header: damage.
		loggerFrom(r).ErrorContext(r.Context(), "blob does not match its header's chunk tree", "resource", res.ID, "version", res.Version)
		Error(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(res.Version))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "private, no-cache")
	if err := content.WriteRange(w, blob, h.ContentSize, hashes, first, count); err != nil {
		// The status is sent; cutting the connection is the only signal
		// left, and the client reports the truncated chunk.
		loggerFrom(r).InfoContext(r.Context(), "range read interrupted", "resource", res.ID, "err", err)
		panic(http.ErrAbortHandler)
	}
}

func queryUint(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, coffer.Errorf(coffer.EINVALID, "%s must be a non-negative integer", name)
	}
	return n, nil
}
