package server_test

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/server"
)

// blobFiles counts the files of the test's blob store (under its temp dirs).
func blobFiles(t *testing.T) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Dir(t.TempDir()), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && coffer.ValidBlobKey(d.Name()) {
			n++
		}
		return nil
	})
	return n
}

// where says where a resource's current ciphertext is: "row", "blob" or "".
func (w *resourceWorld) where(t *testing.T, id coffer.ResourceID) string {
	t.Helper()
	var inRow, inBlob bool
	err := w.ts.Pool.QueryRow(t.Context(), `SELECT content IS NOT NULL, blob_key IS NOT NULL FROM resources WHERE group_id = $1 AND id = $2`,
		w.g, id).Scan(&inRow, &inBlob)
	switch {
	case err != nil:
		t.Fatal(err)
	case inRow && inBlob:
		t.Fatal("both a row's content and a blob")
	case inRow:
		return "row"
	case inBlob:
		return "blob"
	}
	return ""
}

func (w *resourceWorld) getWithContent(t *testing.T, m member, id coffer.ResourceID) api.Resource {
	t.Helper()
	var res api.Resource
	w.ex(t, m, "GET", resourceT, w.resourcePath(id)+"?include=content", nil, 200).Decode(t, &res)
	return res
}

// TestInlineContent: content up to the limit is kept in the row, with no
// blob, and served with the header on ?include=content, from the same row;
// content over it goes to a blob as before. Nothing is visible before
// finalize, and replaces move between the two.
func TestInlineContent(t *testing.T) {
	w := newResourceWorld(t, func(c *server.Config) { c.SupersededBlobGrace = -1 })
	small := bytes.Repeat([]byte("s"), 1000)
	large := bytes.Repeat([]byte("L"), coffer.MaxInlineContentSize) // with its list, over the limit
	files := blobFiles(t)

	id := coffer.NewResourceID()
	up := w.start(t, w.writer, id)
	w.put(t, w.writer, up, small, 200)
	// Received, not finalized: invisible, with or without include.
	w.ex(t, w.reader, "GET", resourceT, w.resourcePath(id)+"?include=content", nil, 404)
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, small, nil), 201)
	if got := w.where(t, id); got != "row" {
		t.Fatalf("small content stored in the %s", got)
	}
	if n := blobFiles(t); n != files {
		t.Fatalf("a small resource made %d blob files", n-files)
	}
	res := w.getWithContent(t, w.reader, id)
	if !bytes.Equal(res.Content, blobOf(small).blob) || res.Version != 1 {
		t.Fatalf("include=content returned %d bytes at version %d", len(res.Content), res.Version)
	}
	var plain api.Resource
	w.ex(t, w.reader, "GET", resourceT, w.resourcePath(id), nil, 200).Decode(t, &plain)
	if plain.Content != nil {
		t.Fatal("content sent without include=content")
	}
	var list api.ResourceList
	w.ex(t, w.reader, "GET", resourcesT, "/v1/groups/"+w.g.String()+"/resources", nil, 200).Decode(t, &list)
	if len(list.Resources) != 1 || list.Resources[0].Content != nil {
		t.Fatal("a listing carries content")
	}
	// Range reads of content kept in the row.
	r := w.exchange(t, w.req(t, w.reader, "GET", w.resourcePath(id)+"/content", nil, "Range", "bytes=1-3", "If-Match", `"1"`), contentT, 206)
	if string(r.Body) != "sss" {
		t.Fatalf("range of row content: %q", r.Body)
	}
	w.exchange(t, w.req(t, w.outsider, "GET", w.resourcePath(id)+"?include=content", nil), resourceT, 404)

	// Replace with large content: a blob, and the header comes alone.
	replace := func(data []byte, ifMatch string) {
		t.Helper()
		var up api.Upload
		w.exchange(t, w.req(t, w.writer, "POST", w.resourcePath(id)+"/versions", nil, "If-Match", ifMatch), versionsT, 201).Decode(t, &up)
		w.put(t, w.writer, up, data, 200)
		w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, data, nil), 201)
	}
	replace(large, `"1"`)
	if got := w.where(t, id); got != "blob" {
		t.Fatalf("large content stored in the %s", got)
	}
	if res := w.getWithContent(t, w.reader, id); res.Content != nil || res.Version != 2 {
		t.Fatalf("large content sent with the header (%d bytes)", len(res.Content))
	}
	r = w.exchange(t, w.req(t, w.reader, "GET", w.resourcePath(id)+"/content", nil, "If-Match", `"2"`), contentT, 200)
	if !bytes.Equal(r.Body, blobOf(large).blob) {
		t.Fatal("large content differs")
	}
	// And back: the superseded blob goes, the row holds the content.
	replace(small[:10], `"2"`)
	if got := w.where(t, id); got != "row" {
		t.Fatalf("small content stored in the %s", got)
	}
	if n := blobFiles(t); n != files {
		t.Fatalf("%d blob files left after replacing the blob version", n-files)
	}
	if res := w.getWithContent(t, w.reader, id); !bytes.Equal(res.Content, blobOf(small[:10]).blob) || res.Version != 3 {
		t.Fatal("include=content after replace differs")
	}
	w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(id), w.deleteBody(t, w.writer, id, 3), "If-Match", `"3"`), resourceT, 204)
	w.ex(t, w.reader, "GET", resourceT, w.resourcePath(id)+"?include=content", nil, 404)
}

// TestInlineUploadRetries: a PUT repeated for one upload replaces what the
// earlier attempt stored, in a row or in a blob, and leaves no blob behind.
func TestInlineUploadRetries(t *testing.T) {
	w := newResourceWorld(t, nil)
	files := blobFiles(t)
	small := []byte("small")
	large := bytes.Repeat([]byte("L"), coffer.MaxInlineContentSize)
	id := coffer.NewResourceID()
	up := w.start(t, w.writer, id)
	w.put(t, w.writer, up, large, 200)
	w.put(t, w.writer, up, small, 200)
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, small, nil), 201)
	if got := w.where(t, id); got != "row" {
		t.Fatalf("stored in the %s", got)
	}
	if n := blobFiles(t); n != files {
		t.Fatalf("the first attempt's blob is left (%d files)", n-files)
	}
	id2 := coffer.NewResourceID()
	up = w.start(t, w.writer, id2)
	w.put(t, w.writer, up, small, 200)
	w.put(t, w.writer, up, large, 200)
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, large, nil), 201)
	if got := w.where(t, id2); got != "blob" {
		t.Fatalf("stored in the %s", got)
	}
	if res := w.getWithContent(t, w.reader, id2); res.Content != nil {
		t.Fatal("large content sent with the header")
	}
}

// TestIncludeContentFromBlob: small resources whose content is in a blob
// (stored with a lower limit, or before rows held content) come with the
// header as well, read with one blob-store call.
func TestIncludeContentFromBlob(t *testing.T) {
	w := newResourceWorld(t, func(c *server.Config) { c.InlineContentMax = -1 })
	data := []byte("kept in a blob")
	id := w.mustResource(t, w.writer, data)
	if got := w.where(t, id); got != "blob" {
		t.Fatalf("stored in the %s with inline storage off", got)
	}
	if res := w.getWithContent(t, w.reader, id); !bytes.Equal(res.Content, blobOf(data).blob) {
		t.Fatalf("include=content returned %d bytes", len(res.Content))
	}
}
