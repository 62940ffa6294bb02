package cofferd

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/fsblob"
	"github.com/cofferhq/coffer/internal/s3test"
	"github.com/cofferhq/coffer/s3blob"
)

// -blob-url selects the blob store: S3 (credentials from the AWS
// environment) or a directory; -blob-dir still works, and the two together
// or a URL of another kind are refused.
func TestBlobURLSelectsStore(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	srv.SetEnv(t)

	m := &Main{Config: Config{BlobURL: srv.URL(bucket, "p")}}
	if err := m.setupBlobs(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.BlobStore().(*s3blob.Store); !ok || m.Blobs() != nil {
		t.Fatalf("s3:// gave %T", m.BlobStore())
	}

	dir := t.TempDir()
	m = &Main{Config: Config{BlobURL: "file://" + dir}}
	if err := m.setupBlobs(ctx); err != nil {
		t.Fatal(err)
	}
	if fs, ok := m.BlobStore().(*fsblob.Store); !ok || fs.Dir() != dir {
		t.Fatalf("file:// gave %T", m.BlobStore())
	}

	m = &Main{Config: Config{BlobDir: filepath.Join(dir, "d")}}
	if err := m.setupBlobs(ctx); err != nil || m.Blobs() == nil {
		t.Fatalf("-blob-dir: %v", err)
	}

	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{BlobURL: "file://" + dir, BlobDir: dir}, "not both"},
		{Config{BlobURL: "gs://bucket/x"}, "want s3://"},
		{Config{BlobURL: "file://host/dir"}, "file:///"},
		{Config{BlobURL: "s3://no-such-bucket-here/p?endpoint=http://" + srv.Endpoint}, "does not exist"},
		{Config{}, "no blob storage"},
	} {
		m := &Main{Config: c.cfg}
		if err := m.setupBlobs(ctx); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
}
