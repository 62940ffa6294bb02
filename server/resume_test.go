package server_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/server"
)

type failingBody struct{}

func (failingBody) Read([]byte) (int, error) { return 0, errors.New("the connection dropped") }

// uploadOffset asks the durable offset of up's content.
func (w *resourceWorld) uploadOffset(t *testing.T, m member, up api.Upload) int64 {
	t.Helper()
	r := w.ts.Send(t, w.req(t, m, "HEAD", "/v1/uploads/"+up.ID.String()+"/content", nil))
	if r.Status != http.StatusOK {
		t.Fatalf("HEAD: status %d", r.Status)
	}
	n, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		t.Fatalf("Upload-Offset %q", r.Header.Get("Upload-Offset"))
	}
	return n
}

// TestUploadResume: a PUT cut off halfway keeps what arrived, HEAD tells
// how much, and a PUT with that Upload-Offset completes the content, which
// finalizes and reads back whole.
func TestUploadResume(t *testing.T) {
	w := newResourceWorld(t, nil)
	data := make([]byte, 300_000)
	rand.NewChaCha8([32]byte{1}).Read(data)
	blob := blobOf(data).blob
	up := w.start(t, w.writer, coffer.NewResourceID())
	if n := w.uploadOffset(t, w.writer, up); n != 0 {
		t.Fatalf("a new upload holds %d bytes", n)
	}
	path := "/v1/uploads/" + up.ID.String() + "/content"
	off := w.cutPut(t, w.writer, up, blob, 100_000)
	var st api.UploadStatus
	w.ex(t, w.writer, "GET", uploadT, path[:len(path)-len("/content")], nil, 200).Decode(t, &st)
	if st.ID != up.ID || st.Received != off || st.Writing {
		t.Fatalf("upload status %+v, want %d bytes received and no PUT writing", st, off)
	}
	w.ex(t, w.owner, "GET", uploadT, path[:len(path)-len("/content")], nil, 404)
	// Another account cannot ask.
	if r := w.ts.Send(t, w.req(t, w.owner, "HEAD", path, nil)); r.Status != http.StatusNotFound {
		t.Fatalf("the owner's HEAD of the writer's upload: %d", r.Status)
	}
	// A wrong offset is refused with the right one.
	for _, bad := range []int64{off - 1, off + 1} {
		r := w.exchange(t, w.req(t, w.writer, "PUT", path, bytes.NewReader(blob[bad:]),
			"Content-Type", "application/octet-stream", "Upload-Offset", strconv.FormatInt(bad, 10)), putT, http.StatusPreconditionFailed)
		if got := r.Header.Get("Upload-Offset"); got != strconv.FormatInt(off, 10) {
			t.Fatalf("Upload-Offset %s on a wrong offset, want %d", got, off)
		}
	}
	if n := w.uploadOffset(t, w.writer, up); n != off {
		t.Fatalf("refused PUTs moved the offset to %d", n)
	}
	// The rest, from the durable offset.
	var got api.UploadContent
	w.exchange(t, w.req(t, w.writer, "PUT", path, bytes.NewReader(blob[off:]),
		"Content-Type", "application/octet-stream", "Upload-Offset", strconv.FormatInt(off, 10)), putT, 200).Decode(t, &got)
	if sum := sha256.Sum256(blob); got.Size != int64(len(blob)) || !bytes.Equal(got.ContentHash, sum[:]) {
		t.Fatalf("resumed upload: %d bytes, hash %x", got.Size, got.ContentHash)
	}
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, data, nil), 201)
	r := w.exchange(t, w.req(t, w.reader, "GET", w.resourcePath(up.ResourceID)+"/content", nil), contentT, 200)
	if !bytes.Equal(r.Body, blob) {
		t.Fatal("the resumed resource reads back different bytes")
	}
}

// cutPut sends the first n bytes of blob as up's content and then drops
// the connection, and waits for the server to keep them.
func (w *resourceWorld) cutPut(t *testing.T, m member, up api.Upload, blob []byte, n int) int64 {
	t.Helper()
	req := w.req(t, m, "PUT", "/v1/uploads/"+up.ID.String()+"/content", io.MultiReader(bytes.NewReader(blob[:n]), failingBody{}),
		"Content-Type", "application/octet-stream")
	req.ContentLength = int64(len(blob))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the cut PUT answered %d", resp.StatusCode)
	}
	var off int64
	for deadline := time.Now().Add(10 * time.Second); off == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		off = w.uploadOffset(t, m, up)
	}
	if off <= 0 || off > int64(n) {
		t.Fatalf("durable offset %d after %d bytes sent", off, n)
	}
	return off
}

// TestUploadResumeLimits: a resumed PUT is held to the maximum size as a
// whole, and a PUT without Upload-Offset starts over.
func TestUploadResumeLimits(t *testing.T) {
	data := make([]byte, 200_000)
	rand.NewChaCha8([32]byte{2}).Read(data)
	blob := blobOf(data).blob
	w := newResourceWorld(t, func(c *server.Config) { c.MaxResourceSize = int64(len(blob)) + 10 })
	up := w.start(t, w.writer, coffer.NewResourceID())
	path := "/v1/uploads/" + up.ID.String() + "/content"
	off := w.cutPut(t, w.writer, up, blob, 50_000)
	tooLong := append(bytes.Clone(blob[off:]), make([]byte, 11)...)
	w.exchange(t, w.req(t, w.writer, "PUT", path, bytes.NewReader(tooLong),
		"Content-Type", "application/octet-stream", "Upload-Offset", strconv.FormatInt(off, 10)), putT, http.StatusRequestEntityTooLarge)
	// Starting over replaces the partial content.
	short := blobOf(data[:1000]).blob
	w.exchange(t, w.req(t, w.writer, "PUT", path, bytes.NewReader(short), "Content-Type", "application/octet-stream"), putT, 200)
	if n := w.uploadOffset(t, w.writer, up); n != int64(len(short)) {
		t.Fatalf("after starting over the upload holds %d bytes, want %d", n, len(short))
	}
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, data[:1000], nil), 201)
}
