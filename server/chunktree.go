package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
)

// checkChunkTree checks, before a header is stored, that the blob is an age
// file of the signed size followed by a chunk hash list of the signed count
// whose tree has the signed root. The chunks themselves are proven by every
// reader; this keeps an honest client from storing a header readers would
// refuse. It returns the tree's stored hashes of a blob-backed upload, which
// FinalizeUpload keeps with the row so that range reads are proven without
// reading the list again. h comes from ParseResourceHeader, which bounds
// Chunks by ContentSize, so the list read here is at most 32 bytes per
// 64 KiB and the tree about twice that.
func (s *Server) checkChunkTree(ctx context.Context, u *coffer.Upload, h *coffer.ResourceHeader) ([]byte, error) {
	listSize := content.ChunkHashListSize(h.Chunks)
	if h.ContentSize > u.Size || u.Size-h.ContentSize != listSize {
		return nil, coffer.Errorf(coffer.EINVALID, "the header's size %d and %d chunks do not match the %d bytes received (an age file and its chunk hash list)", h.ContentSize, h.Chunks, u.Size)
	}
	if u.Content != nil {
		if _, err := readChunkHashes(rowBlob{bytes.NewReader(u.Content)}, h); err != nil {
			return nil, coffer.Errorf(coffer.EINVALID, "the chunk hash list received does not hash to the header's tree root")
		}
		return nil, nil
	}
	blob, err := s.blobs.Open(ctx, u.BlobKey)
	if err != nil {
		return nil, err
	}
	defer blob.Close()
	hashes, err := readChunkHashes(blob, h)
	if err != nil {
		return nil, coffer.Errorf(coffer.EINVALID, "the chunk hash list received does not hash to the header's tree root")
	}
	return hashes.StoredTree(), nil
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
// come from the tree's stored hashes kept with the row (see chunkProver), so
// a seek anywhere in a resource costs one small read of them and one chunk.
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
	proofs := s.chunkProver(r, res, blob, h)
	w.Header().Set("ETag", etag(res.Version))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "private, no-cache")
	cw := &countingWriter{w: w}
	if err := content.WriteRange(cw, blob, h.ContentSize, h.Chunks, proofs, first, count); err != nil {
		if cw.n == 0 {
			// Nothing is sent yet (the first proofs failed): a problem.
			for _, k := range []string{"ETag", "Content-Type", "X-Content-Type-Options", "Cache-Control"} {
				w.Header().Del(k)
			}
			Error(w, r, err)
			return
		}
		// The status is sent; cutting the connection is the only signal
		// left, and the client reports the truncated chunk.
		loggerFrom(r).InfoContext(r.Context(), "range read interrupted", "resource", res.ID, "err", err)
		panic(http.ErrAbortHandler)
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// chunkTrees is the part of the store that keeps each blob-backed
// version's chunk tree (store.DB).
type chunkTrees interface {
	ChunkTreeHashes(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, blobKey string, indexes []int64) ([][32]byte, int64, bool, error)
	SetChunkTree(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, blobKey string, tree []byte) error
}

// chunkProver returns what proves the chunks of res: the stored hashes of
// its chunk tree, read a few at a time from its row, when it has them;
// otherwise the list read from blob and proven against the signed root,
// whose tree is then stored for the next reads (a version stored before
// trees were kept; inline content, one chunk, always uses the list). The
// stored hashes are not checked here: the reader proves every frame
// against the signed root, so a damaged or forged tree yields a security
// error on the client, never other plaintext.
func (s *Server) chunkProver(r *http.Request, res *coffer.Resource, blob coffer.Blob, h *coffer.ResourceHeader) content.Prover {
	p := &rowProver{r: r, res: res, blob: blob, h: h}
	if trees, ok := s.resources.(chunkTrees); ok && res.Content == nil {
		p.trees = trees
		want := content.StoredTreeSize(h.Chunks)
		p.stored = content.NewStoredProver(h.Chunks, func(indexes []int64) ([]tlog.Hash, error) {
			hs, n, found, err := trees.ChunkTreeHashes(r.Context(), res.Group, res.ID, res.BlobKey, indexes)
			switch {
			case err != nil:
				return nil, err
			case !found:
				return nil, errNoStoredTree
			case n != want:
				return nil, fmt.Errorf("the stored chunk tree is %d bytes, its header's needs %d", n, want)
			}
			out := make([]tlog.Hash, len(hs))
			for i := range hs {
				out[i] = tlog.Hash(hs[i])
			}
			return out, nil
		})
	}
	return p
}

var errNoStoredTree = errors.New("no stored chunk tree")

// rowProver proves from the stored tree until that fails, and from then on
// from the blob's list. WriteRange asks for the first proofs before it
// writes anything, so a version without a stored tree is served from the
// list from its first frame.
type rowProver struct {
	r      *http.Request
	res    *coffer.Resource
	blob   coffer.Blob
	h      *coffer.ResourceHeader
	trees  chunkTrees
	stored content.Prover
	list   *content.ChunkHashes
}

func (p *rowProver) Proofs(leaves []int64) ([]tlog.RecordProof, error) {
	ctx := p.r.Context()
	store := false
	if p.stored != nil {
		ps, err := p.stored.Proofs(leaves)
		if err == nil {
			return ps, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err() // the reader went away: nothing to repair
		}
		if errors.Is(err, errNoStoredTree) {
			store = true
		} else {
			// Damage or a failed query: the list in the blob still proves.
			loggerFrom(p.r).ErrorContext(ctx, "stored chunk tree unusable; proving from the blob's list", "resource", p.res.ID, "version", p.res.Version, "err", err)
		}
		p.stored = nil
	}
	if p.list == nil {
		hashes, err := readChunkHashes(p.blob, p.h)
		if err != nil {
			// The stored blob does not match the stored header: damage.
			loggerFrom(p.r).ErrorContext(ctx, "blob does not match its header's chunk tree", "resource", p.res.ID, "version", p.res.Version)
			return nil, err
		}
		p.list = hashes
		if store {
			if err := p.trees.SetChunkTree(ctx, p.res.Group, p.res.ID, p.res.BlobKey, hashes.StoredTree()); err != nil {
				loggerFrom(p.r).WarnContext(ctx, "storing a chunk tree", "resource", p.res.ID, "version", p.res.Version, "err", err)
			}
		}
	}
	return p.list.Proofs(leaves)
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
