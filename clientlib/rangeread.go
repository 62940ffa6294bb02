package clientlib

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
)

// RangeOptions tune GetRange. The zero value is valid.
type RangeOptions struct {
	// Version, if not zero, pins the read to that version: a resource now
	// at another version answers EPRECONDITION instead of its bytes. A
	// resumed download sets it, so that it never splices two versions.
	Version uint64
	// Progress, if set, is called as verified plaintext of the range is
	// returned, with the bytes done and the range's length.
	Progress func(done, total int64)
}

// GetRange verifies resource id of g, as Get does (header, signature,
// metadata, version), and returns a reader of plaintext bytes [offset,
// offset+length) of its content; a negative length means to the end. A
// range that ends past the content is cut at its end; an offset past it is
// EINVALID.
//
// Only the chunks that hold the range travel, each with its inclusion proof
// against the author's signed chunk tree, and the reader proves every one
// before it releases a byte of it: what the caller has seen when an error
// arrives is the range's plaintext up to the start of the chunk that the
// error names (a *coffer.SecurityError wrapping a *content.ChunkError), all
// of it genuine, and nothing of that chunk. The caller must Close the
// reader.
func (c *Client) GetRange(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, offset, length int64) (*ResourceReader, error) {
	return c.GetRangeWithOptions(ctx, g, id, offset, length, nil)
}

// GetRangeWithOptions is GetRange with options.
func (c *Client) GetRangeWithOptions(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, offset, length int64, opts *RangeOptions) (*ResourceReader, error) {
	if opts == nil {
		opts = &RangeOptions{}
	}
	if offset < 0 {
		return nil, coffer.Errorf(coffer.EINVALID, "a range cannot start at %d", offset)
	}
	for attempt := 0; ; attempt++ {
		vr, err := c.head(ctx, g, id)
		if err != nil {
			return nil, err
		}
		if vr.locked {
			return nil, coffer.Errorf(coffer.EFORBIDDEN,
				"resource %s is from epoch %d, before you joined; this group does not share its history", id, vr.header.Epoch)
		}
		if opts.Version != 0 && vr.res.Version != opts.Version {
			return nil, inGroup(preconditionError(vr.res.Version, opts.Version), g, id)
		}
		size := vr.res.Meta.Size
		if offset > size {
			return nil, coffer.Errorf(coffer.EINVALID, "the range starts at %d, past the end of resource %s (%d bytes)", offset, id, size)
		}
		n := size - offset
		if length >= 0 && length < n {
			n = length
		}
		rr := &ResourceReader{ctx: ctx, res: vr.res, want: n, progress: opts.Progress, resumer: resumer{c: c, vr: vr, start: offset}}
		if n == 0 {
			rr.body, rr.pt = io.NopCloser(nil), eofReader{}
			return rr, nil
		}
		body, pt, err := c.openRange(ctx, g, id, vr, offset, n)
		if coffer.ErrorCode(err) == coffer.EPRECONDITION && attempt < 3 && opts.Version == 0 {
			continue
		}
		if err != nil {
			return nil, inGroup(err, g, id)
		}
		rr.body, rr.pt = body, pt
		return rr, nil
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func preconditionError(current, want uint64) error {
	return coffer.Errorf(coffer.EPRECONDITION, "the resource is at version %d, not %d", current, want)
}

// openRange asks for the chunks that hold [offset, offset+n) with their
// proofs, pinned by If-Match to the verified version, and starts their
// verified decryption.
func (c *Client) openRange(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, vr *verified, offset, n int64) (io.ReadCloser, *content.RangeReader, error) {
	h := vr.header
	first, count := content.ChunkSpan(offset, n)
	if count > h.Chunks || first > h.Chunks-count {
		// The signed metadata promises more plaintext than the signed tree
		// has chunks for.
		return nil, nil, coffer.Security("resource", fmt.Errorf("%w: the signed metadata says %d bytes, the signed tree has %d chunks", content.ErrRange, vr.res.Meta.Size, h.Chunks))
	}
	path := resourcePath(g, id) + "/chunks?first=" + strconv.FormatUint(first, 10) + "&count=" + strconv.FormatUint(count, 10)
	resp, err := c.stream(ctx, http.MethodGet, path, nil, http.Header{"If-Match": {etag(h.Version)}})
	if err != nil {
		return nil, nil, err
	}
	pt, err := content.DecryptRange(resp.Body, h.TreeRoot, h.Chunks, h.ContentSize, vr.key, g, h.Epoch, h.Resource, offset, n, c.fileKeyObserver()...)
	if err != nil {
		resp.Body.Close()
		return nil, nil, contentError(err)
	}
	return resp.Body, pt, nil
}

// maxDownloadResumes bounds how often one read continues after a failed
// connection.
const maxDownloadResumes = 5

// resumer lets a ResourceReader continue after the connection failed, with
// a verified range read of the rest, pinned to the version it verified.
// Only failures of the network are retried: a truncated or tampered stream
// is a security error, and the caller decides.
type resumer struct {
	c       *Client
	vr      *verified
	start   int64 // the plaintext offset the read started at
	resumes int
}

// resume continues rr after err, a failed read of its plaintext, and
// reads into p; it returns err when it cannot.
func (rr *ResourceReader) resume(p []byte, err error) (int, error) {
	for {
		if rr.c == nil || rr.done >= rr.want || rr.resumes == maxDownloadResumes || rr.ctx.Err() != nil || coffer.ErrorCode(contentError(err)) != coffer.EUNAVAILABLE {
			return 0, err
		}
		if serr := sleepCtx(rr.ctx, retryBackoff(rr.resumes)); serr != nil {
			return 0, err
		}
		rr.resumes++
		rr.body.Close()
		rr.body, rr.pt = io.NopCloser(nil), eofReader{}
		h := rr.vr.header
		body, pt, oerr := rr.c.openRange(rr.ctx, h.Group, h.Resource, rr.vr, rr.start+rr.done, rr.want-rr.done)
		if oerr != nil {
			if coffer.ErrorCode(oerr) != coffer.EUNAVAILABLE {
				return 0, oerr
			}
			err = oerr
			continue
		}
		rr.body, rr.pt = body, pt
		n, rerr := pt.Read(p)
		if n > 0 || rerr == nil || rerr == io.EOF {
			return n, rerr
		}
		err = rerr
	}
}
