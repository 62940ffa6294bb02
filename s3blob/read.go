package s3blob

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer"
)

// Open implements coffer.BlobStore. It sends one GET for the whole object
// and keeps the response: a download that reads from the start (the usual
// case) costs one request. A Seek elsewhere drops it, and the next Read
// sends a ranged GET from there, conditional on the ETag, so a blob
// replaced meanwhile is an error rather than a mix of two blobs.
func (s *Store) Open(ctx context.Context, key string) (coffer.Blob, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	obj := s.Object(key)
	body, info, _, err := s.core.GetObject(ctx, s.bucket, obj, minio.GetObjectOptions{})
	if isNotFound(err) {
		return nil, notFound()
	}
	if err != nil {
		return nil, wrap("open", key, err)
	}
	if info.Size < 0 {
		body.Close()
		return nil, fmt.Errorf("s3blob: open %s: the server sent no length", key)
	}
	return &blob{s: s, ctx: ctx, key: key, object: obj, etag: info.ETag, size: info.Size, body: body}, nil
}

type blob struct {
	s      *Store
	ctx    context.Context
	key    string
	object string
	etag   string
	size   int64

	pos     int64         // where the next Read reads
	body    io.ReadCloser // a response delivering bytes from bodyPos, or nil
	bodyPos int64
	closed  bool
}

func (b *blob) Size() int64 { return b.size }

func (b *blob) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("s3blob: read after Close")
	}
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.body != nil && b.bodyPos != b.pos {
		b.body.Close()
		b.body = nil
	}
	if b.body == nil {
		var opts minio.GetObjectOptions
		opts.SetRange(b.pos, b.size-1)
		if b.etag != "" {
			opts.SetMatchETag(b.etag)
		}
		body, _, _, err := b.s.core.GetObject(b.ctx, b.s.bucket, b.object, opts)
		if err != nil {
			return 0, wrap("read", b.key, err)
		}
		b.body, b.bodyPos = body, b.pos
	}
	if rest := b.size - b.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := b.body.Read(p)
	b.pos += int64(n)
	b.bodyPos += int64(n)
	if err == io.EOF {
		b.body.Close()
		b.body = nil
		if b.pos < b.size {
			return n, wrap("read", b.key, io.ErrUnexpectedEOF)
		}
		return n, nil
	}
	if err != nil {
		return n, wrap("read", b.key, err)
	}
	return n, nil
}

func (b *blob) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = b.pos + offset
	case io.SeekEnd:
		abs = b.size + offset
	default:
		return 0, errors.New("s3blob: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("s3blob: negative position")
	}
	b.pos = abs
	return abs, nil
}

func (b *blob) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.body != nil {
		b.body.Close()
		b.body = nil
	}
	return nil
}
