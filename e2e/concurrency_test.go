package e2e_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// racingProxy forwards every request to the honest server unchanged, but
// runs before once, just ahead of the first request whose path ends in
// suffix after arm is called: a deterministic stand-in for another client's
// commit landing between two reads of this one.
func racingProxy(t *testing.T, srv *Server, suffix string, before func()) (proxyURL string, arm func()) {
	t.Helper()
	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	var armed atomic.Bool
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, suffix) && armed.CompareAndSwap(true, false) {
			before()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ps.Close)
	return ps.URL, func() { armed.Store(true) }
}

// TestRotationBetweenCommitsAndKeys: the owner rotates after a member has
// verified the commits and before it reads its wraps. The server honestly
// returns the new epoch's wrap as well, for an epoch the member has not
// verified yet. That is honest concurrency: the wrap is set aside, never
// reported as server misbehaviour, and the member picks it up on its next
// sync.
func TestRotationBetweenCommitsAndKeys(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	owner := MustClient(t, srv, "owner")
	bob := MustClient(t, srv, "bob")
	g := mustGroup(t, owner, "g", nil)
	mustAdd(t, owner, bob, g, coffer.RoleWriter)
	if _, err := owner.Put(ctx, g, strings.NewReader("before"), clientlib.Meta{Name: "before"}); err != nil {
		t.Fatal(err)
	}

	proxyURL, arm := racingProxy(t, srv, "/keys", func() {
		if err := owner.Rotate(ctx, g); err != nil {
			t.Errorf("rotate: %v", err)
		}
	})
	viaProxy, err := clientlib.New(proxyURL, KeyStore(t, bob), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := mustEpoch(t, viaProxy, g)

	arm()
	got, err := viaProxy.CurrentEpoch(ctx, g)
	if err != nil {
		t.Fatalf("a rotation between reading the commits and the keys: %v", err)
	}
	if got != before {
		t.Fatalf("epoch %d, want the verified %d", got, before)
	}
	if got := mustEpoch(t, viaProxy, g); got != before+1 {
		t.Fatalf("after the next sync: epoch %d, want %d", got, before+1)
	}

	// The same race on the read path (a fresh client, whose first read
	// fetches the keys) and on the write path.
	for _, op := range []string{"list", "put"} {
		fresh, err := clientlib.New(proxyURL, KeyStore(t, bob), nil)
		if err != nil {
			t.Fatal(err)
		}
		arm()
		switch op {
		case "list":
			_, err = fresh.List(ctx, g)
		case "put":
			_, err = fresh.Put(ctx, g, strings.NewReader("during"), clientlib.Meta{Name: "during"})
		}
		if coffer.IsSecurity(err) {
			t.Fatalf("%s with a rotation between the commits and the keys: %v", op, err)
		}
		if op == "put" && err != nil && coffer.ErrorCode(err) != coffer.ESTALEKEY {
			t.Fatalf("put: %v, want success or %s", err, coffer.ESTALEKEY)
		}
	}
}

// TestReaddedMemberReadsAcrossGap: a member removed and added back holds wraps for two
// separate runs of epochs. In a group that shares history it must read
// everything, including what was written while it was out, by walking the
// history links down from its newest key; an honest server must never
// cause a security error for it.
func TestReaddedMemberReadsAcrossGap(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	owner := MustClient(t, srv, "owner")
	bob := MustClient(t, srv, "bob")
	g := mustGroup(t, owner, "g", nil)
	mustAdd(t, owner, bob, g, coffer.RoleReader)

	want := map[coffer.ResourceID]string{}
	put := func(s string) {
		t.Helper()
		r, err := owner.Put(ctx, g, strings.NewReader(s), clientlib.Meta{Name: s})
		if err != nil {
			t.Fatal(err)
		}
		want[r.ID] = s
	}
	put("while bob is in")
	if _, err := bob.List(ctx, g); err != nil { // bob's view holds his first key
		t.Fatal(err)
	}
	if err := owner.RemoveMember(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	put("while bob is out")
	if err := owner.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	put("still out")
	if err := owner.AddMember(ctx, g, "bob", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	put("bob is back")

	for _, c := range []*clientlib.Client{bob, MustNewClient(t, srv.URL(), KeyStore(t, bob))} {
		list, err := c.List(ctx, g)
		if err != nil {
			t.Fatalf("list after a gap: %v", err)
		}
		if len(list) != len(want) {
			t.Fatalf("listed %d resources, want %d", len(list), len(want))
		}
		for id, s := range want {
			rr, err := c.Get(ctx, g, id)
			if err != nil {
				t.Fatalf("get %q after a gap: %v", s, err)
			}
			b, err := io.ReadAll(rr)
			rr.Close()
			if err != nil || !bytes.Equal(b, []byte(s)) {
				t.Fatalf("read %q as %q (%v)", s, b, err)
			}
		}
		epochs, err := c.ReadableEpochs(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if n := mustEpoch(t, c, g); len(epochs) != int(n) {
			t.Fatalf("readable epochs %v, want 1..%d", epochs, n)
		}
	}
}

// TestConcurrentReadIsNotRollback: one client lists while, on the same
// client, a read verifies a newer version of a resource. The listing was
// built by the server before the replace and arrives after the newer
// version was verified: honest, and not a rollback. The same stale listing
// served to a request sent after the newer version was verified is one.
func TestConcurrentReadIsNotRollback(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	owner := MustClient(t, srv, "owner")
	bob := MustClient(t, srv, "bob")
	g := mustGroup(t, owner, "g", nil)
	mustAdd(t, owner, bob, g, coffer.RoleReader)
	r, err := owner.Put(ctx, g, strings.NewReader("v1"), clientlib.Meta{Name: "doc"})
	if err != nil {
		t.Fatal(err)
	}

	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	var viaProxy *clientlib.Client
	var stale *httptest.ResponseRecorder
	var mode atomic.Int32 // 1: race the next listing; 2: replay the stale one
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		isList := req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/resources")
		switch {
		case isList && mode.CompareAndSwap(1, 0):
			stale = httptest.NewRecorder()
			rp.ServeHTTP(stale, req) // built before the replace
			if _, err := owner.Replace(ctx, g, r.ID, 0, strings.NewReader("v2"), clientlib.Meta{Name: "doc"}, nil); err != nil {
				t.Errorf("replace: %v", err)
			}
			if res, err := viaProxy.Head(ctx, g, r.ID); err != nil || res.Version != 2 {
				t.Errorf("head during the listing: %v, %v", res, err)
			}
		case isList && mode.CompareAndSwap(2, 0):
		default:
			rp.ServeHTTP(w, req)
			return
		}
		for k, v := range stale.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(stale.Code)
		w.Write(stale.Body.Bytes())
	}))
	t.Cleanup(ps.Close)
	viaProxy, err = clientlib.New(ps.URL, KeyStore(t, bob), nil)
	if err != nil {
		t.Fatal(err)
	}

	mode.Store(1)
	list, err := viaProxy.List(ctx, g)
	if err != nil {
		t.Fatalf("a listing that raced this client's own read: %v", err)
	}
	if len(list) != 1 || list[0].Version != 1 {
		t.Fatalf("listing %+v, want the version 1 the server listed", list)
	}
	// What was verified is not lowered by the stale answer...
	if res, err := viaProxy.Head(ctx, g, r.ID); err != nil || res.Version != 2 {
		t.Fatalf("head after the listing: %v, %v", res, err)
	}
	// ...and the same stale listing, asked for afterwards, is a rollback.
	mode.Store(2)
	_, err = viaProxy.List(ctx, g)
	wantSecurity(t, err)
}

// TestGroupNameDuringRotation: a rotation lands while a member reads the
// group, after its sync. The rotation re-seals the group's name under the
// new epoch; the member must still show the name (read before the sync,
// so under an epoch the sync verifies), never the group without it.
func TestGroupNameDuringRotation(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	owner := MustClient(t, srv, "owner")
	bob := MustClient(t, srv, "bob")
	g := mustGroup(t, owner, "the name", nil)
	mustAdd(t, owner, bob, g, coffer.RoleReader)
	proxyURL, arm := racingProxy(t, srv, "/keys", func() {
		if err := owner.Rotate(ctx, g); err != nil {
			t.Errorf("rotate: %v", err)
		}
	})
	viaProxy, err := clientlib.New(proxyURL, KeyStore(t, bob), nil)
	if err != nil {
		t.Fatal(err)
	}
	arm()
	gr, err := viaProxy.Group(ctx, g)
	if err != nil {
		t.Fatalf("group during a rotation: %v", err)
	}
	if gr.Name != "the name" {
		t.Fatalf("group during a rotation: name %q at epoch %d, want %q", gr.Name, gr.Epoch, "the name")
	}
	if gr := mustGroupInfo(t, viaProxy, g); gr.Name != "the name" || gr.Epoch != 2 {
		t.Fatalf("group after the rotation: name %q at epoch %d, want %q at 2", gr.Name, gr.Epoch, "the name")
	}
}
