package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// Errors name what broke, and one broken group does not break all: with
// two groups, one tampered with in the database, the listing reports the
// broken one beside the healthy one, and every security error names the
// group (and the resource) concerned.

// tamperGroupHead makes g's head, as the server reports it, differ from
// the verified chain: every sync of g fails.
const tamperGroupHead = `UPDATE groups SET head_hash = decode(md5('x') || md5('y'), 'hex') WHERE id = $1`

func wantNamed(t *testing.T, err error, names ...string) {
	t.Helper()
	wantSecurity(t, err)
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Fatalf("the security error does not name %s: %v", n, err)
		}
	}
}

func TestTamperOneBrokenGroup(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, _ := newClient(t, srv, "alice", nil)
	bob := MustClient(t, srv, "bob")
	mustVerify(t, alice, bob)
	alpha := mustGroup(t, alice, "alpha", nil)
	beta := mustGroup(t, alice, "beta", nil)
	gamma := mustGroup(t, alice, "gamma", nil)
	for _, g := range []coffer.GroupID{alpha, beta, gamma} {
		mustAdd(t, alice, bob, g, coffer.RoleWriter)
	}
	r := mustPut(t, bob, alpha, "r", randomContent(t, 100_000))
	mustPut(t, alice, gamma, "in gamma", randomContent(t, 10))
	db := mustDB(t, srv)

	mustExec(t, db, tamperGroupHead, beta)
	// gamma: the wrap of bob's key for epoch 1 is another member's.
	mustExec(t, db, `UPDATE wrapped_keys w SET wrap = o.wrap FROM wrapped_keys o
		WHERE w.group_id = $1 AND o.group_id = $1 AND w.member_id = $2 AND o.member_id = $3`, gamma, bob.AccountID(), alice.AccountID())

	for _, c := range []*clientlib.Client{alice, bob} {
		groups, err := c.Groups(ctx)
		if err != nil {
			t.Fatalf("%s: Groups failed as a whole: %v", c.Identity().Handle(), err)
		}
		byID := map[coffer.GroupID]*clientlib.Group{}
		for _, g := range groups {
			byID[g.ID] = g
		}
		if len(groups) != 3 || byID[alpha] == nil || byID[beta] == nil || byID[gamma] == nil {
			t.Fatalf("%s: Groups listed %d groups, want alpha, beta and gamma", c.Identity().Handle(), len(groups))
		}
		if byID[alpha].Err != nil || byID[alpha].Name != "alpha" {
			t.Fatalf("the healthy group: %+v", byID[alpha])
		}
		wantNamed(t, byID[beta].Err, beta.String())
		if byID[beta].Name != "" {
			t.Fatalf("a broken group shows a name: %q", byID[beta].Name)
		}
		if c == bob {
			wantNamed(t, byID[gamma].Err, gamma.String())
		} else if byID[gamma].Err != nil {
			t.Fatalf("alice's own wrap of gamma is intact: %v", byID[gamma].Err)
		}
	}

	// Every entry point names the group.
	_, err := bob.Sync(ctx, beta)
	wantNamed(t, err, beta.String())
	_, err = bob.Members(ctx, beta)
	wantNamed(t, err, beta.String())
	_, err = bob.History(ctx, beta)
	wantNamed(t, err, beta.String())
	_, err = bob.Group(ctx, gamma)
	wantNamed(t, err, gamma.String())
	_, err = bob.CurrentEpoch(ctx, gamma)
	wantNamed(t, err, gamma.String())
	_, err = bob.ReadableEpochs(ctx, gamma)
	wantNamed(t, err, gamma.String())
	err = alice.Rotate(ctx, beta)
	wantNamed(t, err, beta.String())
	err = alice.RenameGroup(ctx, beta, "renamed", nil)
	wantNamed(t, err, beta.String())
	err = bob.Leave(ctx, beta)
	wantNamed(t, err, beta.String())
	_, err = bob.List(ctx, gamma)
	wantNamed(t, err, gamma.String())

	// And the resource: its metadata, then its content.
	mustExec(t, db, `UPDATE resources SET meta = overlay(meta placing '\x00'::bytea from 20) WHERE id = $1`, r.ID)
	_, err = bob.Head(ctx, alpha, r.ID)
	wantNamed(t, err, alpha.String(), r.ID.String())
	_, err = bob.List(ctx, alpha)
	wantNamed(t, err, alpha.String(), r.ID.String())
}

