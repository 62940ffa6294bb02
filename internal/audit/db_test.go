package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// story runs the membership story of the e2e tests against srv: three
// people, a group, adds, a rotation, a removal, and a second group without
// history sharing. It returns when the log has integrated everything.
func story(t *testing.T, srv *cofferdtest.Server) {
	t.Helper()
	ctx := context.Background()
	var cs []*clientlib.Client
	for _, h := range []string{"alice", "bob", "carol"} {
		c, err := clientlib.New(srv.URL(), clientlib.NewMemoryKeyStore(), &clientlib.Options{LogKey: srv.LogKey()})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(ctx, h); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	alice, bob, carol := cs[0], cs[1], cs[2]
	for _, c := range cs[1:] {
		if _, err := alice.Verify(ctx, string(c.Identity().Handle()), c.Identity().SafetyNumber()); err != nil {
			t.Fatal(err)
		}
	}
	g, err := alice.CreateGroup(ctx, "project x", &clientlib.GroupOptions{Description: "the plan"})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(alice.AddMember(ctx, g, "bob", coffer.RoleWriter))
	must(alice.AddMember(ctx, g, "carol", coffer.RoleReader))
	must(alice.Rotate(ctx, g))
	must(alice.RemoveMember(ctx, g, "bob"))
	_, err = carol.Sync(ctx, g)
	must(err)
	_, err = bob.Sync(ctx, g)
	if coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("removed member syncs: %v", err)
	}
	private, err := alice.CreateGroup(ctx, "no history", &clientlib.GroupOptions{NoHistory: true})
	must(err)
	must(alice.AddMember(ctx, private, "carol", coffer.RoleAdmin))
	must(alice.Rotate(ctx, private))
	_, err = carol.Group(ctx, private)
	must(err)
	waitLogged(t, srv)
}

