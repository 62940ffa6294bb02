package e2e_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
)

// Small resources keep their ciphertext in the row (resources.content) and
// reach readers with the header, in one response. These tests play the
// malicious server against that content as the blob tests do against blob
// files: every change must end in a *coffer.SecurityError, with no byte
// that the author did not sign.

// newInlineTamper: bob uploads two small resources, stored in their rows,
// and alice has read both.
func newInlineTamper(t *testing.T) *resourceTamper {
	t.Helper()
	f := &resourceTamper{tamperFixture: newTamperFixture(t)}
	f.dataA, f.dataB = randomContent(t, 1000), randomContent(t, 3000)
	f.a = mustPut(t, f.bob, f.g, "a.bin", f.dataA)
	f.b = mustPut(t, f.bob, f.g, "b.bin", f.dataB)
	for _, r := range []*clientlib.Resource{f.a, f.b} {
		var inRow bool
		if err := f.db.QueryRow(context.Background(), `SELECT content IS NOT NULL AND blob_key IS NULL FROM resources WHERE id = $1`, r.ID).Scan(&inRow); err != nil || !inRow {
			t.Fatalf("a small resource is not kept in its row (%v)", err)
		}
	}
	mustReadResource(t, f.alice, f.g, f.a.ID)
	mustReadResource(t, f.alice, f.g, f.b.ID)
	return f
}

func (f *resourceTamper) rowContent(t *testing.T, id coffer.ResourceID) []byte {
	t.Helper()
	var b []byte
	if err := f.db.QueryRow(context.Background(), `SELECT content FROM resources WHERE id = $1`, id).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *resourceTamper) setRowContent(t *testing.T, id coffer.ResourceID, b []byte) {
	t.Helper()
	mustExec(t, f.db, `UPDATE resources SET content = $2 WHERE id = $1`, id, b)
}

// TestTamperInlineFlippedByte flips one bit at places across the stored
// bytes: the age header, the payload nonce, the sealed chunk, the chunk
// hash list.
func TestTamperInlineFlippedByte(t *testing.T) {
	f := newInlineTamper(t)
	orig := f.rowContent(t, f.a.ID)
	hdrEnd := bytes.Index(orig, []byte("\n---")) + 1
	hdrEnd += bytes.IndexByte(orig[hdrEnd:], '\n') + 1
	for _, at := range []int{0, 5, hdrEnd / 2, hdrEnd - 2, hdrEnd, hdrEnd + 15, hdrEnd + 16, hdrEnd + 500,
		int(f.a.ContentSize) - 1, int(f.a.ContentSize), len(orig) - 1} {
		b := bytes.Clone(orig)
		b[at] ^= 0x01
		f.setRowContent(t, f.a.ID, b)
		got, err := readResource(f.alice, f.g, f.a.ID)
		wantSecurity(t, err)
		if len(got) > 0 {
			t.Fatalf("byte %d flipped: %d bytes of plaintext returned before refusing", at, len(got))
		}
	}
	f.setRowContent(t, f.a.ID, orig)
	if !bytes.Equal(mustReadResource(t, f.alice, f.g, f.a.ID), f.dataA) {
		t.Fatal("the restored resource reads differently")
	}
}

// TestTamperInlineLength: content cut short, extended or emptied.
func TestTamperInlineLength(t *testing.T) {
	f := newInlineTamper(t)
	orig := f.rowContent(t, f.a.ID)
	list := int(content.ChunkHashListSize(1))
	for name, b := range map[string][]byte{
		"last byte cut":         orig[:len(orig)-1],
		"list cut":              orig[:len(orig)-list],
		"age file cut":          append(bytes.Clone(orig[:f.a.ContentSize-1]), orig[f.a.ContentSize:]...),
		"half":                  orig[:len(orig)/2],
		"empty":                 {},
		"one byte more":         append(bytes.Clone(orig), 0),
		"a byte inserted":       append(append(bytes.Clone(orig[:100]), 'x'), orig[100:]...),
		"list repeated":         append(bytes.Clone(orig), orig[len(orig)-list:]...),
		"age file without list": orig[:f.a.ContentSize],
	} {
		f.setRowContent(t, f.a.ID, b)
		got, err := readResource(f.alice, f.g, f.a.ID)
		if err == nil || len(got) > 0 {
			t.Errorf("%s: read %d bytes, err %v", name, len(got), err)
		}
		wantSecurity(t, err)
	}
}

