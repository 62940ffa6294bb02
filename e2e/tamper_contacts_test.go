package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// substitutingProxy plays a server colluding with an admin, mallory: it
// rewrites mallory's commits so that the add of victim carries the keys of
// sub instead, re-signed with mallory's key. The server's registry row of
// victim is switched to sub in the database for the append (its check of
// added members' keys then passes) and switched back afterwards.
func substitutingProxy(t *testing.T, srv *Server, malloryKey ed25519.PrivateKey, victim coffer.Handle, sub coffer.PublicIdentity, subSig []byte) string {
	t.Helper()
	db := mustDB(t, srv)
	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/commits") {
			rp.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req api.CommitRequest
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("proxy: %v", err)
			return
		}
		c, err := coffer.ParseCommit(req.Commit.Body)
		if err != nil {
			t.Errorf("proxy: %v", err)
			return
		}
		substituted := false
		for i, op := range c.Ops {
			if op.Kind == coffer.OpAdd && op.Handle == victim {
				c.Ops[i].SigningKey, c.Ops[i].EncryptionKey = sub.SigningKey, sub.EncryptionKey
				substituted = true
			}
		}
		if substituted {
			sc := coffer.SignCommit(c, malloryKey)
			req.Commit = api.SignedCommit{Body: sc.Body, Signature: sc.Signature}
			body, _ = json.Marshal(req)
			var real struct{ identity, sig, sk, ek []byte }
			if err := db.QueryRow(context.Background(), `SELECT identity, self_signature, signing_key, encryption_key FROM accounts WHERE handle = $1`, string(victim)).
				Scan(&real.identity, &real.sig, &real.sk, &real.ek); err != nil {
				t.Errorf("proxy: %v", err)
				return
			}
			set := `UPDATE accounts SET identity = $2, self_signature = $3, signing_key = $4, encryption_key = $5 WHERE handle = $1`
			mustExec(t, db, set, string(victim), sub.Marshal(), subSig, []byte(sub.SigningKey), sub.EncryptionKey)
			defer mustExec(t, db, set, string(victim), real.identity, real.sig, real.sk, real.ek)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ps.Close)
	return ps.URL
}

