// Package s3blob is a coffer.BlobStore on an S3-compatible object store
// (AWS S3, or any server speaking its API), for deployments where several
// cofferd replicas share one blob store.
//
// A blob with key k is the object PREFIX/k in one bucket. S3 gives the two
// guarantees the BlobStore contract needs: a PUT or a completed multipart
// upload becomes visible all at once, and an unfinished multipart upload is
// never listed or readable. So a writer streams its blob as a multipart
// upload, one part at a time, and Commit completes it; a blob smaller than
// one part is sent as a single PUT at Commit. Memory per writer is bounded
// by two parts (one filling while the previous one is sent), whatever the
// blob's size.
//
// Multipart uploads left behind by a crashed process cost storage but are
// never seen as blobs; Walk aborts those older than StaleUploadAge.
package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/cofferhq/coffer"
)

const (
	// DefaultPartSize is the multipart part size unless the URL sets one.
	// S3 allows at most 10,000 parts, so it bounds a blob at 80 GB, far
	// above cofferd's largest resource.
	DefaultPartSize = 8 << 20
	// MinPartSize is S3's smallest part (all but the last).
	MinPartSize = 5 << 20
	// maxParts is S3's limit on parts in one upload.
	maxParts = 10000
	// StaleUploadAge is how old an unfinished multipart upload must be
	// before Walk aborts it as the remains of a crashed writer. It is far
	// longer than the slowest honest upload of the largest resource.
	StaleUploadAge = 24 * time.Hour
)

// Config says where the blobs live.
type Config struct {
	// Endpoint is host[:port] of the S3 API; empty means AWS S3
	// (s3.amazonaws.com).
	Endpoint string
	// Insecure uses plain HTTP, for a server on loopback or a private
	// network.
	Insecure bool
	Region   string
	Bucket   string
	// Prefix is prepended to every object name; empty or ending in "/".
	Prefix string
	// PathStyle forces path-style requests (http://host/bucket/key), which
	// most S3-compatible servers need; otherwise the client decides.
	PathStyle bool
	// PartSize is the multipart part size (DefaultPartSize when zero).
	PartSize int64
	// Creds signs requests. Nil means the standard AWS chain: the
	// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	// AWS_SESSION_TOKEN), then the shared credentials file
	// (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile
	// AWS_PROFILE or "default").
	Creds *credentials.Credentials
	// Transport is the HTTP transport (a default one when nil).
	Transport http.RoundTripper
}

// ParseURL reads a blob URL:
//
//	s3://BUCKET[/PREFIX][?endpoint=HOST[:PORT]|http(s)://HOST[:PORT]&region=R&path-style=true&part-size=BYTES]
//
// An endpoint with http:// is reached in plain HTTP; one without a scheme,
// or with https://, over TLS. Naming an endpoint implies path-style unless
// path-style=false. Credentials never appear in the URL.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("blob URL: %w", err)
	}
	if u.Scheme != "s3" {
		return Config{}, fmt.Errorf("blob URL %q: want scheme s3", raw)
	}
	if u.User != nil {
		return Config{}, errors.New("blob URL: credentials do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the AWS credentials file")
	}
	c := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if c.Bucket == "" {
		return Config{}, fmt.Errorf("blob URL %q names no bucket (s3://BUCKET/PREFIX)", raw)
	}
	if c.Prefix != "" {
		c.Prefix += "/"
	}
	pathStyle := ""
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			c.Endpoint = v
		case "region":
			c.Region = v
		case "path-style":
			pathStyle = v
		case "part-size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Config{}, fmt.Errorf("blob URL: part-size %q: want a number of bytes", v)
			}
			c.PartSize = n
		default:
			return Config{}, fmt.Errorf("blob URL: unknown parameter %q (known: endpoint, region, path-style, part-size)", k)
		}
	}
	if rest, ok := strings.CutPrefix(c.Endpoint, "http://"); ok {
		c.Endpoint, c.Insecure = rest, true
	} else {
		c.Endpoint = strings.TrimPrefix(c.Endpoint, "https://")
	}
	if strings.ContainsAny(c.Endpoint, "/?#") {
		return Config{}, fmt.Errorf("blob URL: endpoint %q: want HOST[:PORT]", c.Endpoint)
	}
	c.PathStyle = c.Endpoint != ""
	if pathStyle != "" {
		if c.PathStyle, err = strconv.ParseBool(pathStyle); err != nil {
			return Config{}, fmt.Errorf("blob URL: path-style %q: want true or false", pathStyle)
		}
	}
	return c, nil
}

