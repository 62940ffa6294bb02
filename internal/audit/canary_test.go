package audit_test

import (
	"context"
	"os"
	"testing"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/cofferdtest"
)

// TestCanaryFindsNoSecret runs the canary's workload (three clients, a
// group, resources, a rotation, a removal) against a real server, then
// searches the database dump, the blob store and the server log for every
// secret the clients made: there must be none. The same database then
// passes the db audit.
func TestCanaryFindsNoSecret(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	r, err := audit.Canary(context.Background(), audit.CanaryOptions{
		Server: srv.URL(), DatabaseURL: srv.DatabaseURL, DataDir: srv.DataDir, LogKey: srv.LogKey(),
	})
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, r)
	for _, stat := range []string{"secrets_epoch-key", "secrets_file-key", "secrets_identity-signing-seed",
		"secrets_identity-encryption-seed", "secrets_refresh-token", "secrets_plaintext-resource-content"} {
		if r.Stats[stat] == 0 {
			t.Errorf("the canary searched for no %s", stat)
		}
	}
	if r.Stats["secrets_file-key"] < 3 {
		t.Errorf("recovered %d file keys for 3 resources", r.Stats["secrets_file-key"])
	}
	if r.Stats["files_searched"] < 3 {
		t.Errorf("searched only %d files", r.Stats["files_searched"])
	}
	if fi, err := os.Stat(srv.DataDir + "/cofferd.log"); err != nil || fi.Size() == 0 {
		t.Fatalf("the server log was not written: %v", err)
	}
	waitLogged(t, srv)
	wantClean(t, mustAudit(t, srv))
}
