package coffer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"time"
)

// BlobStore holds the bytes of resources: age ciphertext that only members
// can decrypt, each under a key the server made up. PostgreSQL holds the
// rows that say which blob belongs to which resource; a BlobStore knows
// nothing about resources, groups or accounts.
//
// Who calls it: the server streams an upload into Create and a download out
// of Open; the store's collector (store.DB.CollectUploads, SweepBlobs) walks
// and deletes. Clients never see blob keys.
//
// The filesystem backend (package fsblob) is the default. An S3-compatible
// backend implements the same interface and must pass the same conformance
// suite (package blobtest).
//
// Errors: Open and Delete of a key that does not exist return an *Error with
// code ENOTFOUND (Delete of a missing key is not an error: it returns nil,
// so that the collector and a racing delete can both succeed). A malformed
// key is EINVALID. Anything else is an internal I/O error.
type BlobStore interface {
	// Create starts writing the blob key. The blob does not exist, for Open
	// and Walk, until Commit returns nil.
	Create(ctx context.Context, key string) (BlobWriter, error)
	// Open returns the committed blob key for reading.
	Open(ctx context.Context, key string) (Blob, error)
	// Delete removes a committed blob. It returns nil if there is none.
	Delete(ctx context.Context, key string) error
	// Walk calls fn for every committed blob, in no particular order, with
	// the time it was committed (or last modified). An error from fn stops
	// the walk and is returned. Blobs created or deleted during the walk may
	// or may not be seen.
	Walk(ctx context.Context, fn func(key string, modTime time.Time) error) error
}

// BlobWriter receives the bytes of a new blob.
type BlobWriter interface {
	io.Writer
	// Commit makes the blob durable and visible under its key: after it
	// returns nil, a crash does not lose the blob. It replaces a blob with
	// the same key. A BlobWriter is finished after Commit, even on error.
	Commit() error
	// Abort discards everything written. It is safe to call after Commit,
	// where it does nothing, so `defer w.Abort()` is the idiom.
	Abort() error
}

// Blob is a committed blob opened for reading. Seek lets the server answer
// HTTP Range requests.
type Blob interface {
	io.ReadSeekCloser
	// Size is the blob's length in bytes.
	Size() int64
}

// blobKeyLen is the length of a blob key: 128 random bits in hex.
const blobKeyLen = 32

// NewBlobKey returns a fresh random blob key: 32 lowercase hex digits. The
// server makes every key; a client-supplied name never becomes a key, so no
// request can name a path, and two uploads never share a blob.
func NewBlobKey() string {
	var b [blobKeyLen / 2]byte
	rand.Read(b[:]) // crypto/rand.Read never fails and never returns short.
	return hex.EncodeToString(b[:])
}

// ValidBlobKey reports whether key has the form NewBlobKey produces.
// Backends check it before touching storage.
func ValidBlobKey(key string) bool {
	if len(key) != blobKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