// Store is a BlobStore in one bucket under one prefix.
type Store struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	prefix   string
	partSize int64
	parts    sync.Pool // *[]byte of partSize
	// Now is the clock for the stale-upload check.
	Now func() time.Time
}

var _ coffer.BlobStore = (*Store)(nil)

// Open returns the store a blob URL names (see ParseURL), with credentials
// from the standard AWS chain.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(ctx, c)
}

// New connects to the bucket and checks that it exists, so a wrong name or
// wrong credentials fail at start rather than on the first upload.
func New(ctx context.Context, c Config) (*Store, error) {
	if c.Bucket == "" {
		return nil, errors.New("s3blob: no bucket")
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.PartSize < MinPartSize || c.PartSize > 1<<30 {
		return nil, fmt.Errorf("s3blob: part size %d: want %d to %d bytes", c.PartSize, MinPartSize, 1<<30)
	}
	if c.Endpoint == "" {
		c.Endpoint = "s3.amazonaws.com"
	}
	creds := c.Creds
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
		})
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(c.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       !c.Insecure,
		Region:       c.Region,
		BucketLookup: lookup,
		Transport:    c.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("s3blob: %w", err)
	}
	ok, err := client.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3blob: bucket %s at %s: %w", c.Bucket, c.Endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3blob: bucket %s does not exist at %s", c.Bucket, c.Endpoint)
	}
	s := &Store{
		client:   client,
		core:     minio.Core{Client: client},
		bucket:   c.Bucket,
		prefix:   c.Prefix,
		partSize: c.PartSize,
		Now:      time.Now,
	}
	s.parts.New = func() any { b := make([]byte, s.partSize); return &b }
	return s, nil
}

// PartSize returns the multipart part size.
func (s *Store) PartSize() int64 { return s.partSize }

// Object returns the object name of blob key, for operators and tests.
func (s *Store) Object(key string) string { return s.prefix + key }

func checkKey(key string) error {
	if !coffer.ValidBlobKey(key) {
		return coffer.Errorf(coffer.EINVALID, "malformed blob key")
	}
	return nil
}

func notFound() error { return coffer.Errorf(coffer.ENOTFOUND, "no such blob") }

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusNotFound || r.Code == minio.NoSuchKey
}

// wrap names the operation and the key, never the credentials (minio's
// errors carry neither).
func wrap(op, key string, err error) error {
	return fmt.Errorf("s3blob: %s %s: %w", op, key, err)
}

// Create implements coffer.BlobStore. Nothing is sent until a part is
// full or Commit is called.
func (s *Store) Create(ctx context.Context, key string) (coffer.BlobWriter, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return &writer{s: s, ctx: ctx, key: key, object: s.Object(key)}, nil
}

// writer streams one blob. Write fills buf; a full buf is handed to a
// goroutine that sends it as the next part while Write fills another, so
// at most two parts are in memory and the client's stream never waits for
// more than one part's round trip.
type writer struct {
	s      *Store
	ctx    context.Context
	key    string
	object string

	buf      *[]byte // the part being filled
	n        int     // bytes in buf
	uploadID string  // set when the first part is sent
	parts    []minio.CompletePart
	inflight chan partResult // the part being sent, if any
	err      error           // sticky: the first failure
	done     bool
}

type partResult struct {
	part minio.CompletePart
	buf  *[]byte
	err  error
}

var errFinished = errors.New("s3blob: write after Commit or Abort")

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errFinished
	}
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = w.s.parts.Get().(*[]byte)
			w.n = 0
		}
		c := copy((*w.buf)[w.n:], p)
		w.n += c
		written += c
		p = p[c:]
		if w.n == len(*w.buf) {
			if err := w.sendPart(); err != nil {
				w.err = err
				return written, err
			}
		}
	}
	return written, nil
}