// waitLogged waits until the sequencer has integrated every pending leaf.
func waitLogged(t *testing.T, srv *cofferdtest.Server) {
	t.Helper()
	db := mustConn(t, srv.DatabaseURL)
	for range 500 {
		var n int
		if err := db.QueryRow(context.Background(), `SELECT count(*) FROM log_entries WHERE leaf_index IS NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the log did not integrate its pending leaves")
}

func mustConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustAudit(t *testing.T, srv *cofferdtest.Server) *audit.Report {
	t.Helper()
	r, err := audit.DB(context.Background(), srv.DatabaseURL, audit.DBOptions{LogKey: srv.LogKey()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDBCleanAfterStory(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	story(t, srv)
	r := mustAudit(t, srv)
	if !r.Clean {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("audit of an honest database is not clean:\n%s", b.String())
	}
	for _, stat := range []string{"accounts", "groups", "commits", "wrapped_keys", "history_links", "log_leaves", "metadata_ciphertexts", "group_state_accounts"} {
		if r.Stats[stat] == 0 {
			t.Errorf("checked no %s", stat)
		}
	}
	if r.Stats["log_leaves"] != r.Stats["accounts"]+r.Stats["commits"] {
		t.Errorf("log has %d leaves for %d accounts and %d commits", r.Stats["log_leaves"], r.Stats["accounts"], r.Stats["commits"])
	}
}

// TestDBPlantedViolations plants each violation the audit must catch into
// an honest database and requires a finding that names it.
func TestDBPlantedViolations(t *testing.T) {
	tests := []struct {
		name  string
		plant []string
		// want must appear in one finding's object or message.
		want, check string
	}{
		{
			name:  "extra group_key column",
			plant: []string{`ALTER TABLE groups ADD COLUMN group_key bytea`},
			check: "schema", want: "groups.group_key",
		},
		{
			name:  "unknown table",
			plant: []string{`CREATE TABLE escrow (account_id uuid, private_key bytea)`},
			check: "schema", want: "table escrow",
		},
		{
			name: "wrapped key of the wrong size",
			plant: []string{
				`ALTER TABLE wrapped_keys DROP CONSTRAINT wrapped_keys_wrap_check`,
				`UPDATE wrapped_keys SET wrap = substring(wrap from 1 for 1100) WHERE epoch = 1 AND member_id = (SELECT id FROM accounts WHERE handle = 'carol')`,
			},
			check: "wrap", want: "1100 bytes",
		},
		{
			name: "public key that does not parse",
			plant: []string{
				`UPDATE accounts SET encryption_key = decode(repeat('ff', 1216), 'hex'),
					identity = substring(identity from 1 for length(identity) - 1216) || decode(repeat('ff', 1216), 'hex')
					WHERE handle = 'bob'`,
			},
			check: "account", want: "does not parse",
		},
		{
			name: "commit with a bad signature",
			plant: []string{
				`UPDATE commits SET signature = decode(repeat('00', 64), 'hex') WHERE seq = 2 AND group_id = (SELECT group_id FROM commits WHERE seq = 5)`,
			},
			check: "chain", want: "rule signature",
		},
		{
			name: "rewritten log leaf",
			plant: []string{
				`UPDATE log_entries SET leaf = leaf || '\x00'::bytea WHERE leaf_index = 1`,
			},
			check: "log", want: "rewritten leaf",
		},
		{
			name: "rewritten log leaf with its hash",
			plant: []string{
				`UPDATE log_entries SET leaf = overlay(leaf placing '\x01'::bytea from 40 for 1), leaf_hash = sha256('\x00'::bytea || overlay(leaf placing '\x01'::bytea from 40 for 1)) WHERE leaf_index = 2`,
			},
			check: "log", want: "differs from the signed checkpoint",
		},
		{
			name:  "plaintext secret in a metadata column",
			plant: []string{`UPDATE groups SET meta = convert_to('{"name":"project x","secret":"the launch code is 0000"}', 'UTF8')`},
			check: "metadata", want: "groups.meta",
		},
		{
			name:  "plaintext that is not JSON",
			plant: []string{`UPDATE groups SET meta = convert_to('Project X: we ship on March 3rd. Do not tell anyone.', 'UTF8')`},
			check: "metadata", want: "printable text",
		},
		{
			name: "wrap for a non-member",
			plant: []string{
				`INSERT INTO wrapped_keys (group_id, epoch, member_id, wrap)
					SELECT group_id, epoch, (SELECT id FROM accounts WHERE handle = 'bob'), wrap FROM wrapped_keys
					WHERE epoch = 3 AND member_id = (SELECT id FROM accounts WHERE handle = 'alice')
					AND group_id = (SELECT group_id FROM commits WHERE seq = 5)`,
			},
			check: "wrap", want: "not a member",
		},
		{
			name:  "ghost member",
			plant: []string{`INSERT INTO group_members SELECT group_id, (SELECT id FROM accounts WHERE handle = 'bob'), 4 FROM commits WHERE seq = 5`},
			check: "member", want: "verified chain",
		},
		// The state in rows (group_state_accounts): the story's first group
		// (the one with a seq 5) has rows for alice, carol and bob, who was
		// removed.
		{
			name: "state row edited",
			plant: []string{
				`UPDATE group_state_accounts SET roles = roles || roles WHERE account_id = (SELECT id FROM accounts WHERE handle = 'carol')
					AND group_id = (SELECT group_id FROM commits WHERE seq = 5)`,
			},
			check: "group", want: "not the verifier's member entry",
		},
		{
			name: "member entry on a removed member",
			plant: []string{
				`UPDATE group_state_accounts SET member = (SELECT member FROM group_state_accounts WHERE account_id = (SELECT id FROM accounts WHERE handle = 'carol')
					AND group_id = (SELECT group_id FROM commits WHERE seq = 5))
					WHERE account_id = (SELECT id FROM accounts WHERE handle = 'bob') AND group_id = (SELECT group_id FROM commits WHERE seq = 5)`,
			},
			check: "group", want: "not the verifier's member entry",
		},
		{
			name: "state row deleted",
			plant: []string{
				`DELETE FROM group_state_accounts WHERE account_id = (SELECT id FROM accounts WHERE handle = 'bob')
					AND group_id = (SELECT group_id FROM commits WHERE seq = 5)`,
			},
			check: "group", want: "no row for an account",
		},
		{
			name: "extra state row",
			plant: []string{
				`INSERT INTO group_state_accounts SELECT group_id, (SELECT id FROM accounts WHERE handle = 'bob'), NULL, roles
					FROM group_state_accounts WHERE account_id = (SELECT id FROM accounts WHERE handle = 'alice')
					AND group_id <> (SELECT group_id FROM commits WHERE seq = 5)`,
			},
			check: "group", want: "never a member",
		},
		{
			name:  "state header edited",
			plant: []string{`UPDATE groups SET state = overlay(state placing '\xff'::bytea from 60 for 1) WHERE id = (SELECT group_id FROM commits WHERE seq = 5)`},
			check: "group", want: "header of the verifier's state",
		},
		{
			name:  "state rows beside an older checkpoint",
			plant: []string{`UPDATE groups SET state_rows = false WHERE id = (SELECT group_id FROM commits WHERE seq = 5)`},
			check: "group", want: "beside a groups.state",
		},
		{
			name:  "head moved",
			plant: []string{`UPDATE groups SET head_seq = head_seq - 1 WHERE id = (SELECT group_id FROM commits WHERE seq = 5)`},
			check: "group", want: "verified chain",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := cofferdtest.Start(t, nil)
			story(t, srv)
			srv.Main.Close() // the server must not heal what we plant
			db := mustConn(t, srv.DatabaseURL)
			for _, q := range tt.plant {
				if _, err := db.Exec(context.Background(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			r := mustAudit(t, srv)
			if r.Clean {
				t.Fatal("the audit is clean")
			}
			for _, f := range r.Findings {
				if f.Check == tt.check && strings.Contains(f.Object+" "+f.Message, tt.want) {
					return
				}
			}
			var b strings.Builder
			r.WriteText(&b)
			t.Fatalf("no %s finding naming %q:\n%s", tt.check, tt.want, b.String())
		})
	}
}

// TestDBHeadsMapMismatch: a checkpoint correctly signed by the log key whose
// heads-map line is not the map of the leaves is a finding.
func TestDBHeadsMapMismatch(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	story(t, srv)
	srv.Main.Close()
	db := mustConn(t, srv.DatabaseURL)
	ctx := context.Background()
	var text string
	if err := db.QueryRow(ctx, `SELECT checkpoint FROM log_head`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	v, _ := translog.NewVerifier(srv.LogKey())
	cp, err := v.Open(text)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(srv.DataDir, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := translog.NewSigner(cp.Origin, k.(ed25519.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	cp.MapRoot[0] ^= 1
	forged, err := signer.Sign(cp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE log_head SET checkpoint = $1`, forged); err != nil {
		t.Fatal(err)
	}
	r := mustAudit(t, srv)
	for _, f := range r.Findings {
		if f.Check == "log" && strings.Contains(f.Message, "heads map recomputed from the leaves") {
			return
		}
	}
	var b strings.Builder
	r.WriteText(&b)
	t.Fatalf("no finding about the heads map:\n%s", b.String())
}
