package e2e_test

import (
	"context"
	"fmt"
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

// refusalProxy forwards to the server, except what its mode says.
type refusalProxy struct {
	mode string
	// outage is set once the proxy served a checkpoint in an outage mode:
	// from then on nothing gets through.
	outage atomic.Bool
}

func writeProblem(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"about:blank","title":"x","status":%d,"code":%q,"detail":"try later"}`, status, code)
}

func (p *refusalProxy) handler(srv *Server) http.Handler {
	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		consistency := strings.HasPrefix(r.URL.Path, "/v1/log/proof/consistency")
		if p.outage.Load() {
			switch p.mode {
			case "outage-503":
				writeProblem(w, http.StatusServiceUnavailable, "unavailable")
			case "outage-502-plain":
				http.Error(w, "bad gateway", http.StatusBadGateway)
			case "outage-no-connection":
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
			}
			return
		}
		switch {
		case strings.HasPrefix(p.mode, "outage") && r.URL.Path == "/v1/log/checkpoint":
			rp.ServeHTTP(w, r)
			p.outage.Store(true)
			return
		case !consistency:
		case p.mode == "refuse-503":
			writeProblem(w, http.StatusServiceUnavailable, "unavailable")
			return
		case p.mode == "refuse-500":
			writeProblem(w, http.StatusInternalServerError, "internal")
			return
		case p.mode == "refuse-429":
			writeProblem(w, http.StatusTooManyRequests, "rate_limited")
			return
		case p.mode == "refuse-404":
			writeProblem(w, http.StatusNotFound, "not_found")
			return
		case p.mode == "refuse-garbage":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, "{no proof")
			return
		case p.mode == "refuse-hangup":
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	})
}

// TestLogConsistencyRefusal: bob holds a checkpoint; the log grows; through
// a lying proxy, bob sees the larger checkpoint (signed by the pinned key)
// but the proof that it extends his is refused. While the server answers
// bob's other requests, that is a security error; while nothing gets
// through, it is "unavailable". Either way the larger checkpoint is not
// adopted.
func TestLogConsistencyRefusal(t *testing.T) {
	t.Parallel() // mostly waiting out retry backoffs, on a server of its own
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	bob, bobKS := newClient(t, srv, "bob", nil)
	mustVerify(t, alice, bob)
	g := mustGroup(t, alice, "g", nil)
	mustAdd(t, alice, bob, g, coffer.RoleReader)
	if _, err := bob.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	before, err := bob.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	// The log grows past bob's checkpoint.
	for range 3 {
		if err := alice.Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	MustClient(t, srv, "carol")

	via := func(p *refusalProxy) *clientlib.Client {
		ps := httptest.NewServer(p.handler(srv))
		t.Cleanup(ps.Close)
		c, err := clientlib.New(ps.URL, bobKS, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	notAdopted := func(t *testing.T) {
		t.Helper()
		if got, _ := bobKS.Get("log/checkpoint"); string(got) != before {
			t.Fatal("the unproven checkpoint was adopted")
		}
	}
	for _, mode := range []string{"refuse-503", "refuse-500", "refuse-429", "refuse-404", "refuse-garbage", "refuse-hangup"} {
		t.Run(mode, func(t *testing.T) {
			c := via(&refusalProxy{mode: mode})
			_, err := c.Sync(ctx, g)
			wantSecurity(t, err)
			notAdopted(t)
			// The same through a checkpoint exchange.
			err = c.CheckCheckpoint(ctx, before)
			wantSecurity(t, err)
			notAdopted(t)
		})
	}
	for _, mode := range []string{"outage-503", "outage-502-plain", "outage-no-connection"} {
		t.Run(mode, func(t *testing.T) {
			c := via(&refusalProxy{mode: mode})
			_, err := c.Sync(ctx, g)
			if coffer.IsSecurity(err) {
				t.Fatalf("an outage reported as an attack: %v", err)
			}
			wantCode(t, err, coffer.EUNAVAILABLE)
			notAdopted(t)
		})
	}
	// The server recovers and proves it: the larger checkpoint is adopted.
	c := via(&refusalProxy{mode: "honest"})
	if _, err := c.Sync(ctx, g); err != nil {
		t.Fatalf("honest sync after the refusals: %v", err)
	}
	if got, _ := bobKS.Get("log/checkpoint"); string(got) == before {
		t.Fatal("the proven larger checkpoint was not adopted")
	}
}
