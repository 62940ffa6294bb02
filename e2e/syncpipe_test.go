package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// TestSyncPipelineRefusesOneForgedProof: a sync of several pages proves
// each page's commits in the log while it verifies the next pages. A
// forged inclusion proof for a single commit, on the first, a middle or the
// last page, still fails the whole sync with a security error, and the
// device saves no state for the group: in the compact encoding of the
// proofs and in JSON.
func TestSyncPipelineRefusesOneForgedProof(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	owner, ks := newClient(t, srv, "owner", nil)
	g := mustGroup(t, owner, "long", nil)
	mustLongHistory(t, srv, owner, ks, g, 2600)
	identity, _ := ks.Get("identity")
	account, _ := ks.Get("account")

	for _, enc := range logProofsEncodings {
		for _, seq := range []uint64{7, 1500, 2600} {
			t.Run(fmt.Sprint(enc, "/seq-", seq), func(t *testing.T) {
				var forged atomic.Int32
				proxyURL := lyingProxyAccepting(t, srv, acceptFor(enc), func(r *http.Request, body []byte) []byte {
					if r.URL.Path != "/v1/log/proofs" {
						return body
					}
					out, got := editLogProofs(body, func(proofs *api.LogProofs) {
						for i, p := range proofs.Commits {
							if p.Seq == seq && len(p.Proof) > 0 {
								proofs.Commits[i].Proof[0] = bytes.Clone(p.Proof[0])
								proofs.Commits[i].Proof[0][3] ^= 0x10
								forged.Add(1)
							}
						}
					})
					if got != enc {
						t.Errorf("a proof answer in %q, want %s", got, enc)
					}
					return out
				})
				dev := clientlib.NewMemoryKeyStore()
				dev.Put("identity", identity)
				dev.Put("account", account)
				direct, err := clientlib.New(srv.URL(), dev, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := direct.Login(ctx); err != nil {
					t.Fatal(err)
				}
				c, err := clientlib.New(proxyURL, dev, nil)
				if err != nil {
					t.Fatal(err)
				}
				_, err = c.Sync(ctx, g)
				if forged.Load() == 0 {
					t.Fatalf("the proxy forged no proof for commit %d (sync: %v)", seq, err)
				}
				wantSecurity(t, err)
				if saved := storedGroupState(dev, g); saved != "" {
					t.Errorf("the device saved a group state despite a forged proof")
				}
				// The same device, through the honest server, syncs.
				if res, err := direct.Sync(ctx, g); err != nil || res.State.Seq != 2600 {
					t.Fatalf("honest sync: %v", err)
				}
			})
		}
	}
}
