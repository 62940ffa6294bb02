package e2e_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// gatedReader blocks its first Read until open is closed, after telling
// started: the writer's client has checked the group and begun its upload.
type gatedReader struct {
	started, open chan struct{}
	r             io.Reader
	once          bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if !g.once {
		g.once = true
		close(g.started)
		<-g.open
	}
	return g.r.Read(p)
}

// TestLeaveDuringUpload: a member leaves while a writer streams an upload
// that its client started under the epoch the leaver still holds. The
// writer's client checked for a pending rotation before it began, so only
// the server can stop the write: it refuses to finalize content under an
// epoch whose rotation is pending (rotation_pending), as it refuses content
// under an epoch a rotation ended (stale_key). Nothing is stored.
func TestLeaveDuringUpload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice") // owner
	carol := MustClient(t, srv, "carol") // reader, leaves
	dave := MustClient(t, srv, "dave")   // writer
	g := mustGroup(t, alice, "team", nil)
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	mustAdd(t, alice, dave, g, coffer.RoleWriter)

	body := &gatedReader{started: make(chan struct{}), open: make(chan struct{}), r: strings.NewReader("written while carol left")}
	done := make(chan error, 1)
	go func() {
		_, err := dave.Put(ctx, g, body, clientlib.Meta{Name: "racing"})
		done <- err
	}()
	select {
	case <-body.started:
	case err := <-done:
		t.Fatalf("dave's put ended before it read its content: %v", err)
	}
	if err := carol.Leave(ctx, g); err != nil {
		t.Fatal(err)
	}
	close(body.open)
	wantCode(t, <-done, coffer.EROTATIONPENDING)
	if list, err := alice.List(ctx, g); err != nil || len(list) != 0 {
		t.Fatalf("after the refused upload alice lists %d resources (%v), want none", len(list), err)
	}
	// Once an admin rotated, the same write goes through under the new key.
	if _, err := alice.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	if r := mustPut(t, dave, g, "after", []byte("after the rotation")); r.Epoch != 2 {
		t.Fatalf("dave wrote at epoch %d, want 2", r.Epoch)
	}
}
