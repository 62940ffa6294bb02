package s3blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/blobtest"
	"github.com/cofferhq/coffer/internal/s3test"
	"github.com/cofferhq/coffer/s3blob"
)

func newStore(t *testing.T, prefix string) (*s3blob.Store, *s3test.Server, string) {
	t.Helper()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	c, err := s3blob.ParseURL(srv.URL(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	c.Creds = srv.Creds()
	c.PartSize = s3blob.MinPartSize
	s, err := s3blob.New(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return s, srv, bucket
}

// The S3 backend passes the same conformance suite as the filesystem one,
// against a real S3 server (versitygw).
func TestS3BlobStore(t *testing.T) {
	blobtest.TestBlobStore(t, func(t *testing.T) coffer.BlobStore {
		s, _, _ := newStore(t, "blobs")
		return s
	})
}

// Blobs larger than a part go up as a multipart upload while the writer is
// still writing, so memory stays at two parts whatever the size; nothing
// is visible until Commit, and the result reads back whole and by range.
func TestS3MultipartStreams(t *testing.T) {
	ctx := context.Background()
	s, srv, bucket := newStore(t, "")
	part := int(s.PartSize())
	data := make([]byte, 3*part+12345)
	rand.Read(data)
	key := coffer.NewBlobKey()
	w, err := s.Create(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := io.CopyBuffer(w, bytes.NewReader(data[:2*part+10]), make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	// Two parts filled: the first was sent, the second is being sent.
	// The server holds an upload in progress with at least one part.
	var uploadID string
	for u := range srv.Client().ListIncompleteUploads(ctx, bucket, s.Object(key), false) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		uploadID = u.UploadID
	}
	if uploadID == "" {
		t.Fatal("no multipart upload in progress after two parts were written: the writer buffers the blob")
	}
	core := minio.Core{Client: srv.Client()}
	parts, err := core.ListObjectParts(ctx, bucket, s.Object(key), uploadID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts.ObjectParts) == 0 {
		t.Fatal("no part sent after two parts were written")
	}
	if _, err := s.Open(ctx, key); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("Open before Commit: %v, want ENOTFOUND", err)
	}
	if _, err := w.Write(data[2*part+10:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := blobtest.MustRead(t, s, key); !bytes.Equal(got, data) {
		t.Fatal("multipart blob reads back different bytes")
	}
	b, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, off := range []int64{int64(part) - 1, int64(part), int64(2*part) + 7, int64(len(data)) - 3} {
		if _, err := b.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 3)
		if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, data[off:off+3]) {
			t.Fatalf("range at %d: %x, %v", off, got, err)
		}
	}
}

// Abort removes the parts already sent: no upload is left behind.
func TestS3AbortRemovesParts(t *testing.T) {
	ctx := context.Background()
	s, srv, bucket := newStore(t, "p")
	key := coffer.NewBlobKey()
	w, err := s.Create(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 2*s.PartSize()+1))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	for u := range srv.Client().ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		t.Fatalf("upload %s of %s left after Abort", u.UploadID, u.Key)
	}
}

// A blob opened and then replaced is an error on a later ranged read, never
// a mix of the old and new bytes.
func TestS3ReadAfterReplace(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t, "")
	key := coffer.NewBlobKey()
	blobtest.MustPut(t, s, key, bytes.Repeat([]byte("a"), 1000))
	b, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	blobtest.MustPut(t, s, key, bytes.Repeat([]byte("b"), 1000))
	b.Seek(500, io.SeekStart)
	got, err := io.ReadAll(b)
	if err == nil {
		t.Fatalf("read %q from a replaced blob without error", got[:min(len(got), 10)])
	}
}

