package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// These tests play a malicious server against resources: they change rows
// and blob files under a running cofferd and require clientlib to refuse
// with a *coffer.SecurityError, without handing out a byte that was not
// what the author signed.

type resourceTamper struct {
	*tamperFixture
	a, b         *clientlib.Resource
	dataA, dataB []byte
}

// newResourceTamper: bob (writer) uploads two resources of several age
// chunks each, and alice has read both.
func newResourceTamper(t *testing.T) *resourceTamper {
	t.Helper()
	f := &resourceTamper{tamperFixture: newTamperFixture(t)}
	f.dataA, f.dataB = randomContent(t, 150_000), randomContent(t, 160_000)
	f.a = mustPut(t, f.bob, f.g, "a.bin", f.dataA)
	f.b = mustPut(t, f.bob, f.g, "b.bin", f.dataB)
	mustReadResource(t, f.alice, f.g, f.a.ID)
	mustReadResource(t, f.alice, f.g, f.b.ID)
	return f
}

func (f *resourceTamper) blobKey(t *testing.T, id coffer.ResourceID) string {
	t.Helper()
	var k string
	if err := f.db.QueryRow(context.Background(), `SELECT blob_key FROM resources WHERE id = $1`, id).Scan(&k); err != nil {
		t.Fatal(err)
	}
	return k
}

func (f *resourceTamper) blobPath(t *testing.T, id coffer.ResourceID) string {
	return f.srv.Blobs().Path(f.blobKey(t, id))
}

// swapColumns exchanges columns between the rows of resources a and b.
func (f *resourceTamper) swapColumns(t *testing.T, cols ...string) {
	t.Helper()
	for _, c := range cols {
		if c == "blob_key" {
			// Unique: move one out of the way first.
			keyA, keyB := f.blobKey(t, f.a.ID), f.blobKey(t, f.b.ID)
			mustExec(t, f.db, `UPDATE resources SET blob_key = $2 WHERE id = $1`, f.a.ID, coffer.NewBlobKey())
			mustExec(t, f.db, `UPDATE resources SET blob_key = $2 WHERE id = $1`, f.b.ID, keyA)
			mustExec(t, f.db, `UPDATE resources SET blob_key = $2 WHERE id = $1`, f.a.ID, keyB)
			continue
		}
		q := `UPDATE resources r SET ` + c + ` = o.` + c + ` FROM resources o
			WHERE (r.id, o.id) IN (($1::uuid, $2::uuid), ($2::uuid, $1::uuid))`
		mustExec(t, f.db, q, f.a.ID, f.b.ID)
	}
}

// wantRefused requires that reading id fails with a security error and
// returns no byte that differs from want (the author's plaintext).
func wantRefused(t *testing.T, c *clientlib.Client, g coffer.GroupID, id coffer.ResourceID, want []byte) {
	t.Helper()
	got, err := readResource(c, g, id)
	wantSecurity(t, err)
	t.Logf("refused: %v", err)
	if !bytes.HasPrefix(want, got) {
		t.Fatalf("before refusing, the reader returned %d bytes that are not the author's", len(got))
	}
}

func TestTamperResourceSwappedBlobKeys(t *testing.T) {
	f := newResourceTamper(t)
	f.swapColumns(t, "blob_key")
	wantRefused(t, f.alice, f.g, f.a.ID, f.dataA)
	wantRefused(t, f.carol, f.g, f.b.ID, f.dataB)
}

// The same swap done thoroughly: blob, size and hash columns move together,
// so the rows look consistent; the signed header still disagrees.
func TestTamperResourceSwappedContentAndHashes(t *testing.T) {
	f := newResourceTamper(t)
	f.swapColumns(t, "blob_key", "size", "content_hash")
	wantRefused(t, f.alice, f.g, f.a.ID, f.dataA)
}

func TestTamperResourceSwappedBlobFiles(t *testing.T) {
	f := newResourceTamper(t)
	pa, pb := f.blobPath(t, f.a.ID), f.blobPath(t, f.b.ID)
	tmp := pa + ".swap"
	for _, mv := range [][2]string{{pa, tmp}, {pb, pa}, {tmp, pb}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	wantRefused(t, f.alice, f.g, f.a.ID, f.dataA)
	wantRefused(t, f.carol, f.g, f.b.ID, f.dataB)
}

func TestTamperResourceSwappedHeaders(t *testing.T) {
	f := newResourceTamper(t)
	f.swapColumns(t, "header", "header_signature")
	_, err := f.alice.Head(context.Background(), f.g, f.a.ID)
	wantSecurity(t, err)
	wantRefused(t, f.carol, f.g, f.a.ID, f.dataA)
	_, err = f.alice.List(context.Background(), f.g)
	wantSecurity(t, err)
}

// Everything of b served under a's id: a valid resource, but not the one
// asked for.
func TestTamperResourceWholeRowMoved(t *testing.T) {
	f := newResourceTamper(t)
	f.swapColumns(t, "header", "header_signature", "meta", "blob_key", "size", "content_hash")
	wantRefused(t, f.alice, f.g, f.a.ID, f.dataA)
}

func TestTamperResourceSwappedMetadata(t *testing.T) {
	f := newResourceTamper(t)
	f.swapColumns(t, "meta")
	_, err := f.alice.Head(context.Background(), f.g, f.a.ID)
	wantSecurity(t, err)
	_, err = f.carol.List(context.Background(), f.g)
	wantSecurity(t, err)
	wantRefused(t, f.alice, f.g, f.b.ID, f.dataB)
}

func TestTamperResourceTruncated(t *testing.T) {
	for _, cut := range []struct {
		name string
		keep func(size int64) int64
	}{
		{"last byte", func(n int64) int64 { return n - 1 }},
		{"last chunk", func(n int64) int64 { return n - (n-200)%(64<<10+16) }},
		{"mid-file", func(n int64) int64 { return n / 2 }},
		{"all", func(int64) int64 { return 0 }},
	} {
		t.Run(cut.name, func(t *testing.T) {
			f := newResourceTamper(t)
			p := f.blobPath(t, f.a.ID)
			if err := os.Truncate(p, cut.keep(f.a.ContentSize)); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, f.alice, f.g, f.a.ID, f.dataA)
		})
	}
}