// TestTamperChangedKeysStopWrites: alice verified carol. An admin, mallory,
// with the server's help, adds carol to alice's group under other keys.
// While the group holds that member, alice's Put, Replace and every commit
// that wraps keys fail with a security error naming carol and the group;
// her reads still work, and her listing of the group shows the conflict.
// Removing the impostor is allowed and lifts the block. Variants substitute
// either key or both.
func TestTamperChangedKeysStopWrites(t *testing.T) {
	for _, variant := range []string{"both keys", "encryption key", "signing key"} {
		t.Run(strings.ReplaceAll(variant, " ", "-"), func(t *testing.T) {
			ctx := context.Background()
			srv := MustServer(t)
			alice := MustClient(t, srv, "alice")
			mallory := MustClient(t, srv, "mallory")
			bob := MustClient(t, srv, "bob")
			carol := MustClient(t, srv, "carol")
			dave := MustClient(t, srv, "dave")
			mustVerify(t, alice, carol)
			mustVerify(t, alice, dave)
			g := mustGroup(t, alice, "team", nil)
			mustAdd(t, alice, mallory, g, coffer.RoleAdmin)
			mustAdd(t, alice, bob, g, coffer.RoleWriter)
			r1, err := alice.Put(ctx, g, strings.NewReader("before"), clientlib.Meta{Name: "before"})
			if err != nil {
				t.Fatal(err)
			}

			mustSubstitutedAdd(t, srv, mallory, carol, g, variant)

			// The log is honest about what was appended: alice syncs, sees
			// the member, and reads as before.
			members, err := alice.Members(ctx, g)
			if err != nil {
				t.Fatalf("sync after the substitution: %v", err)
			}
			for _, m := range members {
				if m.Handle == "carol" && m.Trust != clientlib.Changed {
					t.Fatalf("carol's trust is %s, want changed", m.Trust)
				}
			}
			if b := string(mustReadResource(t, alice, g, r1.ID)); b != "before" {
				t.Fatalf("read %q", b)
			}
			if _, err := alice.List(ctx, g); err != nil {
				t.Fatalf("list: %v", err)
			}
			for _, list := range [][]*clientlib.Group{mustGroups(t, alice), {mustGroupInfo(t, alice, g)}} {
				if len(list) != 1 || len(list[0].KeyConflicts) != 1 || list[0].KeyConflicts[0].Handle != "carol" {
					t.Fatalf("the group listing does not show carol's conflict: %+v", list)
				}
			}

			// Every write and every commit that wraps keys stops.
			wantBlocked := func(what string, err error) {
				t.Helper()
				if !coffer.IsSecurity(err) {
					t.Fatalf("%s with a substituted member: %v, want a security error", what, err)
				}
				if msg := err.Error(); !strings.Contains(msg, "carol") || !strings.Contains(msg, g.String()) {
					t.Fatalf("%s: %q does not name carol and the group", what, msg)
				}
			}
			_, err = alice.Put(ctx, g, strings.NewReader("after"), clientlib.Meta{Name: "after"})
			wantBlocked("put", err)
			_, err = alice.Replace(ctx, g, r1.ID, 0, strings.NewReader("after"), clientlib.Meta{Name: "after"}, nil)
			wantBlocked("replace", err)
			wantBlocked("rotate", alice.Rotate(ctx, g))
			wantBlocked("add", alice.AddMember(ctx, g, "dave", coffer.RoleReader))
			wantBlocked("remove", alice.RemoveMember(ctx, g, "bob"))
			wantBlocked("demote", alice.ChangeRole(ctx, g, "mallory", coffer.RoleWriter))
			if b := string(mustReadResource(t, alice, g, r1.ID)); b != "before" {
				t.Fatalf("read after the refusals: %q", b)
			}
			// Nothing was appended by the refused calls.
			if res, err := alice.Sync(ctx, g); err != nil {
				t.Fatalf("sync after the refusals: %v", err)
			} else if res.New != 0 {
				t.Fatalf("the refused calls appended %d commits", res.New)
			}

			// bob never verified carol, but his sync proves every member's
			// identity in the log's heads map, and carol's keys in the
			// chain are not the identity logged for her account: he stops
			// writing too.
			_, err = bob.Put(ctx, g, strings.NewReader("bob"), clientlib.Meta{Name: "bob"})
			wantSecurity(t, err)
			wantCode(t, errors.Unwrap(err), coffer.EKEYCHANGED)

			// Removing the impostor is the way out.
			if err := alice.RemoveMember(ctx, g, "carol"); err != nil {
				t.Fatalf("removing the substituted member: %v", err)
			}
			if _, err := alice.Put(ctx, g, strings.NewReader("after"), clientlib.Meta{Name: "after"}); err != nil {
				t.Fatalf("put after removing the impostor: %v", err)
			}
			if gr := mustGroupInfo(t, alice, g); len(gr.KeyConflicts) != 0 {
				t.Fatalf("conflicts after the removal: %v", gr.KeyConflicts)
			}
		})
	}
}

