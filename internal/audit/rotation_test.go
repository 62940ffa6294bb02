package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferdtest"
)

// TestDBResourcesAcrossRotations: a suite v2 account writes resources
// before and after rotating its user key (which self-updates its entry in
// every group). coffer-audit db holds each header to the key the author
// had in the group at the header's epoch, so the honest database is clean;
// a header re-signed by the retired key at an epoch after the self-update,
// or by the new key at an epoch before it, is a finding. Commit leaves
// whose rows are gone verify under the key the account had then.
func TestDBResourcesAcrossRotations(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	ctx := context.Background()
	var (
		mu    sync.Mutex
		seeds [][]byte
	)
	alice, err := clientlib.New(srv.URL(), clientlib.NewMemoryKeyStore(), &clientlib.Options{LogKey: srv.LogKey(),
		SecretObserver: func(kind string, s []byte) {
			if kind == "user-key-seed" {
				mu.Lock()
				seeds = append(seeds, bytes.Clone(s))
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateAccount(ctx, "alice", "laptop"); err != nil {
		t.Fatal(err)
	}
	g, err := alice.CreateGroup(ctx, "kept", nil)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := alice.CreateGroup(ctx, "gone", nil)
	if err != nil {
		t.Fatal(err)
	}
	before, err := alice.Put(ctx, g, strings.NewReader("before the rotation"), clientlib.Meta{Name: "before"})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.RotateUserKey(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := alice.Put(ctx, g, strings.NewReader("after the rotation"), clientlib.Meta{Name: "after"})
	if err != nil {
		t.Fatal(err)
	}
	if after.Epoch <= before.Epoch {
		t.Fatalf("epochs %d then %d: the rotation did not self-update the group", before.Epoch, after.Epoch)
	}
	waitLogged(t, srv)
	if r := mustAudit(t, srv); !r.Clean {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("coffer-audit db after a rotation is not clean:\n%s", b.String())
	}

	mu.Lock()
	if len(seeds) != 2 {
		t.Fatalf("%d user keys observed, want 2", len(seeds))
	}
	oldKey, err := coffer.UserSigningKeyFromSeed(seeds[0])
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := coffer.UserSigningKeyFromSeed(seeds[1])
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	db := mustConn(t, srv.DatabaseURL)
	resign := func(t *testing.T, id coffer.ResourceID, key ed25519.PrivateKey) (restore func()) {
		t.Helper()
		var header, sig []byte
		if err := db.QueryRow(ctx, `SELECT header, header_signature FROM resources WHERE id = $1`, id).Scan(&header, &sig); err != nil {
			t.Fatal(err)
		}
		forged := coffer.Sign(key, coffer.LabelResourceHeader, header)
		if _, err := db.Exec(ctx, `UPDATE resources SET header_signature = $2 WHERE id = $1`, id, forged); err != nil {
			t.Fatal(err)
		}
		return func() {
			if _, err := db.Exec(ctx, `UPDATE resources SET header_signature = $2 WHERE id = $1`, id, sig); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tt := range []struct {
		name string
		id   coffer.ResourceID
		key  ed25519.PrivateKey
	}{
		{"retired key after the self-update", after.ID, oldKey.Ed25519PrivateKey()},
		{"new key before the self-update", before.ID, newKey.Ed25519PrivateKey()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer resign(t, tt.id, tt.key)()
			wantFinding(t, mustAudit(t, srv), "resource", "header signature does not verify")
		})
	}

	// The group's rows go (what a server that drops a group leaves): its
	// commit leaves, signed with the key before the rotation, stay in the
	// log and still verify.
	if _, err := db.Exec(ctx, `DELETE FROM groups WHERE id = $1`, gone); err != nil {
		t.Fatal(err)
	}
	r := mustAudit(t, srv)
	for _, f := range r.Findings {
		if strings.Contains(f.Message, "commit signature does not verify") {
			t.Errorf("finding for a commit leaf signed with the account's key at the time: %s %s", f.Object, f.Message)
		}
	}
	if r.Stats["log_leaves"] == 0 {
		t.Fatal("checked no log leaves")
	}
}