// Walk sees only blob keys under its own prefix, and aborts multipart
// uploads that a crashed writer left behind once they are stale.
func TestS3WalkPrefixAndStaleUploads(t *testing.T) {
	ctx := context.Background()
	s, srv, bucket := newStore(t, "mine/blobs")
	c := srv.Client()
	mine := coffer.NewBlobKey()
	blobtest.MustPut(t, s, mine, []byte("x"))
	for _, name := range []string{"other/" + coffer.NewBlobKey(), "mine/blobs/README", "mine/" + coffer.NewBlobKey()} {
		if _, err := c.PutObject(ctx, bucket, name, strings.NewReader("y"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A writer that "crashed" after sending a part.
	w, err := s.Create(ctx, coffer.NewBlobKey())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, s.PartSize()+1))
	w = nil
	var seen []string
	walk := func() {
		seen = nil
		if err := s.Walk(ctx, func(k string, _ time.Time) error { seen = append(seen, k); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	incomplete := func() (n int) {
		for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			n++
		}
		return n
	}
	walk()
	if len(seen) != 1 || seen[0] != mine {
		t.Fatalf("Walk saw %v, want only [%s]", seen, mine)
	}
	// The part upload runs in the background; wait until the upload exists.
	for i := 0; incomplete() == 0; i++ {
		if i > 100 {
			t.Fatal("the crashed writer's upload never appeared")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := incomplete(); n != 1 {
		t.Fatalf("a fresh upload was aborted: %d left", n)
	}
	s.Now = func() time.Time { return time.Now().Add(s3blob.StaleUploadAge + time.Minute) }
	walk()
	if n := incomplete(); n != 0 {
		t.Fatalf("%d stale uploads left after Walk", n)
	}
}

// Credentials come from the standard AWS environment variables, or from
// the shared credentials file when the variables are unset.
func TestS3CredentialsChain(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	url := srv.URL(bucket, "x")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_ACCESS_KEY", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SECRET_KEY", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "coffer")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	if _, err := s3blob.Open(context.Background(), url); err == nil {
		t.Fatal("Open succeeded without credentials")
	}

	file := filepath.Join(t.TempDir(), "credentials")
	os.WriteFile(file, []byte("[coffer]\naws_access_key_id = "+srv.AccessKey+"\naws_secret_access_key = "+srv.SecretKey+"\n"), 0o600)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	s, err := s3blob.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("credentials file: %v", err)
	}
	blobtest.MustPut(t, s, coffer.NewBlobKey(), []byte("file"))

	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	srv.SetEnv(t)
	s, err = s3blob.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("environment: %v", err)
	}
	blobtest.MustPut(t, s, coffer.NewBlobKey(), []byte("env"))
}

func TestParseURL(t *testing.T) {
	c, err := s3blob.ParseURL("s3://bkt/a/b/?endpoint=http://127.0.0.1:9000&region=eu-west-1&part-size=16777216")
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "bkt" || c.Prefix != "a/b/" || c.Endpoint != "127.0.0.1:9000" || !c.Insecure || c.Region != "eu-west-1" || !c.PathStyle || c.PartSize != 16<<20 {
		t.Fatalf("parsed %+v", c)
	}
	c, err = s3blob.ParseURL("s3://bkt?region=us-east-2")
	if err != nil {
		t.Fatal(err)
	}
	if c.Prefix != "" || c.Endpoint != "" || c.Insecure || c.PathStyle {
		t.Fatalf("parsed %+v", c)
	}
	c, err = s3blob.ParseURL("s3://bkt/p?endpoint=s3.example.com&path-style=false")
	if err != nil || c.Insecure || c.PathStyle || c.Endpoint != "s3.example.com" {
		t.Fatalf("parsed %+v, %v", c, err)
	}
	for _, bad := range []string{
		"file:///tmp/x", "s3:///prefix", "s3://k:s@bkt/p", "s3://bkt/p?endpiont=x",
		"s3://bkt/p?part-size=big", "s3://bkt/p?endpoint=http://h/x", "s3://bkt?path-style=maybe",
	} {
		if _, err := s3blob.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) succeeded", bad)
		}
	}
}