// sendPart starts sending the full buffer as the next part, after the
// previous part has been sent.
func (w *writer) sendPart() error {
	if err := w.wait(); err != nil {
		return err
	}
	if len(w.parts) >= maxParts {
		return fmt.Errorf("s3blob: blob %s exceeds %d parts of %d bytes", w.key, maxParts, w.s.partSize)
	}
	if w.uploadID == "" {
		id, err := w.s.core.NewMultipartUpload(w.ctx, w.s.bucket, w.object, minio.PutObjectOptions{})
		if err != nil {
			return wrap("start upload of", w.key, err)
		}
		w.uploadID = id
	}
	buf, n, num := w.buf, w.n, len(w.parts)+1
	w.buf, w.n = nil, 0
	ch := make(chan partResult, 1)
	w.inflight = ch
	go func() {
		// The content is ciphertext whose hash the server recorded and
		// every reader checks; the payload is not signed again here
		// (UNSIGNED-PAYLOAD), which saves a SHA-256 pass per byte.
		p, err := w.s.core.PutObjectPart(w.ctx, w.s.bucket, w.object, w.uploadID, num,
			bytes.NewReader((*buf)[:n]), int64(n), minio.PutObjectPartOptions{DisableContentSha256: true})
		ch <- partResult{part: minio.CompletePart{PartNumber: num, ETag: p.ETag}, buf: buf, err: err}
	}()
	return nil
}

// wait collects the part in flight, if any.
func (w *writer) wait() error {
	if w.inflight == nil {
		return nil
	}
	r := <-w.inflight
	w.inflight = nil
	w.s.parts.Put(r.buf)
	if r.err != nil {
		return wrap("upload part of", w.key, r.err)
	}
	w.parts = append(w.parts, r.part)
	return nil
}

func (w *writer) Commit() error {
	if w.done {
		return errors.New("s3blob: Commit after Commit or Abort")
	}
	err := w.commit()
	if err != nil {
		w.abort()
		return err
	}
	w.done = true
	return nil
}

func (w *writer) commit() error {
	if w.err != nil {
		return w.err
	}
	if w.uploadID == "" {
		// Smaller than one part: one PUT, visible all at once.
		var data []byte
		if w.buf != nil {
			data = (*w.buf)[:w.n]
		}
		_, err := w.s.core.PutObject(w.ctx, w.s.bucket, w.object, bytes.NewReader(data), int64(len(data)), "", "",
			minio.PutObjectOptions{DisableContentSha256: true})
		w.release()
		if err != nil {
			return wrap("put", w.key, err)
		}
		return nil
	}
	if w.n > 0 {
		if err := w.sendPart(); err != nil {
			return err
		}
	}
	if err := w.wait(); err != nil {
		return err
	}
	w.release()
	if _, err := w.s.core.CompleteMultipartUpload(w.ctx, w.s.bucket, w.object, w.uploadID, w.parts, minio.PutObjectOptions{}); err != nil {
		return wrap("complete upload of", w.key, err)
	}
	return nil
}

func (w *writer) release() {
	if w.buf != nil {
		w.s.parts.Put(w.buf)
		w.buf, w.n = nil, 0
	}
}

func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	return w.abort()
}

// abort stops the writer and discards the parts sent. The abort request
// runs on its own context: the request's may be the reason for the abort.
func (w *writer) abort() error {
	w.done = true
	w.wait()
	w.release()
	if w.uploadID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), time.Minute)
	defer cancel()
	err := w.s.core.AbortMultipartUpload(ctx, w.s.bucket, w.object, w.uploadID)
	w.uploadID = ""
	if err != nil && !isNotFound(err) {
		// Walk aborts it later, once it is stale.
		return wrap("abort upload of", w.key, err)
	}
	return nil
}

// Delete implements coffer.BlobStore. S3 answers a delete of a missing
// object with success, as the contract wants.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.Object(key), minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return wrap("delete", key, err)
	}
	return nil
}

// Walk implements coffer.BlobStore. Objects under the prefix whose name is
// not a blob key are ignored. After listing, it aborts multipart uploads
// older than StaleUploadAge; a failure there is left for the next walk.
func (s *Store) Walk(ctx context.Context, fn func(key string, modTime time.Time) error) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lister if fn stops the walk
	for obj := range s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("s3blob: list: %w", obj.Err)
		}
		key, ok := strings.CutPrefix(obj.Key, s.prefix)
		if !ok || !coffer.ValidBlobKey(key) {
			continue
		}
		if err := fn(key, obj.LastModified); err != nil {
			return err
		}
	}
	cancel()
	s.abortStale(ctx)
	return ctx.Err()
}

func (s *Store) abortStale(ctx context.Context) {
	staleBefore := s.Now().Add(-StaleUploadAge)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for u := range s.client.ListIncompleteUploads(lctx, s.bucket, s.prefix, true) {
		if u.Err != nil {
			return
		}
		if !u.Initiated.IsZero() && u.Initiated.Before(staleBefore) {
			s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID)
		}
	}
}
