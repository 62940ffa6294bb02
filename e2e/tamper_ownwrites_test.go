package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
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
// log.
type inclusionProxy struct {
	mode  string
	armed atomic.Bool
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
		var proofs api.LogProofs
		if err := json.Unmarshal(body, &proofs); err == nil {
			for _, list := range [][]api.LogProof{proofs.Commits, proofs.Accounts} {
				for i := range list {
					p.lie(&list[i])
				}
			}
			body, _ = json.Marshal(proofs)
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
	for i, m := range append(modes, "honest") {
		members[m] = MustClient(t, srv, "member"+strconv.Itoa(i))
		mustVerify(t, alice, members[m])
	}
	opts := &clientlib.Options{LogWait: 700 * time.Millisecond}
	via := func(mode string, ks clientlib.KeyStore) *clientlib.Client {
		ps := httptest.NewServer((&inclusionProxy{mode: mode}).handler(srv))
		t.Cleanup(ps.Close)
		c, err := clientlib.New(ps.URL, ks, opts)
		if err != nil {
			t.Fatal(err)
		}
		return c
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
	for i, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := via(mode, aliceKS)
			_, err := c.CreateGroup(ctx, "new", nil)
			want(t, mode, "create group", err)
			err = c.AddMember(ctx, g, string(members[mode].Identity().Handle()), coffer.RoleReader)
			want(t, mode, "add member", err)
			err = c.Rotate(ctx, g)
			want(t, mode, "rotate", err)
			// A registration through the proxy: it is refused before the
			// client logs in (which the origin check would stop anyway).
			newcomer := via(mode, clientlib.NewMemoryKeyStore())
			err = newcomer.Register(ctx, "newcomer"+strconv.Itoa(i))
			want(t, mode, "register", err)
			// The server did append: an honest sync proves and accepts it.
			if _, err := alice.Sync(ctx, g); err != nil {
				t.Fatalf("honest sync after the write: %v", err)
			}
		})
	}
	t.Run("honest", func(t *testing.T) {
		c := via("honest", aliceKS)
		if _, err := c.CreateGroup(ctx, "new", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.AddMember(ctx, g, string(members["honest"].Identity().Handle()), coffer.RoleReader); err != nil {
			t.Fatal(err)
		}
		if err := c.Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
	})
}
