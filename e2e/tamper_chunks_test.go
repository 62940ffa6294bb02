package e2e_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
	"golang.org/x/crypto/chacha20poly1305"
)

// These tests tamper with single chunks of a stored resource blob (the age
// file, then its chunk hash list) under a running cofferd. Each read must
// stop at the chunk concerned with a security error naming it, after
// exactly the plaintext of the chunks before it.

const (
	ptChunk  = 64 << 10
	encChunk = 64<<10 + 16
)

// chunkBlob is a stored blob split into its parts.
type chunkBlob struct {
	path string
	blob []byte
	hdr  int // offset of chunk 0
	size int // age file size
}

func (f *resourceTamper) chunkBlob(t *testing.T, id coffer.ResourceID, ageSize int64) *chunkBlob {
	t.Helper()
	p := f.blobPath(t, id)
	blob, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	hdr := bytes.Index(blob, []byte("\n---")) + 1
	hdr += bytes.IndexByte(blob[hdr:], '\n') + 1 + 16
	return &chunkBlob{path: p, blob: blob, hdr: hdr, size: int(ageSize)}
}

func (b *chunkBlob) chunk(i int) []byte {
	return b.blob[b.hdr+i*encChunk : min(b.hdr+(i+1)*encChunk, b.size)]
}

func (b *chunkBlob) leaf(i int) []byte { return b.blob[b.size+32*i : b.size+32*(i+1)] }

func (b *chunkBlob) store(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(b.path, b.blob, 0o600); err != nil {
		t.Fatal(err)
	}
}

// wantStoppedAt reads id as c and requires a security error naming chunk
// (-1: refused before any chunk, at the chunk hash list or age header) with
// exactly the plaintext before it delivered.
func wantStoppedAt(t *testing.T, c *clientlib.Client, g coffer.GroupID, id coffer.ResourceID, data []byte, chunk int, kind error) {
	t.Helper()
	got, err := readResource(c, g, id)
	wantSecurity(t, err)
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want %v", err, kind)
	}
	if chunk >= 0 {
		var ce *content.ChunkError
		if !errors.As(err, &ce) || ce.Chunk != int64(chunk) {
			t.Fatalf("got %v, want chunk %d named", err, chunk)
		}
	}
	if want := data[:max(0, chunk)*ptChunk]; !bytes.Equal(got, want) {
		t.Fatalf("the caller received %d bytes, want exactly the %d before chunk %d", len(got), len(want), chunk)
	}
}

// newChunkTamper stores two resources of 5 chunks each.
func newChunkTamper(t *testing.T) *resourceTamper {
	t.Helper()
	f := &resourceTamper{tamperFixture: newTamperFixture(t)}
	f.dataA, f.dataB = randomContent(t, 4*ptChunk+1234), randomContent(t, 4*ptChunk+1234)
	f.a = mustPut(t, f.bob, f.g, "a.bin", f.dataA)
	f.b = mustPut(t, f.bob, f.g, "b.bin", f.dataB)
	return f
}

func TestTamperChunkSwapped(t *testing.T) {
	f := newChunkTamper(t)
	b := f.chunkBlob(t, f.a.ID, f.a.ContentSize)
	c1, c2 := bytes.Clone(b.chunk(1)), bytes.Clone(b.chunk(2))
	copy(b.chunk(1), c2)
	copy(b.chunk(2), c1)
	b.store(t)
	wantStoppedAt(t, f.alice, f.g, f.a.ID, f.dataA, 1, content.ErrTampered)
}

func TestTamperChunkFromAnotherResource(t *testing.T) {
	f := newChunkTamper(t)
	a := f.chunkBlob(t, f.a.ID, f.a.ContentSize)
	other := f.chunkBlob(t, f.b.ID, f.b.ContentSize)
	copy(a.chunk(3), other.chunk(3))
	a.store(t)
	wantStoppedAt(t, f.carol, f.g, f.a.ID, f.dataA, 3, content.ErrTampered)
}

// Chunk 3 moved to position 1, chunks 1 and 2 shifted after it.
func TestTamperChunkReordered(t *testing.T) {
	f := newChunkTamper(t)
	b := f.chunkBlob(t, f.a.ID, f.a.ContentSize)
	c1, c2, c3 := bytes.Clone(b.chunk(1)), bytes.Clone(b.chunk(2)), bytes.Clone(b.chunk(3))
	copy(b.chunk(1), c3)
	copy(b.chunk(2), c1)
	copy(b.chunk(3), c2)
	b.store(t)
	wantStoppedAt(t, f.alice, f.g, f.a.ID, f.dataA, 1, content.ErrTampered)
}

// The final chunk replaced by a non-final one of the same resource: same
// key, same length class, refused by the tree and the last-chunk flag.
func TestTamperChunkFinalReplaced(t *testing.T) {
	f := newChunkTamper(t)
	b := f.chunkBlob(t, f.a.ID, f.a.ContentSize)
	last := b.chunk(4)
	copy(last, b.chunk(0)[:len(last)])
	b.store(t)
	wantStoppedAt(t, f.alice, f.g, f.a.ID, f.dataA, 4, content.ErrTampered)
}

