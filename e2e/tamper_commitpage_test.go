package e2e_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// TestTamperCompactCommitPage: a server that answers a sync with a commit
// page in the compact encoding (api.CommitPageType) and alters it, in the
// commits or in the framing, is refused as from JSON: nothing is trusted,
// and the device's verified state does not move.
func TestTamperCompactCommitPage(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, _ := newClient(t, srv, "alice", nil)
	bob, bobKS := newClient(t, srv, "bob", nil)
	g := mustGroup(t, alice, "paged", nil)
	mustAdd(t, alice, bob, g, coffer.RoleReader)
	for range 4 {
		if err := alice.Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	identity, _ := bobKS.Get("identity")
	account, _ := bobKS.Get("account")

	type edit func(page []coffer.SignedCommit) []byte
	enc := func(page []coffer.SignedCommit) []byte { return api.AppendCommitPage(nil, page) }
	cases := []struct {
		name     string
		edit     edit
		security bool // else any error will do: the bytes do not decode
	}{
		{"signature-flipped", func(p []coffer.SignedCommit) []byte {
			p[2].Signature = slices.Clone(p[2].Signature)
			p[2].Signature[10] ^= 1
			return enc(p)
		}, true},
		{"body-flipped", func(p []coffer.SignedCommit) []byte {
			p[3].Body = slices.Clone(p[3].Body)
			p[3].Body[len(p[3].Body)-40] ^= 1
			return enc(p)
		}, true},
		{"commit-dropped", func(p []coffer.SignedCommit) []byte { return enc(slices.Delete(p, 2, 3)) }, true},
		{"commit-repeated", func(p []coffer.SignedCommit) []byte { return enc(slices.Insert(p, 2, p[2])) }, true},
		{"commits-swapped", func(p []coffer.SignedCommit) []byte { p[1], p[2] = p[2], p[1]; return enc(p) }, true},
		{"tail-withheld", func(p []coffer.SignedCommit) []byte { return enc(p[:len(p)-1]) }, true},
		{"over-long-page", func(p []coffer.SignedCommit) []byte {
			for len(p) <= 1000 {
				p = append(p, p[len(p)-1])
			}
			return enc(p)
		}, true},
		{"truncated", func(p []coffer.SignedCommit) []byte { b := enc(p); return b[:len(b)-7] }, false},
		{"trailing-bytes", func(p []coffer.SignedCommit) []byte { return append(enc(p), 0, 0, 0) }, false},
		{"version-changed", func(p []coffer.SignedCommit) []byte { b := enc(p); b[0] = 2; return b }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var edited atomic.Int32
			proxyURL := lyingProxy(t, srv, func(r *http.Request, body []byte) []byte {
				if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/commits") {
					return body
				}
				page, err := api.ParseCommitPage(body, 1000)
				if err != nil {
					t.Errorf("the honest server's page does not parse as %s: %v", api.CommitPageType, err)
					return body
				}
				edited.Add(1)
				return tc.edit(page)
			})
			ks := clientlib.NewMemoryKeyStore()
			ks.Put("identity", identity)
			ks.Put("account", account)
			// A new device of bob's with no group state: it logs in at
			// the server, then its refresh token logs it in through the
			// proxy.
			direct, err := clientlib.New(srv.URL(), ks, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := direct.Login(ctx); err != nil {
				t.Fatal(err)
			}
			c, err := clientlib.New(proxyURL, ks, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Sync(ctx, g)
			if edited.Load() == 0 {
				t.Fatal("the proxy saw no commit page")
			}
			if err == nil {
				t.Fatal("a sync through an altered commit page succeeded")
			}
			if tc.security {
				wantSecurity(t, err)
			}
			if saved := storedGroupState(ks, g); saved != "" {
				t.Errorf("the device saved a group state from an altered page")
			}
		})
	}
}
