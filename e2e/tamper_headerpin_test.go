package e2e_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// TestTamperVersionIsItsHeader: the server serves, at a version a device
// already verified, another header that the author validly signed (the
// author re-signed it, or a second device or a stolen key did). Every
// signature check passes and the version did not go back; only the pin of
// the version to the header this device verified catches it, and it must
// survive a restart of the client.
func TestTamperVersionIsItsHeader(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, aliceKS := newClient(t, srv, "alice", nil)
	bob, bobKS := newClient(t, srv, "bob", nil)
	mustVerify(t, alice, bob)
	g := mustGroup(t, alice, "g", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	db := mustDB(t, srv)

	data := randomContent(t, 70_000)
	r := mustPut(t, alice, g, "doc", data)
	if got := mustReadResource(t, bob, g, r.ID); string(got) != string(data) {
		t.Fatal("honest read differs")
	}
	// bob's own write, replaced once: his pins cover both versions.
	own := mustPut(t, bob, g, "own", randomContent(t, 10))
	if _, err := bob.Replace(ctx, g, own.ID, 1, bytes.NewReader(randomContent(t, 20)), clientlib.Meta{Name: "own"}, nil); err != nil {
		t.Fatal(err)
	}

	// A restart: new clients on the same key stores.
	restart := func(ks clientlib.KeyStore) *clientlib.Client {
		c, err := clientlib.New(srv.URL(), ks, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := restart(bobKS).Head(ctx, g, r.ID); err != nil {
		t.Fatalf("an honest re-read after a restart: %v", err)
	}

	resign := func(id coffer.ResourceID, change func(h *coffer.ResourceHeader)) {
		t.Helper()
		var body []byte
		var author coffer.AccountID
		if err := db.QueryRow(ctx, `SELECT header, author_id FROM resources WHERE id = $1`, id).Scan(&body, &author); err != nil {
			t.Fatal(err)
		}
		h, err := coffer.ParseResourceHeader(body)
		if err != nil {
			t.Fatal(err)
		}
		change(h)
		key := signingKeyOf(t, aliceKS)
		if author == bob.AccountID() {
			key = signingKeyOf(t, bobKS)
		}
		sh := coffer.SignResourceHeader(h, key)
		mustExec(t, db, `UPDATE resources SET header = $2, header_signature = $3 WHERE id = $1`, id, sh.Body, sh.Signature)
	}

	// Same content and metadata, another signing time: a second header
	// for version 1.
	resign(r.ID, func(h *coffer.ResourceHeader) { h.Created++ })
	for name, c := range map[string]*clientlib.Client{"reader": restart(bobKS), "author": restart(aliceKS)} {
		_, err := c.Head(ctx, g, r.ID)
		wantSecurity(t, err)
		_, err = readResource(c, g, r.ID)
		wantSecurity(t, err)
		_, err = c.List(ctx, g)
		wantSecurity(t, err)
		t.Logf("%s refused the second header", name)
	}
	// A device that never verified version 1 has no pin to compare with,
	// but the log holds the first header as version 1: it refuses too.
	carol, _ := newClient(t, srv, "carol", nil)
	mustVerify(t, alice, carol)
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	_, err := carol.Head(ctx, g, r.ID)
	wantSecurity(t, err)

	// bob's own version 2, re-signed by him with another chunk tree root
	// claim: his own write pinned it.
	resign(own.ID, func(h *coffer.ResourceHeader) { h.TreeRoot[0] ^= 1 })
	_, err = restart(bobKS).Head(ctx, g, own.ID)
	wantSecurity(t, err)
}
