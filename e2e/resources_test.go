package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

func randomContent(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func mustPut(tb testing.TB, c *clientlib.Client, g coffer.GroupID, name string, data []byte) *clientlib.Resource {
	tb.Helper()
	r, err := c.Put(context.Background(), g, bytes.NewReader(data), clientlib.Meta{Name: name, ContentType: "application/octet-stream"})
	if err != nil {
		tb.Fatalf("%s: put %s: %v", c.Identity().Handle(), name, err)
	}
	return r
}

// readResource reads a resource whole, returning what was read before any
// error as well.
func readResource(c *clientlib.Client, g coffer.GroupID, id coffer.ResourceID) ([]byte, error) {
	rr, err := c.Get(context.Background(), g, id)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	return io.ReadAll(rr)
}

func mustReadResource(tb testing.TB, c *clientlib.Client, g coffer.GroupID, id coffer.ResourceID) []byte {
	tb.Helper()
	b, err := readResource(c, g, id)
	if err != nil {
		tb.Fatalf("%s: read %s: %v", c.Identity().Handle(), id, err)
	}
	return b
}

// collectGarbage runs the server's collector as if every upload were
// abandoned and every unreferenced blob old.
func collectGarbage(tb testing.TB, srv *Server) {
	tb.Helper()
	if err := srv.CollectGarbage(context.Background(), 0, 0); err != nil {
		tb.Fatalf("collect garbage: %v", err)
	}
}

// blobFiles lists every file under the server's blob directory, committed
// or temporary.
func blobFiles(tb testing.TB, srv *Server) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(srv.Blobs().Dir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestResourceStory is the acceptance story: bob writes, alice reads; bob
// is removed and reads nothing written after; carol, added later, reads
// history exactly when the group shares it.
func TestResourceStory(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, bob, carol := MustClient(t, srv, "alice"), MustClient(t, srv, "bob"), MustClient(t, srv, "carol")

	g := mustGroup(t, alice, "shared", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)

	// 200 KiB and a bit: several age chunks, the last one partial.
	report := randomContent(t, 200<<10+123)
	var progress atomic.Int64
	r1, err := bob.PutWithOptions(ctx, g, bytes.NewReader(report), clientlib.Meta{
		Name: "report.pdf", ContentType: "application/pdf", App: json.RawMessage(`{"folder":"q3"}`),
	}, &clientlib.PutOptions{Progress: func(done, total int64) { progress.Store(done) }})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Version != 1 || r1.Meta.Size != int64(len(report)) || progress.Load() != int64(len(report)) {
		t.Fatalf("bob's upload: %+v, progress %d", r1, progress.Load())
	}
	if got := mustReadResource(t, alice, g, r1.ID); !bytes.Equal(got, report) {
		t.Fatal("alice read back different bytes")
	}
	list, err := alice.List(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Meta.Name != "report.pdf" || list[0].Meta.ContentType != "application/pdf" ||
		string(list[0].Meta.App) != `{"folder":"q3"}` || list[0].AuthorHandle != "bob" || list[0].Author != bob.AccountID() {
		t.Fatalf("alice lists %+v", list)
	}

	if err := alice.RemoveMember(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	after := randomContent(t, 10_000)
	r2 := mustPut(t, alice, g, "after-removal.txt", after)
	if r2.Epoch != 2 {
		t.Fatalf("alice wrote at epoch %d after the removal, want 2", r2.Epoch)
	}
	later := mustPut(t, alice, g, "later.txt", []byte("later"))
	for _, id := range []coffer.ResourceID{r1.ID, r2.ID, later.ID} {
		_, err := readResource(bob, g, id)
		wantCode(t, err, coffer.ENOTFOUND)
	}
	_, err = bob.List(ctx, g)
	wantCode(t, err, coffer.ENOTFOUND)
	_, err = bob.Put(ctx, g, strings.NewReader("still here?"), clientlib.Meta{Name: "x"})
	wantCode(t, err, coffer.ENOTFOUND)

	// carol joins a group that shares history: she reads everything,
	// including what bob wrote before he left.
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	if got := mustReadResource(t, carol, g, r1.ID); !bytes.Equal(got, report) {
		t.Fatal("carol read bob's report differently")
	}
	if got := mustReadResource(t, carol, g, r2.ID); !bytes.Equal(got, after) {
		t.Fatal("carol read alice's resource differently")
	}
	if list, err := carol.List(ctx, g); err != nil || len(list) != 3 || list[0].ID != later.ID || list[2].ID != r1.ID {
		t.Fatalf("carol lists %v (%v), want 3 resources, newest first", list, err)
	}
	_, err = carol.Put(ctx, g, strings.NewReader("x"), clientlib.Meta{Name: "x"})
	wantCode(t, err, coffer.EFORBIDDEN)

	// A group that does not share history: carol, added after a rotation,
	// reads from the epoch she joined only.
	private := mustGroup(t, alice, "private", &clientlib.GroupOptions{NoHistory: true})
	old := mustPut(t, alice, private, "before carol", []byte("old secret"))
	if err := alice.Rotate(ctx, private); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, private, "carol", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	fresh := mustPut(t, alice, private, "after carol", []byte("new"))
	_, err = readResource(carol, private, old.ID)
	wantCode(t, err, coffer.EFORBIDDEN)
	if coffer.IsSecurity(err) {
		t.Fatal("an unreadable old resource is not an attack")
	}
	if got := mustReadResource(t, carol, private, fresh.ID); string(got) != "new" {
		t.Fatalf("carol read %q", got)
	}
	list, err = carol.List(ctx, private)
	if err != nil || len(list) != 2 || list[0].Locked || !list[1].Locked || list[1].Meta.Name != "" {
		t.Fatalf("carol lists %+v (%v): want the old resource locked, without metadata", list, err)
	}
}

func TestResourceReplaceAndDelete(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, bob, carol, dave := MustClient(t, srv, "alice"), MustClient(t, srv, "bob"), MustClient(t, srv, "carol"), MustClient(t, srv, "dave")
	g := mustGroup(t, alice, "g", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	mustAdd(t, alice, dave, g, coffer.RoleWriter)

	r := mustPut(t, bob, g, "notes.txt", []byte("v1"))
	mustReadResource(t, carol, g, r.ID)
	r2, err := bob.Replace(ctx, g, r.ID, 1, strings.NewReader("version two"), clientlib.Meta{Name: "notes.txt"}, nil)
	if err != nil || r2.Version != 2 {
		t.Fatalf("replace: %+v, %v", r2, err)
	}
	if got := mustReadResource(t, carol, g, r.ID); string(got) != "version two" {
		t.Fatalf("carol reads %q after the replace", got)
	}
	// Optimistic concurrency: a replace based on version 1 lost the race.
	_, err = bob.Replace(ctx, g, r.ID, 1, strings.NewReader("stale"), clientlib.Meta{Name: "notes.txt"}, nil)
	wantCode(t, err, coffer.EPRECONDITION)
	// With 0, Replace replaces whatever is current.
	if r3, err := bob.Replace(ctx, g, r.ID, 0, strings.NewReader("three"), clientlib.Meta{Name: "notes.txt"}, nil); err != nil || r3.Version != 3 {
		t.Fatalf("replace of the current version: %+v, %v", r3, err)
	}
	head, err := carol.Head(ctx, g, r.ID)
	if err != nil || head.Version != 3 || head.Meta.Size != 5 {
		t.Fatalf("head: %+v, %v", head, err)
	}

	// Only the author or an admin deletes or replaces.
	_, err = dave.Replace(ctx, g, r.ID, 3, strings.NewReader("mine now"), clientlib.Meta{Name: "x"}, nil)
	wantCode(t, err, coffer.EFORBIDDEN)
	wantCode(t, dave.Delete(ctx, g, r.ID), coffer.EFORBIDDEN)
	wantCode(t, carol.Delete(ctx, g, r.ID), coffer.EFORBIDDEN)
	if err := bob.Delete(ctx, g, r.ID); err != nil {
		t.Fatal(err)
	}
	_, err = readResource(carol, g, r.ID)
	wantCode(t, err, coffer.ENOTFOUND)
	other := mustPut(t, dave, g, "dave's", []byte("d"))
	if err := alice.Delete(ctx, g, other.ID); err != nil {
		t.Fatalf("an owner deletes a writer's resource: %v", err)
	}
	if list, err := carol.List(ctx, g); err != nil || len(list) != 0 {
		t.Fatalf("after deletes carol lists %v (%v)", list, err)
	}
	// Deleted resources leave no blobs behind, once the collector has run:
	// superseded blobs wait out -superseded-blob-grace for downloads under
	// way, and the sweep takes any blob no row names.
	collectGarbage(t, srv)
	if files := blobFiles(t, srv); len(files) != 0 {
		t.Fatalf("blobs left after deletes: %v", files)
	}
}

// slowReader yields n bytes and then blocks until its context ends, like a
// client that stalls and is then killed.
type slowReader struct {
	ctx  context.Context
	left int
	sent chan struct{}
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		if r.sent != nil {
			close(r.sent)
			r.sent = nil
		}
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	n := min(len(p), r.left)
	rand.Read(p[:n])
	r.left -= n
	return n, nil
}

// TestResourceUploadKilled: an upload killed midway makes nothing visible,
// and the collector removes what it left, the part kept for a resume too.
func TestResourceUploadKilled(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, aliceKS := newClient(t, srv, "alice", nil)
	bob := MustClient(t, srv, "bob")
	g := mustGroup(t, alice, "g", nil)
	mustAdd(t, alice, bob, g, coffer.RoleReader)
	// Large enough for a blob of its own (small ones stay in their rows).
	keptData := randomContent(t, 100_000)
	kept := mustPut(t, alice, g, "kept", keptData)
	db := mustDB(t, srv)

	// A client process that dies cannot clean up after itself: this one
	// talks through a proxy that drops its finalize and abort requests.
	crashed := clientVia(t, srv, aliceKS, func(r *http.Request) bool {
		return strings.HasSuffix(r.URL.Path, "/finalize") || r.Method == http.MethodDelete
	})

	// Killed mid-stream: the connection drops after 3 MiB.
	killCtx, kill := context.WithCancel(ctx)
	sr := &slowReader{ctx: killCtx, left: 3 << 20, sent: make(chan struct{})}
	sent := sr.sent
	done := make(chan error, 1)
	go func() {
		_, err := crashed.Put(killCtx, g, sr, clientlib.Meta{Name: "big"})
		done <- err
	}()
	<-sent
	kill()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("killed upload returned %v", err)
	}
	// Killed after the content arrived, before finalizing.
	if _, err := crashed.Put(ctx, g, bytes.NewReader(randomContent(t, 100_000)), clientlib.Meta{Name: "orphan"}); err == nil {
		t.Fatal("a put whose finalize was dropped succeeded")
	}

	// Nothing is visible to anyone.
	for _, c := range []*clientlib.Client{alice, bob} {
		list, err := c.List(ctx, g)
		if err != nil || len(list) != 1 || list[0].ID != kept.ID {
			t.Fatalf("%s lists %v (%v), want only the kept resource", c.Identity().Handle(), list, err)
		}
	}
	var uploads int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM uploads`).Scan(&uploads); err != nil || uploads != 2 {
		t.Fatalf("%d uploads pending (%v), want the 2 unfinished ones", uploads, err)
	}
	// The killed stream's partial blob is kept, committed, for a resume
	// (a PUT with Upload-Offset); the crashed one's blob is committed too.
	// Both wait for the collector.
	waitFor(t, func() bool { return len(blobFiles(t, srv)) == 3 })

	collectGarbage(t, srv)
	if err := db.QueryRow(ctx, `SELECT count(*) FROM uploads`).Scan(&uploads); err != nil || uploads != 0 {
		t.Fatalf("%d uploads after collection (%v)", uploads, err)
	}
	files := blobFiles(t, srv)
	var blobKey string
	db.QueryRow(ctx, `SELECT blob_key FROM resources WHERE id = $1`, kept.ID).Scan(&blobKey)
	if len(files) != 1 || filepath.Base(files[0]) != blobKey {
		t.Fatalf("after collection the blob directory holds %v, want only %s", files, blobKey)
	}
	if got := mustReadResource(t, bob, g, kept.ID); !bytes.Equal(got, keptData) {
		t.Fatal("the kept resource reads differently")
	}
}

func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			tb.Fatal("condition not reached in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientVia returns a client on key store ks that talks to srv through a
// proxy answering 503 to every request drop matches, without forwarding it.
// Its stored refresh token logs it in, as in lyingProxy's tests.
func clientVia(tb testing.TB, srv *Server, ks clientlib.KeyStore, drop func(*http.Request) bool) *clientlib.Client {
	tb.Helper()
	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if drop(r) {
			http.Error(w, "dropped", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(ps.Close)
	via, err := clientlib.New(ps.URL, ks, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return via
}

// gateReader yields n bytes, waits for its gate to open, then yields m more.
type gateReader struct {
	first, rest int
	reached     chan struct{}
	gate        chan struct{}
}

func (r *gateReader) Read(p []byte) (int, error) {
	switch {
	case r.first > 0:
		n := min(len(p), r.first)
		r.first -= n
		return n, nil
	case r.reached != nil:
		close(r.reached)
		r.reached = nil
		<-r.gate
	}
	if r.rest == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.rest)
	r.rest -= n
	return n, nil
}

// TestResourceRemovalDuringUpload: content encrypted under the epoch key a
// removed member holds is never stored after the removal, even when the
// upload began before it.
func TestResourceRemovalDuringUpload(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, bob := MustClient(t, srv, "alice"), MustClient(t, srv, "bob")
	g := mustGroup(t, alice, "g", nil)
	mustAdd(t, alice, bob, g, coffer.RoleReader)

	gr := &gateReader{first: 1 << 20, rest: 1 << 20, reached: make(chan struct{}), gate: make(chan struct{})}
	reached := gr.reached
	done := make(chan error, 1)
	go func() {
		_, err := alice.Put(ctx, g, gr, clientlib.Meta{Name: "straddles the removal"})
		done <- err
	}()
	<-reached
	if err := alice.RemoveMember(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	close(gr.gate)
	wantCode(t, <-done, coffer.ESTALEKEY)
	if list, err := alice.List(ctx, g); err != nil || len(list) != 0 {
		t.Fatalf("alice lists %v (%v) after a refused upload", list, err)
	}
	var uploads int
	if err := mustDB(t, srv).QueryRow(ctx, `SELECT count(*) FROM uploads`).Scan(&uploads); err != nil || uploads != 0 {
		t.Fatalf("%d uploads left (%v): the client should have aborted its upload", uploads, err)
	}
	// The retry the error asks for works, under the new key.
	r := mustPut(t, alice, g, "retried", []byte("after the removal"))
	if r.Epoch != 2 {
		t.Fatalf("the retry is at epoch %d, want 2", r.Epoch)
	}
}
