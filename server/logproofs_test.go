package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/store"
)

// TestLogProofsCompact: a client that accepts api.LogProofsType gets the
// same proofs in the compact encoding, every field as in the JSON answer;
// any other client gets JSON. Both answers say Vary: Accept, and both are
// as docs/openapi.yaml documents them.
func TestLogProofsCompact(t *testing.T) {
	withLog := func(_ *server.Config, s *server.Services) { s.Log = s.Groups.(*store.DB) }
	w := newResourceWorldOn(t, MustServer(t, withResources(t, nil), withLog))
	id := w.mustResource(t, w.writer, bytes.Repeat([]byte("r"), 100))
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := translog.NewSigner("coffer.test", key)
	if err != nil {
		t.Fatal(err)
	}
	// The log was empty: the leaves integrated are the tree.
	n, err := w.ts.DB.IntegrateLog(context.Background(), signer, 1000)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(n)
	if size < 6 {
		t.Fatalf("the log holds %d leaves, want the 4 accounts, the genesis and the resource version", size)
	}
	req := api.LogProofsRequest{
		Size:     size,
		Commits:  []api.LogCommitRef{{Group: w.g, Seq: 1}, {Group: w.g, Seq: 99}},
		Accounts: []coffer.AccountID{w.owner.acct.ID, w.reader.acct.ID},
		Versions: []api.LogVersionRef{{Group: w.g, Resource: id, Version: 1}},
	}
	post := func(accept string) *response {
		t.Helper()
		r := w.ts.NewRequest(t, "POST", "/v1/log/proofs", req)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		// Status, media type and (for JSON) body as docs/openapi.yaml says.
		resp := w.exchange(t, r, "/v1/log/proofs", 200)
		if resp.Header.Get("Vary") != "Accept" {
			t.Errorf("Accept %q: Vary %q, want Accept", accept, resp.Header.Get("Vary"))
		}
		return resp
	}

	var fromJSON api.LogProofs
	jr := post("")
	if ct := jr.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("no Accept: Content-Type %q", ct)
	}
	if err := json.Unmarshal(jr.Body, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if len(fromJSON.Commits) != 2 || !fromJSON.Commits[0].Included || fromJSON.Commits[1].Included ||
		len(fromJSON.Accounts) != 2 || len(fromJSON.Versions) != 1 || len(fromJSON.Versions[0].Leaf) == 0 {
		t.Fatalf("the JSON answer is not the one asked for: %+v", fromJSON)
	}
	want, err := api.AppendLogProofs(nil, &fromJSON)
	if err != nil {
		t.Fatal(err)
	}
	for _, accept := range []string{api.LogProofsType, "application/json;q=0.5, " + api.LogProofsType} {
		r := post(accept)
		if ct := r.Header.Get("Content-Type"); ct != api.LogProofsType {
			t.Fatalf("Accept %q: Content-Type %q", accept, ct)
		}
		got, err := api.ParseLogProofs(r.Body, 5)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Body, want) {
			t.Errorf("Accept %q: the compact answer differs from the JSON answer's encoding", accept)
		}
		p := got.Commits[0]
		if p.Group == nil || *p.Group != w.g || p.Seq != 1 || !p.Included || len(p.Proof) == 0 {
			t.Errorf("the compact proof of the genesis is %+v", p)
		}
	}
	for _, accept := range []string{api.LogProofsType + ";q=0, application/json", "application/json"} {
		if ct := post(accept).Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Accept %q: Content-Type %q, want JSON", accept, ct)
		}
	}
}
