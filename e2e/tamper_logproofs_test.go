package e2e_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// A log proofs answer (POST /v1/log/proofs) comes in the compact encoding
// (api.LogProofsType) to clients that ask for it, which clientlib does,
// and in JSON to others. The tests that play a lying log alter it in
// either encoding: as clientlib asks (compact), and through a proxy that
// asks the server for JSON only, as a server that predates the compact
// encoding would answer.

// logProofsEncodings names the encodings a lying log is played in.
var logProofsEncodings = []string{"compact", "json"}

// acceptFor is the Accept a lying proxy sends for an encoding: the
// client's own for compact, JSON only for json.
func acceptFor(encoding string) string {
	if encoding == "json" {
		return "application/json"
	}
	return ""
}

// editLogProofs decodes a log proofs answer in whichever encoding it came,
// lets edit change it, and encodes it again the same way. It returns the
// encoding it edited, or "" (and body as it is) for a body that is neither
// (a problem) or an edit the compact encoding cannot carry.
func editLogProofs(body []byte, edit func(*api.LogProofs)) ([]byte, string) {
	if len(body) > 0 && body[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields() // a problem is not an answer
		var p api.LogProofs
		if dec.Decode(&p) != nil {
			return body, ""
		}
		edit(&p)
		out, err := json.Marshal(p)
		if err != nil {
			return body, ""
		}
		return out, "json"
	}
	p, err := api.ParseLogProofs(body, 1000)
	if err != nil {
		return body, ""
	}
	edit(&p)
	out, err := api.AppendLogProofs(nil, &p)
	if err != nil {
		return body, ""
	}
	return out, "compact"
}

// TestTamperCompactLogProofs: a server that answers a sync's proof
// requests in the compact encoding and breaks its framing (cut short,
// bytes after it, another version, more proofs than asked, a proof over
// the hash bound, unknown flags, a leaf length past the end) fails the
// sync with a security error, and the device saves no state for the
// group. The same device then syncs through the honest server.
func TestTamperCompactLogProofs(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, _ := newClient(t, srv, "alice", nil)
	bob, bobKS := newClient(t, srv, "bob", nil)
	g := mustGroup(t, alice, "proved", nil)
	mustAdd(t, alice, bob, g, coffer.RoleReader)
	for range 3 {
		if err := alice.Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	head, err := alice.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	identity, _ := bobKS.Get("identity")
	account, _ := bobKS.Get("account")

	// The answers are to a sync's requests for commits: the first proof's
	// flags are at byte 21 and its hash count after its group, seq,
	// version and index.
	const flags, hashCount = 1 + 8 + 3*4, 1 + 8 + 3*4 + 1 + 16 + 3*8
	cases := []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-7] }},
		{"trailing-bytes", func(b []byte) []byte { return append(b, 0, 0, 0) }},
		{"version-changed", func(b []byte) []byte { b[0] = 2; return b }},
		{"more-proofs-than-asked", func(b []byte) []byte {
			p, err := api.ParseLogProofs(b, 1000)
			if err != nil {
				t.Error(err)
				return b
			}
			p.Commits = append(p.Commits, p.Commits[0])
			out, err := api.AppendLogProofs(nil, &p)
			if err != nil {
				t.Error(err)
			}
			return out
		}},
		{"proof-over-bound", func(b []byte) []byte {
			b[hashCount] = api.MaxLogProofHashes + 1
			return slices.Insert(b, hashCount+1, make([]byte, 32*(api.MaxLogProofHashes+1))...)
		}},
		{"unknown-flags", func(b []byte) []byte { b[flags] |= 0x80; return b }},
		{"leaf-past-end", func(b []byte) []byte {
			n := int(b[hashCount])
			binary.BigEndian.PutUint32(b[hashCount+1+32*n:], 1<<20)
			return b
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var edited atomic.Int32
			proxyURL := lyingProxy(t, srv, func(r *http.Request, body []byte) []byte {
				if r.URL.Path != "/v1/log/proofs" {
					return body
				}
				p, err := api.ParseLogProofs(body, 1000)
				if err != nil {
					t.Errorf("the honest server's answer does not parse as %s: %v", api.LogProofsType, err)
					return body
				}
				if len(p.Commits) == 0 || !p.Commits[0].Included || p.Commits[0].Group == nil {
					return body // an identity's proof, or a commit not yet logged
				}
				edited.Add(1)
				return tc.edit(slices.Clone(body))
			})
			ks := clientlib.NewMemoryKeyStore()
			ks.Put("identity", identity)
			ks.Put("account", account)
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
				t.Fatalf("the proxy altered no proof answer (sync: %v)", err)
			}
			wantSecurity(t, err)
			if saved := storedGroupState(ks, g); saved != "" {
				t.Errorf("the device saved a group state from an altered answer")
			}
			if res, err := direct.Sync(ctx, g); err != nil || res.State.Seq != head.State.Seq {
				t.Fatalf("honest sync: %v", err)
			}
		})
	}
}