// A flipped byte in the second chunk: the reader returns the first chunk,
// which authenticated, then refuses; never a byte of the broken chunk.
func TestTamperResourceFlippedByte(t *testing.T) {
	f := newResourceTamper(t)
	p := f.blobPath(t, f.a.ID)
	blob, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The payload follows the age header's "---" line and a 16-byte nonce;
	// each chunk is 64 KiB of ciphertext and a 16-byte tag.
	hdrEnd := bytes.Index(blob, []byte("\n---")) + 1
	hdrEnd += bytes.IndexByte(blob[hdrEnd:], '\n') + 1
	at := hdrEnd + 16 + (64<<10 + 16) + 1000 // inside the second chunk
	blob[at] ^= 0x40
	if err := os.WriteFile(p, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	rr, err := f.alice.Get(context.Background(), f.g, f.a.ID)
	if err != nil {
		t.Fatal(err) // the header and the first chunk are intact
	}
	defer rr.Close()
	got, err := io.ReadAll(rr)
	wantSecurity(t, err)
	if !bytes.Equal(got, f.dataA[:64<<10]) {
		t.Fatalf("returned %d bytes before refusing; want exactly the first, intact chunk", len(got))
	}
	var ce *content.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != 1 {
		t.Fatalf("got %v, want chunk 1 named", err)
	}
}

// The previous version's blob served under the current header: a valid age
// file for this very resource, group and epoch, so only the signed chunk
// tree catches it, before any plaintext.
func TestTamperResourceOldContentUnderNewHeader(t *testing.T) {
	ctx := context.Background()
	f := newResourceTamper(t)
	oldBlob, err := os.ReadFile(f.blobPath(t, f.a.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.bob.Replace(ctx, f.g, f.a.ID, 1, bytes.NewReader(randomContent(t, 150_000)), clientlib.Meta{Name: "a.bin", Size: 150_000}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.blobPath(t, f.a.ID), oldBlob, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = f.alice.Get(ctx, f.g, f.a.ID)
	wantSecurity(t, err)
	if !errors.Is(err, content.ErrChunkHashes) {
		t.Fatalf("want the chunk hash list refused, got %v", err)
	}
}

// injected stores a resource directly in the database and blob store, as a
// malicious server would, with a header signed by key for author.
func (f *resourceTamper) inject(t *testing.T, author coffer.AccountID, key ed25519.PrivateKey, epochKey groupkey.EpochKey) coffer.ResourceID {
	t.Helper()
	ctx := context.Background()
	id, version, epoch := coffer.NewResourceID(), uint64(1), uint64(1)
	var ct bytes.Buffer
	w, err := content.Encrypt(&ct, epochKey, f.g, epoch, id)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("an injected resource"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	root, chunks, size := w.Sum()
	hash := sha256.Sum256(ct.Bytes())
	meta := groupkey.SealMetadata(epochKey, f.g, epoch, coffer.LabelResourceMeta,
		binary.BigEndian.AppendUint64(append([]byte(nil), id[:]...), version), []byte(`{"name":"invoice.pdf","size":20}`))
	sh := coffer.SignResourceHeader(&coffer.ResourceHeader{Resource: id, Group: f.g, Epoch: epoch, Author: author,
		Version: version, TreeRoot: root, Chunks: chunks, ContentSize: size, MetaHash: sha256.Sum256(meta), Created: time.Now().UnixMilli()}, key)
	blobKey := coffer.NewBlobKey()
	bw, err := f.srv.Blobs().Create(ctx, blobKey)
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(ct.Bytes())
	if err := bw.Commit(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.db, `INSERT INTO resources (id, group_id, version, author_id, epoch, header, header_signature,
		meta, content_hash, size, blob_key, created_at, updated_at)
		VALUES ($1, $2, 1, $3, 1, $4, $5, $6, $7, $8, $9, now(), now())`,
		id, f.g, author, sh.Body, sh.Signature, meta, hash[:], ct.Len(), blobKey)
	return id
}

// epochKeyOf recovers a member's epoch-1 key from their key store and the
// database, as that member (an insider) could.
func (f *resourceTamper) epochKeyOf(t *testing.T, ks *clientlib.MemoryKeyStore, member coffer.AccountID) groupkey.EpochKey {
	t.Helper()
	var wrap []byte
	if err := f.db.QueryRow(context.Background(), `SELECT wrap FROM wrapped_keys WHERE group_id = $1 AND member_id = $2 AND epoch = 1`,
		f.g, member).Scan(&wrap); err != nil {
		t.Fatal(err)
	}
	k, err := groupkey.Unwrap(decryptionKeyOf(t, ks), f.g, 1, member, wrap)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A reader (carol) knows the epoch key and can make a perfect age file, but
// her role does not let her write: readers refuse her resource.
func TestTamperResourceInjectedByReader(t *testing.T) {
	f := newResourceTamper(t)
	id := f.inject(t, f.carol.AccountID(), signingKeyOf(t, f.carolKS), f.epochKeyOf(t, f.carolKS, f.carol.AccountID()))
	_, err := readResource(f.alice, f.g, id)
	wantSecurity(t, err)
	_, err = f.alice.List(context.Background(), f.g)
	wantSecurity(t, err)
}

// Someone outside the group signs: the author is not in the log at all.
func TestTamperResourceInjectedByNonMember(t *testing.T) {
	f := newResourceTamper(t)
	eve, eveKS := newClient(t, f.srv, "eve", nil)
	// The server can hand the injector the epoch key only if it has it;
	// give eve alice's, the strongest case.
	id := f.inject(t, eve.AccountID(), signingKeyOf(t, eveKS), f.epochKeyOf(t, f.aliceKS, f.alice.AccountID()))
	_, err := readResource(f.carol, f.g, id)
	wantSecurity(t, err)
	// The same, claiming to be bob: the signature is not bob's.
	forged := f.inject(t, f.bob.AccountID(), signingKeyOf(t, eveKS), f.epochKeyOf(t, f.aliceKS, f.alice.AccountID()))
	_, err = readResource(f.carol, f.g, forged)
	wantSecurity(t, err)
}

// An older version restored after a reader saw a newer one: the row and
// blob of version 1, exactly as they were, after Replace made version 2.
func TestTamperResourceReplayedOldVersion(t *testing.T) {
	ctx := context.Background()
	f := newResourceTamper(t)
	type row struct {
		version                 int64
		author                  coffer.AccountID
		epoch                   int64
		header, sig, meta, hash []byte
		size                    int64
		blobKey                 string
	}
	var old row
	if err := f.db.QueryRow(ctx, `SELECT version, author_id, epoch, header, header_signature, meta, content_hash, size, blob_key
		FROM resources WHERE id = $1`, f.a.ID).Scan(&old.version, &old.author, &old.epoch, &old.header, &old.sig,
		&old.meta, &old.hash, &old.size, &old.blobKey); err != nil {
		t.Fatal(err)
	}
	oldBlob, err := os.ReadFile(f.srv.Blobs().Path(old.blobKey))
	if err != nil {
		t.Fatal(err)
	}
	newer := []byte("version two")
	if _, err := f.bob.Replace(ctx, f.g, f.a.ID, 1, bytes.NewReader(newer), clientlib.Meta{Name: "a.bin"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustReadResource(t, f.alice, f.g, f.a.ID); !bytes.Equal(got, newer) {
		t.Fatal("alice did not see version 2")
	}

	// Roll back: the old blob file and the old row.
	if err := os.WriteFile(f.srv.Blobs().Path(old.blobKey), oldBlob, 0o600); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.db, `UPDATE resources SET version = $2, author_id = $3, epoch = $4, header = $5, header_signature = $6,
		meta = $7, content_hash = $8, size = $9, blob_key = $10, content = NULL WHERE id = $1`,
		f.a.ID, old.version, old.author, old.epoch, old.header, old.sig, old.meta, old.hash, old.size, old.blobKey)

	// carol never saw version 2, but the log holds it: she does not take
	// version 1 for the current one.
	if _, err := readResource(f.carol, f.g, f.a.ID); coffer.ErrorCode(err) != coffer.EPRECONDITION {
		t.Fatalf("carol reads the replaced version 1: %v, want precondition (the log holds version 2)", err)
	}
	// alice did, and refuses, in Get, Head and List.
	_, err = readResource(f.alice, f.g, f.a.ID)
	wantSecurity(t, err)
	_, err = f.alice.Head(ctx, f.g, f.a.ID)
	wantSecurity(t, err)
	_, err = f.alice.List(ctx, f.g)
	wantSecurity(t, err)
	// The highest version seen survives a restart: it is in the key store.
	restarted, err := clientlib.New(f.srv.URL(), f.aliceKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = readResource(restarted, f.g, f.a.ID)
	wantSecurity(t, err)
}