// Forged tree nodes: leaves of the stored list changed, alone or together
// with the chunk they describe. The list no longer proves against the
// signed root, so nothing is released.
func TestTamperChunkForgedTreeNode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(a, other *chunkBlob)
	}{
		{"flipped leaf", func(a, _ *chunkBlob) { a.leaf(2)[7] ^= 1 }},
		{"leaf and chunk from another resource", func(a, other *chunkBlob) {
			copy(a.chunk(2), other.chunk(2))
			copy(a.leaf(3), other.leaf(3)) // leaf 1+i is chunk i's
		}},
		{"header leaf", func(a, _ *chunkBlob) { a.leaf(0)[0] ^= 0x80 }},
		{"leaves swapped with their chunks", func(a, _ *chunkBlob) {
			c1, c2 := bytes.Clone(a.chunk(1)), bytes.Clone(a.chunk(2))
			copy(a.chunk(1), c2)
			copy(a.chunk(2), c1)
			l2, l3 := bytes.Clone(a.leaf(2)), bytes.Clone(a.leaf(3))
			copy(a.leaf(2), l3)
			copy(a.leaf(3), l2)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newChunkTamper(t)
			a := f.chunkBlob(t, f.a.ID, f.a.ContentSize)
			tc.mangle(a, f.chunkBlob(t, f.b.ID, f.b.ContentSize))
			a.store(t)
			wantStoppedAt(t, f.alice, f.g, f.a.ID, f.dataA, -1, content.ErrChunkHashes)
		})
	}
}

// A list extended or cut by a leaf, with the blob's age file intact.
func TestTamperChunkListLength(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(b *chunkBlob) []byte
	}{
		{"extended", func(b *chunkBlob) []byte { return append(bytes.Clone(b.blob), b.leaf(4)...) }},
		{"truncated", func(b *chunkBlob) []byte { return b.blob[:len(b.blob)-32] }},
		{"list removed", func(b *chunkBlob) []byte { return b.blob[:b.size] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newChunkTamper(t)
			b := f.chunkBlob(t, f.a.ID, f.a.ContentSize)
			b.blob = tc.mangle(b)
			b.store(t)
			wantStoppedAt(t, f.alice, f.g, f.a.ID, f.dataA, -1, content.ErrChunkHashes)
		})
	}
}

// A truncated stream: a proxy serves the list honestly but cuts the age
// file's response short, at several points.
func TestTamperChunkTruncatedStream(t *testing.T) {
	f := newChunkTamper(t)
	b := f.chunkBlob(t, f.a.ID, f.a.ContentSize)
	for _, tc := range []struct {
		name  string
		keep  int
		chunk int
	}{
		{"in the header", b.hdr / 2, -1},
		{"after chunk 0", b.hdr + encChunk, 1},
		{"inside chunk 2", b.hdr + 2*encChunk + 100, 2},
		{"last byte", b.size - 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxyURL := lyingProxy(t, f.srv, func(r *http.Request, body []byte) []byte {
				if strings.HasSuffix(r.URL.Path, "/content") && strings.HasPrefix(r.Header.Get("Range"), "bytes=0-") {
					return body[:min(len(body), tc.keep)]
				}
				return body
			})
			viaProxy, err := clientlib.New(proxyURL, f.carolKS, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantStoppedAt(t, viaProxy, f.g, f.a.ID, f.dataA, tc.chunk, content.ErrTruncated)
		})
	}
	// The honest stream through the same kind of proxy reads whole.
	proxyURL := lyingProxy(t, f.srv, func(_ *http.Request, body []byte) []byte { return body })
	viaProxy, err := clientlib.New(proxyURL, f.carolKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readResource(viaProxy, f.g, f.a.ID)
	if err != nil || !bytes.Equal(got, f.dataA) {
		t.Fatalf("honest read through the proxy: %d bytes, %v", len(got), err)
	}
}

// An insider forgery: carol (a reader) holds the epoch key, unwraps the file
// key of bob's resource from its stored age header and seals chunk 2 anew
// with it. age alone would accept the forged chunk; the chunk tree bob
// signed refuses it before any of its plaintext reaches the reader.
func TestTamperChunkForgedByInsider(t *testing.T) {
	f := newChunkTamper(t)
	b := f.chunkBlob(t, f.a.ID, f.a.ContentSize)
	k := f.epochKeyOf(t, f.carolKS, f.carol.AccountID())
	fileKey, err := content.AuditFileKey(bytes.NewReader(b.blob), []groupkey.EpochKey{k})
	if err != nil {
		t.Fatal(err)
	}
	payloadKey, err := hkdf.Key(sha256.New, fileKey, b.blob[b.hdr-16:b.hdr], "payload", chacha20poly1305.KeySize)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := chacha20poly1305.New(payloadKey)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSize)
	nonce[10] = 2 // chunk counter 2, not the last chunk
	forged := aead.Seal(nil, nonce, bytes.Repeat([]byte("pay carol "), ptChunk/10+1)[:ptChunk], nil)
	copy(b.chunk(2), forged)
	b.store(t)
	wantStoppedAt(t, f.alice, f.g, f.a.ID, f.dataA, 2, content.ErrTampered)
	_, err = readResource(f.alice, f.g, f.a.ID)
	if !strings.Contains(err.Error(), "signed chunk tree") {
		t.Fatalf("got %v, want the tree to refuse the chunk", err)
	}
}
