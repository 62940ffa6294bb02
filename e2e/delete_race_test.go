package e2e_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// TestOwnDeleteRacingList: a listing sent before this device deleted a
// resource may honestly still hold it; the listing leaves it out instead of
// calling the server a liar. The same stale listing served after the delete
// is what a server hiding the delete would do: a security error.
func TestOwnDeleteRacingList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	owner := MustClient(t, srv, "owner")
	g := mustGroup(t, owner, "g", nil)
	keep, err := owner.Put(ctx, g, strings.NewReader("keep"), clientlib.Meta{Name: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := owner.Put(ctx, g, strings.NewReader("gone"), clientlib.Meta{Name: "gone"})
	if err != nil {
		t.Fatal(err)
	}

	// The proxy answers an armed listing with what the server said before
	// during() ran (the delete), or with a recorded answer when replaying.
	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	var (
		armed, replay atomic.Bool
		mu            sync.Mutex
		recorded      *httptest.ResponseRecorder
		during        func()
	)
	isList := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/groups/"+g.String()+"/resources")
	}
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isList(r) {
			rp.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		rec := recorded
		mu.Unlock()
		if replay.Load() && rec != nil {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		if !armed.CompareAndSwap(true, false) {
			rp.ServeHTTP(w, r)
			return
		}
		rec = httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		during()
		mu.Lock()
		recorded = rec
		mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(ps.Close)
	viaProxy, err := clientlib.New(ps.URL, KeyStore(t, owner), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := viaProxy.List(ctx, g); err != nil {
		t.Fatal(err)
	}

	during = func() {
		if err := viaProxy.Delete(ctx, g, gone.ID); err != nil {
			t.Errorf("delete: %v", err)
		}
	}
	armed.Store(true)
	list, err := viaProxy.List(ctx, g)
	if err != nil {
		t.Fatalf("a listing sent before this device's own delete: %v", err)
	}
	if len(list) != 1 || list[0].ID != keep.ID {
		t.Fatalf("listing after the racing delete: %d resources, want only %s", len(list), keep.ID)
	}

	// Served again, now that the delete is done, the same listing hides it.
	replay.Store(true)
	if _, err := viaProxy.List(ctx, g); !coffer.IsSecurity(err) {
		t.Fatalf("the pre-delete listing served after the delete: %v, want a security error", err)
	}
}
