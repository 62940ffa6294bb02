package cofferd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/fsblob"
	"github.com/cofferhq/coffer/s3blob"
)

// BlobGrace is how old an unreferenced blob must be before the sweep
// deletes it. A blob is committed a moment before the row that names it;
// an hour is far longer than that moment.
const BlobGrace = time.Hour

// authPurgeGrace keeps expired challenges and refresh tokens, and revoked
// ones, this long before the collector deletes them (store.PurgeAuth).
const authPurgeGrace = time.Hour

// setupBlobs opens the blob store: -blob-url, -blob-dir, or DATA/blobs in
// dev mode.
func (m *Main) setupBlobs(ctx context.Context) error {
	if m.Config.BlobURL != "" && m.Config.BlobDir != "" {
		return errors.New("set one of -blob-url and -blob-dir, not both")
	}
	if m.Config.BlobURL != "" {
		b, err := openBlobURL(ctx, m.Config.BlobURL)
		if err != nil {
			return err
		}
		m.blobs = b
		return nil
	}
	dir := m.Config.BlobDir
	if dir == "" {
		if !m.Config.Dev {
			return errors.New("no blob storage: set -blob-url (COFFER_BLOB_URL) or -blob-dir (COFFER_BLOB_DIR), or use -dev")
		}
		dir = filepath.Join(m.DataDir(), "blobs")
	}
	b, err := fsblob.New(dir)
	if err != nil {
		return err
	}
	m.blobs = b
	return nil
}

// openBlobURL opens s3://BUCKET/PREFIX?... (package s3blob) or
// file:///DIR (package fsblob).
func openBlobURL(ctx context.Context, raw string) (coffer.BlobStore, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	switch {
	case ok && scheme == "s3":
		return s3blob.Open(ctx, raw)
	case ok && scheme == "file":
		u, err := url.Parse(raw)
		if err != nil || u.Host != "" && u.Host != "localhost" || u.Path == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("-blob-url %q: want file:///ABSOLUTE/DIR", raw)
		}
		return fsblob.New(u.Path)
	default:
		return nil, fmt.Errorf("-blob-url %q: want s3://BUCKET/PREFIX?endpoint=HOST:PORT&region=R or file:///DIR", raw)
	}
}

// Blobs returns the filesystem blob store (valid after Run; nil when the
// blobs are elsewhere), for operators' tools and tests that play a
// malicious server.
func (m *Main) Blobs() *fsblob.Store {
	fs, _ := m.blobs.(*fsblob.Store)
	return fs
}

// BlobStore returns the blob store, whatever its backend (valid after Run).
func (m *Main) BlobStore() coffer.BlobStore { return m.blobs }

// CollectGarbage removes uploads idle for longer than uploadAge with their
// blobs, then blobs that nothing references and that are older than
// blobGrace. cofferd runs it every -gc-interval with -upload-ttl and
// BlobGrace; tests call it with zero durations. It also purges dead
// authentication rows (store.PurgeAuth).
func (m *Main) CollectGarbage(ctx context.Context, uploadAge, blobGrace time.Duration) error {
	uploads, err := m.db.CollectUploads(ctx, m.blobs, uploadAge)
	if err != nil {
		return err
	}
	blobs, err := m.db.SweepBlobs(ctx, m.blobs, blobGrace)
	if err != nil {
		return err
	}
	challenges, tokens, err := m.db.PurgeAuth(ctx, authPurgeGrace)
	if err != nil {
		return err
	}
	if m.gc != nil {
		m.gc.uploads.Add(float64(uploads))
		m.gc.blobs.Add(float64(blobs))
	}
	if challenges > 0 || tokens > 0 {
		m.logger.Info("purged authentication rows", "challenges", challenges, "refresh_tokens", tokens)
	}
	if uploads > 0 || blobs > 0 {
		m.logger.Info("collected garbage", "uploads", uploads, "orphan_blobs", blobs)
	}
	return nil
}

// startCollector runs CollectGarbage every -gc-interval until Close.
func (m *Main) startCollector() {
	if m.Config.GCInterval <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.stopGC = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		t := time.NewTicker(m.Config.GCInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := m.CollectGarbage(ctx, m.Config.UploadTTL, BlobGrace); err != nil && ctx.Err() == nil {
					m.logger.Warn("garbage collection failed", "err", err)
				}
			}
		}
	}()
}
