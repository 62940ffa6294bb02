package cofferd

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/cofferhq/coffer/fsblob"
)

// BlobGrace is how old an unreferenced blob must be before the sweep
// deletes it. A blob is committed a moment before the row that names it;
// an hour is far longer than that moment.
const BlobGrace = time.Hour

// setupBlobs opens the blob store: -blob-dir, or DATA/blobs in dev mode.
func (m *Main) setupBlobs() error {
	dir := m.Config.BlobDir
	if dir == "" {
		if !m.Config.Dev {
			return errors.New("no blob storage: set -blob-dir (COFFER_BLOB_DIR), or use -dev")
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

// Blobs returns the blob store (valid after Run), for operators' tools and
// tests that play a malicious server.
func (m *Main) Blobs() *fsblob.Store { return m.blobs }

// CollectGarbage removes uploads idle for longer than uploadAge with their
// blobs, then blobs that nothing references and that are older than
// blobGrace. cofferd runs it every -gc-interval with -upload-ttl and
// BlobGrace; tests call it with zero durations.
func (m *Main) CollectGarbage(ctx context.Context, uploadAge, blobGrace time.Duration) error {
	uploads, err := m.db.CollectUploads(ctx, m.blobs, uploadAge)
	if err != nil {
		return err
	}
	blobs, err := m.db.SweepBlobs(ctx, m.blobs, blobGrace)
	if err != nil {
		return err
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
