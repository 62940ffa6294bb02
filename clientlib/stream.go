package clientlib

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/content"
)

// A resource blob is the age file (ContentSize bytes) followed by its chunk
// hash list (32 bytes per leaf of the chunk tree). Get reads it with two
// Range requests pinned by If-Match to the verified version: the list
// first, proven against the signed root, then the age file, each chunk
// proven against its leaf before it is decrypted (see internal/content).

// openContent fetches the chunk hash list of the verified header h, proves
// it, and starts the verified decryption of the age file. The caller closes
// the returned body.
func (c *Client) openContent(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, vr *verified) (io.ReadCloser, *content.Reader, error) {
	h := vr.header
	hashes, err := c.chunkHashes(ctx, g, id, h)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.stream(ctx, http.MethodGet, resourcePath(g, id)+"/content", nil, http.Header{
		"If-Match": {etag(h.Version)},
		"Range":    {"bytes=0-" + strconv.FormatInt(h.ContentSize-1, 10)},
	})
	if err != nil {
		return nil, nil, err
	}
	pt, err := content.Decrypt(resp.Body, hashes, vr.key, g, h.Epoch, h.Resource, h.ContentSize, c.fileKeyObserver()...)
	if err != nil {
		resp.Body.Close()
		return nil, nil, contentError(err)
	}
	return bodyAndReader{resp.Body, pt}, pt, nil
}

// bodyAndReader closes the connection, which ends a read of it in
// progress, and then stops the reader's read-ahead.
type bodyAndReader struct {
	body io.ReadCloser
	pt   *content.Reader
}

func (b bodyAndReader) Read(p []byte) (int, error) { return b.body.Read(p) }

func (b bodyAndReader) Close() error {
	err := b.body.Close()
	b.pt.Close()
	return err
}

// chunkHashes reads the list stored after the age file: the blob's last
// ChunkHashListSize bytes, asked for as a suffix range so that a blob of any
// other length (truncated, extended) yields a list that does not prove,
// rather than a range error. Its length comes from the verified header,
// which bounds it to 32 bytes per 64 KiB of content, so it is read whole:
// 512 KiB for 1 GiB.
func (c *Client) chunkHashes(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, h *coffer.ResourceHeader) (*content.ChunkHashes, error) {
	n := content.ChunkHashListSize(h.Chunks)
	resp, err := c.stream(ctx, http.MethodGet, resourcePath(g, id)+"/content", nil, http.Header{
		"If-Match": {etag(h.Version)},
		"Range":    {"bytes=-" + strconv.FormatInt(n, 10)},
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body := io.Reader(resp.Body)
	if resp.StatusCode == http.StatusOK {
		// Served whole, without the range: skip the age file.
		if _, err := io.CopyN(io.Discard, body, h.ContentSize); err != nil {
			return nil, contentListError(err)
		}
	}
	list := make([]byte, n)
	if _, err := io.ReadFull(body, list); err != nil {
		return nil, contentListError(err)
	}
	if resp.StatusCode == http.StatusOK {
		// Served whole: the list must end the blob.
		if k, _ := io.ReadFull(body, make([]byte, 1)); k != 0 {
			return nil, coffer.Security("resource", fmt.Errorf("%w: the blob is longer than the signed size and list", content.ErrChunkHashes))
		}
	}
	hashes, err := content.VerifyChunkHashes(list, h.TreeRoot, h.Chunks)
	if err != nil {
		return nil, coffer.Security("resource", err)
	}
	return hashes, nil
}

// openInline starts the verified decryption of content the server sent
// with the header: the blob's bytes, the age file then the chunk hash
// list, held to exactly what the verified header h signs. The list is
// taken from the end, as chunkHashes takes it, so content of any other
// length yields a list that does not prove or an age file that is
// truncated, never bytes outside the signed layout.
func (c *Client) openInline(vr *verified, blob []byte) (*content.Reader, error) {
	h := vr.header
	n := content.ChunkHashListSize(h.Chunks)
	if int64(len(blob)) < n {
		return nil, coffer.Security("resource", fmt.Errorf("%w: the chunk hash list is shorter than the signed count", content.ErrChunkHashes))
	}
	ageFile, list := blob[:int64(len(blob))-n], blob[int64(len(blob))-n:]
	if int64(len(ageFile)) > h.ContentSize {
		return nil, coffer.Security("resource", fmt.Errorf("%w: the blob is longer than the signed size and list", content.ErrChunkHashes))
	}
	hashes, err := content.VerifyChunkHashes(list, h.TreeRoot, h.Chunks)
	if err != nil {
		return nil, coffer.Security("resource", err)
	}
	pt, err := content.Decrypt(bytes.NewReader(ageFile), hashes, vr.key, h.Group, h.Epoch, h.Resource, h.ContentSize, c.fileKeyObserver()...)
	if err != nil {
		return nil, contentError(err)
	}
	return pt, nil
}

func contentListError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return coffer.Security("resource", fmt.Errorf("%w: the chunk hash list is shorter than the signed count", content.ErrChunkHashes))
	}
	return unavailable("reading the chunk hash list", err)
}
