package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// The replace rule on the reader's side: a version after the first is by
// the author of the version it replaces, or by an admin. A writer who
// replaces another writer's resource with the server's help, the version
// signed, chained to the right version and logged, is refused by every
// reader, including one that never saw the version replaced; and the
// server cannot make the earlier version look like the writer's own.

func TestResourceLogReplacedByAnotherWriter(t *testing.T) {
	ctx := context.Background()
	f := newResourceTamper(t)
	hold := f.held()
	dave, daveKS := newClient(t, f.srv, "dave", nil)
	mustAdd(t, f.alice, dave, f.g, coffer.RoleWriter)
	erin, erinKS := newClient(t, f.srv, "erin", nil)
	mustAdd(t, f.alice, erin, f.g, coffer.RoleReader)
	epoch := mustEpoch(t, dave, f.g)
	k := hold.epochKeyAt(t, daveKS, dave.AccountID(), epoch)

	// What the rule allows reads: a writer replacing their own version,
	// and an admin replacing a writer's.
	own := mustPut(t, dave, f.g, "own.bin", []byte("dave's one"))
	if _, err := dave.Replace(ctx, f.g, own.ID, 1, strings.NewReader("dave's two"), clientlib.Meta{Name: "own.bin"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustReadResource(t, erin, f.g, own.ID); string(got) != "dave's two" {
		t.Fatalf("dave's own replace reads %q", got)
	}
	if _, err := f.alice.Replace(ctx, f.g, f.b.ID, 1, strings.NewReader("alice's b"), clientlib.Meta{Name: "b.bin"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustReadResource(t, erin, f.g, f.b.ID); string(got) != "alice's b" {
		t.Fatalf("the admin's replace reads %q", got)
	}

	// dave, a writer, replaces bob's resource a with the server's help:
	// signed by dave, under the current epoch, chained to bob's version 1,
	// stored and logged as the server would an honest replace.
	v1 := hold.saveRow(t, f.a.ID)
	forged, h := hold.signedVersion(t, f.a.ID, 2, epoch, coffer.HeaderHash(v1.header), dave.AccountID(), signingKeyOf(t, daveKS), k,
		[]byte("dave's words in bob's resource"))
	hold.restoreRow(t, f.a.ID, forged)
	hold.logLeaf(t, h, forged.header)
	// alice read version 1 (her pin chains to it); carol and erin never
	// did.
	for name, c := range map[string]*clientlib.Client{"alice": f.alice, "carol": f.carol, "erin": erin} {
		_, err := readResource(c, f.g, f.a.ID)
		if err == nil {
			t.Fatalf("%s accepted a writer's replace of another writer's resource", name)
		}
		wantCheck(t, err, "header")
	}

	// The server lies about version 1's leaf, each way a reader must not
	// take for the writer's own version, in either encoding of the proofs.
	var ownLeaf []byte
	var ownIndex int64
	if err := f.db.QueryRow(ctx, `SELECT leaf, leaf_index FROM log_entries WHERE resource_id = $1 AND leaf_index IS NOT NULL ORDER BY leaf_index LIMIT 1`,
		own.ID).Scan(&ownLeaf, &ownIndex); err != nil {
		t.Fatal(err)
	}
	lies := []struct {
		name string
		edit func(p *api.LogProof)
	}{
		{"not in the log", func(p *api.LogProof) { p.Included, p.Proof = false, nil }},
		{"leaf naming dave as its author", func(p *api.LogProof) {
			l, err := translog.ParseLeaf(p.Leaf)
			if err != nil {
				t.Error(err)
				return
			}
			v := l.Version
			v.Author = dave.AccountID()
			p.Leaf = translog.ResourceVersionLeaf(v)
		}},
		{"dave's leaf of another resource", func(p *api.LogProof) { p.Leaf, p.Index = ownLeaf, ownIndex }},
		{"logged after its successor", func(p *api.LogProof) { p.Index += 1 << 20 }},
		{"an answer for another version", func(p *api.LogProof) { p.Version = 2 }},
		{"no proof", func(p *api.LogProof) { p.Proof = nil }},
	}
	for _, enc := range logProofsEncodings {
		for _, lie := range lies {
			t.Run(enc+"/"+lie.name, func(t *testing.T) {
				var edited atomic.Int32
				proxy := lyingProxyAccepting(t, f.srv, acceptFor(enc), func(r *http.Request, body []byte) []byte {
					if r.Method != http.MethodPost || r.URL.Path != "/v1/log/proofs" {
						return body
					}
					out, got := editLogProofs(body, func(resp *api.LogProofs) {
						if len(resp.Versions) == 1 {
							lie.edit(&resp.Versions[0])
							edited.Add(1)
						}
					})
					if got != enc {
						t.Errorf("a proof answer in %q, want %s", got, enc)
					}
					return out
				})
				c, err := clientlib.New(proxy, erinKS, nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readResource(c, f.g, f.a.ID)
				if err == nil {
					t.Fatalf("read %q through the lie", got)
				}
				wantSecurity(t, err)
				if edited.Load() == 0 {
					t.Fatalf("the reader never asked for version 1's leaf: %v", err)
				}
			})
		}
	}
}