// TestTamperOneBrokenGroupContent: a flipped content byte names group and
// resource in the error the reader returns.
func TestTamperOneBrokenGroupContent(t *testing.T) {
	f := newResourceTamper(t)
	b, err := os.ReadFile(f.blobPath(t, f.a.ID))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-100] ^= 1
	if err := os.WriteFile(f.blobPath(t, f.a.ID), b, 0o600); err != nil {
		t.Fatal(err)
	}
	rr, err := f.carol.Get(context.Background(), f.g, f.a.ID)
	if err == nil {
		_, err = io.Copy(io.Discard, rr)
		rr.Close()
	}
	wantNamed(t, err, f.g.String(), f.a.ID.String())
}

// TestCLIOneBrokenGroup: coffer group ls lists the broken group beside the
// healthy one (and exits 3), and a name still resolves among the healthy.
func TestCLIOneBrokenGroup(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds coffer and cofferd and runs cofferd -dev with its own PostgreSQL")
	}
	bins := mustBuildCLI(t)
	srv := startCLIServer(t, bins)
	alice := srv.profile(t, "alice", false)
	alice.ok(t, "init", "--server", srv.url, "--handle", "alice")
	alpha := mustParseGroupID(t, alice.ok(t, "group", "create", "alpha"))
	beta := mustParseGroupID(t, alice.ok(t, "group", "create", "beta"))
	srv.psql(t, strings.ReplaceAll(tamperGroupHead, "$1", "'"+beta.String()+"'"))

	code, stdout, stderr := alice.run(t, "group", "ls", "--json")
	wantExit(t, code, cliSecurity, stderr)
	var listing []struct {
		ID    coffer.GroupID `json:"id"`
		Name  string         `json:"name"`
		Error string         `json:"error"`
	}
	if err := json.Unmarshal([]byte(stdout), &listing); err != nil {
		t.Fatalf("group ls --json: %v\n%s", err, stdout)
	}
	if len(listing) != 2 {
		t.Fatalf("group ls --json listed %d groups, want both: %s", len(listing), stdout)
	}
	for _, g := range listing {
		switch g.ID {
		case alpha:
			if g.Name != "alpha" || g.Error != "" {
				t.Fatalf("the healthy group: %+v", g)
			}
		case beta:
			if g.Error == "" || !strings.Contains(g.Error, beta.String()) {
				t.Fatalf("the broken group: %+v", g)
			}
		default:
			t.Fatalf("an unknown group %s", g.ID)
		}
	}
	if !strings.Contains(stderr, beta.String()) {
		t.Fatalf("group ls does not name the broken group on stderr:\n%s", stderr)
	}

	code, stdout, stderr = alice.run(t, "group", "ls")
	wantExit(t, code, cliSecurity, stderr)
	if !strings.Contains(stdout, "alpha") || !strings.Contains(stdout, beta.String()) || !strings.Contains(stdout, "failed verification") {
		t.Fatalf("group ls:\n%s", stdout)
	}

	// Name resolution goes on with the healthy groups, and says why.
	code, _, stderr = alice.run(t, "group", "members", "alpha")
	wantExit(t, code, cliOK, stderr)
	if !strings.Contains(stderr, beta.String()) {
		t.Fatalf("resolving alpha does not report the broken group:\n%s", stderr)
	}
	code, _, stderr = alice.run(t, "group", "members", "nosuch")
	wantExit(t, code, cliError, stderr)
	if !strings.Contains(stderr, "failed verification") {
		t.Fatalf("resolving an unknown name does not say a group could not be matched:\n%s", stderr)
	}
}