// TestTamperInlineSwapped: the content of one row served under the other
// row's header, alone and with the size and hash columns.
func TestTamperInlineSwapped(t *testing.T) {
	for _, cols := range [][]string{{"content"}, {"content", "size", "content_hash"}} {
		f := newInlineTamper(t)
		f.swapColumns(t, cols...)
		wantRefused(t, f.alice, f.g, f.a.ID, f.dataA)
		wantRefused(t, f.carol, f.g, f.b.ID, f.dataB)
	}
}

// TestTamperInlineOldVersion: after a replace, the previous version's
// content (valid for this resource, group and epoch) under the new header.
func TestTamperInlineOldVersion(t *testing.T) {
	ctx := context.Background()
	f := newInlineTamper(t)
	old := f.rowContent(t, f.a.ID)
	if _, err := f.bob.Replace(ctx, f.g, f.a.ID, 1, bytes.NewReader(randomContent(t, 1000)), clientlib.Meta{Name: "a.bin"}, nil); err != nil {
		t.Fatal(err)
	}
	f.setRowContent(t, f.a.ID, old)
	_, err := readResource(f.alice, f.g, f.a.ID)
	wantSecurity(t, err)
}

// TestTamperInlineFromAnotherPlace: the row's content moved to a blob that
// holds another resource's content, and a small resource's bytes put in the
// row of a large one.
func TestTamperInlineFromAnotherPlace(t *testing.T) {
	ctx := context.Background()
	f := newInlineTamper(t)
	dataBig := randomContent(t, 150_000)
	big := mustPut(t, f.bob, f.g, "big.bin", dataBig)
	mustReadResource(t, f.alice, f.g, big.ID)
	bigBlob, err := os.ReadFile(f.blobPath(t, big.ID))
	if err != nil {
		t.Fatal(err)
	}
	key := coffer.NewBlobKey()
	bw, err := f.srv.Blobs().Create(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(bigBlob)
	if err := bw.Commit(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.db, `UPDATE resources SET content = NULL, blob_key = $2 WHERE id = $1`, f.a.ID, key)
	wantRefused(t, f.alice, f.g, f.a.ID, f.dataA)
	// The other way: the large resource's row holds small content.
	mustExec(t, f.db, `UPDATE resources SET blob_key = NULL, content = $2 WHERE id = $1`, big.ID, f.rowContent(t, f.b.ID))
	wantRefused(t, f.alice, f.g, big.ID, dataBig)
}

// TestSmallReadIsOneRequest: a reader that has synced the group reads a
// small resource, header, metadata and content all verified, with one
// request for the resource; and still refuses tampered content arriving
// that way.
func TestSmallReadIsOneRequest(t *testing.T) {
	f := newInlineTamper(t)
	target, _ := url.Parse(f.srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	// Requests about resources; the log checks of each read (the latest
	// checkpoint, clientlib/resourcelog.go) are counted apart.
	var requests atomic.Int64
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/resources") {
			requests.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ps.Close)
	reader, err := clientlib.New(ps.URL, KeyStore(t, f.carol), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustReadResource(t, reader, f.g, f.a.ID) // syncs the group and logs in first
	for _, r := range []struct {
		id   coffer.ResourceID
		data []byte
	}{{f.a.ID, f.dataA}, {f.b.ID, f.dataB}, {f.a.ID, f.dataA}} {
		before := requests.Load()
		if got := mustReadResource(t, reader, f.g, r.id); !bytes.Equal(got, r.data) {
			t.Fatal("read differs")
		}
		if n := requests.Load() - before; n != 1 {
			t.Fatalf("a small read took %d requests for the resource", n)
		}
	}
	orig := f.rowContent(t, f.b.ID)
	b := bytes.Clone(orig)
	b[len(b)/2] ^= 0x80
	f.setRowContent(t, f.b.ID, b)
	wantRefused(t, reader, f.g, f.b.ID, f.dataB)
}
