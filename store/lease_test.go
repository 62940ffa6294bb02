package store_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/blobtest"
)

// An upload whose content a replica is writing is neither collected nor
// loses its blob, however short the collector's TTL and grace, until the
// lease lapses; then both go.
func TestUploadLeaseSparesUploadInProgress(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
	if err := f.db.CreateUpload(ctx, f.writer, u, 100); err != nil {
		t.Fatal(err)
	}
	key := coffer.NewBlobKey()
	if err := f.db.LeaseUpload(ctx, f.writer2, u.ID, key, time.Minute); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("another writer leased the upload: %v", err)
	}
	if err := f.db.LeaseUpload(ctx, f.writer, u.ID, key, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The blob is committed, its row not yet written: the moment a sweep
	// with no grace would take it.
	blobtest.MustPut(t, f.blobs, key, []byte("being written"))
	f.db.Now = func() time.Time { return time.Now().Add(30 * time.Second) }
	if n, err := f.db.CollectUploads(ctx, f.blobs, 0); err != nil || n != 0 {
		t.Fatalf("collected %d leased uploads (%v)", n, err)
	}
	if n, err := f.db.SweepBlobs(ctx, f.blobs, 0); err != nil || n != 0 {
		t.Fatalf("swept %d blobs, one of them being written (%v)", n, err)
	}
	if _, err := f.db.Upload(ctx, f.writer, u.ID); err != nil {
		t.Fatalf("the leased upload is gone: %v", err)
	}

	// The writer crashed: the lease lapses, and the collector takes the
	// upload and the blob it named.
	f.db.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if n, err := f.db.CollectUploads(ctx, f.blobs, time.Second); err != nil || n != 1 {
		t.Fatalf("collected %d uploads after the lease lapsed (%v), want 1", n, err)
	}
	if _, err := os.Stat(f.blobs.Path(key)); !os.IsNotExist(err) {
		t.Fatalf("the crashed writer's blob survived: %v", err)
	}
}

// SetUploadContent ends the lease: the upload is then idle from that
// moment, like any other.
func TestUploadLeaseEndsWithContent(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
	if err := f.db.CreateUpload(ctx, f.writer, u, 100); err != nil {
		t.Fatal(err)
	}
	key := coffer.NewBlobKey()
	if err := f.db.LeaseUpload(ctx, f.writer, u.ID, key, time.Hour); err != nil {
		t.Fatal(err)
	}
	blobtest.MustPut(t, f.blobs, key, []byte("done"))
	if _, err := f.db.SetUploadContent(ctx, f.writer, u.ID, key, 4, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	f.db.Now = func() time.Time { return time.Now().Add(time.Minute) }
	if n, err := f.db.CollectUploads(ctx, f.blobs, time.Second); err != nil || n != 1 {
		t.Fatalf("collected %d idle uploads (%v), want 1: the lease outlived the write", n, err)
	}
}

// A failed write releases its lease, and only its own: a later attempt's
// lease on the same upload stays.
func TestUploadLeaseRelease(t *testing.T) {
	ctx := context.Background()
	f := newResourceFixture(t)
	u := &coffer.Upload{ID: coffer.NewUploadID(), Resource: coffer.NewResourceID(), Group: f.g, Version: 1}
	if err := f.db.CreateUpload(ctx, f.writer, u, 100); err != nil {
		t.Fatal(err)
	}
	first, second := coffer.NewBlobKey(), coffer.NewBlobKey()
	if err := f.db.LeaseUpload(ctx, f.writer, u.ID, first, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := f.db.LeaseUpload(ctx, f.writer, u.ID, second, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := f.db.ReleaseUpload(ctx, f.writer, u.ID, first); err != nil {
		t.Fatal(err)
	}
	f.db.Now = func() time.Time { return time.Now().Add(time.Minute) }
	if n, err := f.db.CollectUploads(ctx, f.blobs, time.Second); err != nil || n != 0 {
		t.Fatalf("collected %d uploads (%v): an old attempt released the current one's lease", n, err)
	}
	if err := f.db.ReleaseUpload(ctx, f.writer, u.ID, second); err != nil {
		t.Fatal(err)
	}
	if n, err := f.db.CollectUploads(ctx, f.blobs, time.Second); err != nil || n != 1 {
		t.Fatalf("collected %d uploads after the release (%v), want 1", n, err)
	}
}