// mustSubstitutedAdd has mallory, an admin of g, add carol's handle and
// account to g under substituted keys (either key or both, by variant),
// with the server's help (substitutingProxy).
func mustSubstitutedAdd(t *testing.T, srv *Server, mallory, carol *clientlib.Client, g coffer.GroupID, variant string) {
	t.Helper()
	real := carol.Identity().Public()
	evilPub, evilPriv, _ := ed25519.GenerateKey(rand.Reader)
	evilEnc, _ := clientlib.GenerateIdentity("carol")
	sub, signer := coffer.PublicIdentity{Handle: real.Handle, SigningKey: real.SigningKey, EncryptionKey: real.EncryptionKey}, signingKeyOf(t, KeyStore(t, carol))
	if variant != "signing key" {
		sub.EncryptionKey = evilEnc.Public().EncryptionKey
	}
	if variant != "encryption key" {
		sub.SigningKey, signer = evilPub, evilPriv
	}
	subSig := coffer.Sign(signer, coffer.LabelIdentity, sub.Marshal())

	mustVerify(t, mallory, carol)
	proxyURL := substitutingProxy(t, srv, signingKeyOf(t, KeyStore(t, mallory)), real.Handle, sub, subSig)
	viaProxy, err := clientlib.New(proxyURL, KeyStore(t, mallory), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The server appends the substituted commit. mallory's own client
	// proves its write in the log (own writes are proven), finds a commit
	// it did not sign there, and reports that as a security error; the
	// rest of the test is about what the other members see.
	if err := viaProxy.AddMember(context.Background(), g, string(real.Handle), coffer.RoleReader); !coffer.IsSecurity(err) {
		t.Fatalf("the author of the substituted add did not notice its commit was changed: %v", err)
	}
}

// TestTamperChangedKeysCLI: the same substitution seen through the coffer
// CLI: group ls and group members show the conflict, put exits with the
// security code naming carol and the group, get still works.
func TestTamperChangedKeysCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer")
	}
	srv := MustServer(t)
	cli := &cliServer{bins: mustBuildCLI(t), url: srv.URL(), home: t.TempDir()}
	alice := cli.profile(t, "alice", false)
	alice.ok(t, "init", "--server", srv.URL(), "--handle", "alice")
	mallory := MustClient(t, srv, "mallory")
	carol := MustClient(t, srv, "carol")
	for _, c := range []*clientlib.Client{mallory, carol} {
		alice.ok(t, append([]string{"contact", "verify", string(c.Identity().Handle())}, strings.Fields(c.Identity().SafetyNumber())...)...)
	}
	// mallory and carol are suite v1 identities: a suite v1 group.
	g := mustParseGroupID(t, alice.ok(t, "group", "create", "team", "--suite-v1"))
	alice.ok(t, "group", "add", "team", "mallory", "--role", "admin")
	file := mustWriteRandom(t, t.TempDir(), "plan", 1000)
	r1 := mustParseResourceID(t, alice.ok(t, "put", "team", file))

	mustSubstitutedAdd(t, srv, mallory, carol, g, "both keys")

	var groups []struct {
		ID           coffer.GroupID `json:"id"`
		KeyConflicts []string       `json:"key_conflicts"`
	}
	alice.okJSON(t, &groups, "group", "ls", "--json")
	if len(groups) != 1 || groups[0].ID != g || len(groups[0].KeyConflicts) != 1 || groups[0].KeyConflicts[0] != "carol" {
		t.Fatalf("group ls --json: %+v, want carol's conflict", groups)
	}
	if out := alice.ok(t, "group", "ls"); !strings.Contains(out, "changed: carol") {
		t.Fatalf("group ls does not show the conflict:\n%s", out)
	}
	var members []struct{ Handle, Keys string }
	alice.okJSON(t, &members, "group", "members", "team", "--json")
	found := false
	for _, m := range members {
		if m.Handle == "carol" {
			found = m.Keys == "changed"
		}
	}
	if !found {
		t.Fatalf("group members --json: %+v, want carol changed", members)
	}
	code, _, stderr := alice.run(t, "put", "team", file)
	wantExit(t, code, cliSecurity, stderr)
	if !strings.Contains(stderr, "carol") || !strings.Contains(stderr, g.String()) {
		t.Fatalf("put's refusal does not name carol and the group:\n%s", stderr)
	}
	code, _, stderr = alice.run(t, "group", "rotate", "team")
	wantExit(t, code, cliSecurity, stderr)
	out := filepath.Join(t.TempDir(), "out")
	alice.ok(t, "get", "team", r1.String(), "-o", out)
	mustSameFile(t, file, out)
}

func mustGroups(tb testing.TB, c *clientlib.Client) []*clientlib.Group {
	tb.Helper()
	gs, err := c.Groups(context.Background())
	if err != nil {
		tb.Fatalf("groups: %v", err)
	}
	return gs
}

func mustGroupInfo(tb testing.TB, c *clientlib.Client, g coffer.GroupID) *clientlib.Group {
	tb.Helper()
	gr, err := c.Group(context.Background(), g)
	if err != nil {
		tb.Fatalf("group: %v", err)
	}
	return gr
}
