package server_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/server"
)

// TestPendingBytesLimit: an account's unfinished uploads hold at most
// MaxPendingBytesPerAccount, whether the body declares its length or
// streams without one; finalizing or deleting frees the room, and other
// accounts have their own.
func TestPendingBytesLimit(t *testing.T) {
	w := newResourceWorld(t, func(c *server.Config) {
		// put adds a 64-byte chunk hash list to each body (see blobOf).
		c.MaxResourceSize = 800 + 64
		c.MaxPendingBytesPerAccount = 1000 + 64
	})
	chunked := func(m member, up api.Upload, size, wantStatus int) *response {
		t.Helper()
		req := w.req(t, m, "PUT", "/v1/uploads/"+up.ID.String()+"/content",
			io.MultiReader(bytes.NewReader(make([]byte, size/2)), bytes.NewReader(make([]byte, size-size/2))),
			"Content-Type", "application/octet-stream")
		req.ContentLength = -1
		return w.exchange(t, req, putT, wantStatus)
	}
	a := w.start(t, w.writer, coffer.NewResourceID())
	b := w.start(t, w.writer, coffer.NewResourceID())
	c := w.start(t, w.writer, coffer.NewResourceID())
	w.put(t, w.writer, a, make([]byte, 600), 200)
	if p := w.put(t, w.writer, b, make([]byte, 600), 422).Problem(t); p.Code != string(coffer.ELIMIT) {
		t.Fatalf("problem %+v", p)
	}
	chunked(w.writer, b, 300, 200)
	if p := chunked(w.writer, c, 300, 422).Problem(t); p.Code != string(coffer.ELIMIT) {
		t.Fatalf("problem %+v", p)
	}
	// Putting an upload's content again replaces its own bytes.
	w.put(t, w.writer, a, make([]byte, 700), 200)
	w.put(t, w.writer, b, make([]byte, 400), 422)

	// Another account is not held back.
	o := w.start(t, w.owner, coffer.NewResourceID())
	w.put(t, w.owner, o, make([]byte, 800), 200)

	// Finalizing and deleting free the room.
	w.finalize(t, w.writer, a, finalizeRequest(w.writer, a, make([]byte, 700), nil), 201)
	chunked(w.writer, c, 600, 200)
	w.exchange(t, w.req(t, w.writer, "DELETE", "/v1/uploads/"+c.ID.String(), nil), uploadT, 204)
	w.put(t, w.writer, b, make([]byte, 700), 200)
}
