package e2e_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// inclusionProxy forwards to the server, but after it forwarded a write (a
// registration, a group creation, a commit) it lies about the log proofs
// the writer then asks for, until the next request that is not about the
// log. It asks the server for the proofs with accept, when not empty, in
// place of the client's Accept, and records the encodings it lied in.
type inclusionProxy struct {
	mode   string
	accept string
	armed  atomic.Bool
	seen   sync.Map // encoding → true
}

func isWrite(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	p := strings.TrimRight(r.URL.Path, "/")
	return p == "/v1/accounts" || p == "/v1/groups" || (strings.HasPrefix(p, "/v1/groups/") && strings.HasSuffix(p, "/commits"))
}

func (p *inclusionProxy) handler(srv *Server) http.Handler {
	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		if r.URL.Path != "/v1/log/proofs" || !p.armed.Load() || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		body, encoding := editLogProofs(body, func(proofs *api.LogProofs) {
			for _, list := range [][]api.LogProof{proofs.Commits, proofs.Accounts} {
				for i := range list {
					p.lie(&list[i])
				}
			}
		})
		if encoding != "" {
			p.seen.Store(encoding, true)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/log/") {
			p.armed.Store(false)
		}
		if p.armed.Load() && p.mode == "proofs-503" && r.URL.Path == "/v1/log/proofs" {
			writeProblem(w, http.StatusServiceUnavailable, "unavailable")
			return
		}
		if p.accept != "" {
			r.Header.Set("Accept", p.accept)
		}
		rp.ServeHTTP(w, r)
		if isWrite(r) {
			p.armed.Store(true)
		}
	})
}

func (p *inclusionProxy) lie(lp *api.LogProof) {
	switch p.mode {
	case "drop":
		lp.Included, lp.Index, lp.Proof = false, 0, nil
	case "forge-proof":
		if len(lp.Proof) == 0 {
			lp.Proof = [][]byte{make([]byte, 32)}
		} else {
			lp.Proof[0][0] ^= 1
		}
	case "wrong-index":
		lp.Index ^= 1
	case "wrong-object":
		if lp.Group != nil {
			lp.Seq++
		} else {
			other := coffer.NewAccountID()
			lp.Account = &other
		}
	}
}

// TestTamperOwnWritesProven: a commit or a registration is reported done
// only after the author proved its inclusion in the log. A proxy that
// drops the inclusion, forges its proof, proves another position or
// another object, or refuses the proofs must turn the write into a
// security error or a retryable error, never success.
func TestTamperOwnWritesProven(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, aliceKS := newClient(t, srv, "alice", nil)
	g := mustGroup(t, alice, "g", nil)
	modes := []string{"drop", "forge-proof", "wrong-index", "wrong-object", "proofs-503"}
	members := map[string]*clientlib.Client{}
	for _, enc := range logProofsEncodings {
		for _, m := range append(modes, "honest") {
			members[enc+"/"+m] = MustClient(t, srv, "member"+strconv.Itoa(len(members)))
			mustVerify(t, alice, members[enc+"/"+m])
		}
	}
	opts := &clientlib.Options{LogWait: 700 * time.Millisecond}
	via := func(mode, enc string, ks clientlib.KeyStore) (*clientlib.Client, *inclusionProxy) {
		p := &inclusionProxy{mode: mode, accept: acceptFor(enc)}
		ps := httptest.NewServer(p.handler(srv))
		t.Cleanup(ps.Close)
		c, err := clientlib.New(ps.URL, ks, opts)
		if err != nil {
			t.Fatal(err)
		}
		return c, p
	}
	want := func(t *testing.T, mode, what string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Fatalf("%s: reported done although the proxy (%s) kept its inclusion unproven", what, mode)
		case mode == "drop" || mode == "proofs-503":
			wantCode(t, err, coffer.EUNAVAILABLE)
		default:
			wantSecurity(t, err)
		}
	}
	// lied checks that the proxy rewrote answers in the encoding the
	// subtest is about: else it proved nothing about that decoder.
	lied := func(t *testing.T, p *inclusionProxy, mode, enc string) {
		t.Helper()
		if _, ok := p.seen.Load(enc); !ok && mode != "proofs-503" {
			t.Errorf("the proxy rewrote no answer in %s", enc)
		}
	}
	newcomers := 0
	for _, enc := range logProofsEncodings {
		for _, mode := range modes {
			t.Run(enc+"/"+mode, func(t *testing.T) {
				c, p := via(mode, enc, aliceKS)
				_, err := c.CreateGroup(ctx, "new", nil)
				want(t, mode, "create group", err)
				err = c.AddMember(ctx, g, string(members[enc+"/"+mode].Identity().Handle()), coffer.RoleReader)
				want(t, mode, "add member", err)
				err = c.Rotate(ctx, g)
				want(t, mode, "rotate", err)
				lied(t, p, mode, enc)
				// A registration through the proxy: it is refused before the
				// client logs in (which the origin check would stop anyway).
				newcomers++
				newcomer, p := via(mode, enc, clientlib.NewMemoryKeyStore())
				err = newcomer.Register(ctx, "newcomer"+strconv.Itoa(newcomers))
				want(t, mode, "register", err)
				lied(t, p, mode, enc)
				// The server did append: an honest sync proves and accepts it.
				if _, err := alice.Sync(ctx, g); err != nil {
					t.Fatalf("honest sync after the write: %v", err)
				}
			})
		}
		t.Run(enc+"/honest", func(t *testing.T) {
			c, p := via("honest", enc, aliceKS)
			if _, err := c.CreateGroup(ctx, "new", nil); err != nil {
				t.Fatal(err)
			}
			if err := c.AddMember(ctx, g, string(members[enc+"/honest"].Identity().Handle()), coffer.RoleReader); err != nil {
				t.Fatal(err)
			}
			if err := c.Rotate(ctx, g); err != nil {
				t.Fatal(err)
			}
			lied(t, p, "honest", enc)
		})
	}
}
