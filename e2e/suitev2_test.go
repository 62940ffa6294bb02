package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferd"
)

// Suite v2 groups (clientlib.Options.SuiteV2Groups): commits name members'
// keys by hash and carry hybrid signatures, as resource headers do; the
// keys come from the server's member-keys store and are checked against
// the hashes the commits carry.

func mustV2Client(t testing.TB, url, handle string) *clientlib.Client {
	t.Helper()
	c := MustNewClientWith(t, url, NewCanaryKeyStore(), &clientlib.Options{SuiteV2Groups: true, TrustOnFirstUse: true})
	rk, err := c.CreateAccount(context.Background(), handle, "phone")
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("recovery key", rk[:])
	return c
}

// TestSuiteV2Groups: a suite v2 group through its life: creation, adds,
// reads and writes by every member, a removal whose member then reads
// nothing new, and a member's key rotation with its self-update; the
// commits carry keys hashes and hybrid signatures throughout.
func TestSuiteV2Groups(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	ctx := context.Background()
	alice := mustV2Client(t, srv.URL(), "alice")
	bob := mustV2Client(t, srv.URL(), "bob")
	carol := mustV2Client(t, srv.URL(), "carol")
	g, err := alice.CreateGroup(ctx, "v2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, g, "bob", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, g, "carol", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	first, err := alice.Put(ctx, g, strings.NewReader("from alice"), clientlib.Meta{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	fromBob, err := bob.Put(ctx, g, strings.NewReader("from bob"), clientlib.Meta{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*clientlib.Client{alice, bob, carol} {
		if got := string(mustReadResource(t, c, g, first.ID)); got != "from alice" {
			t.Fatalf("%s reads %q", c.Identity().Handle(), got)
		}
		if got := string(mustReadResource(t, c, g, fromBob.ID)); got != "from bob" {
			t.Fatalf("%s reads %q", c.Identity().Handle(), got)
		}
	}
	res, err := carol.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if res.State.Suite != coffer.SuiteV2 {
		t.Fatalf("the group is of suite %d", res.State.Suite)
	}
	history, err := carol.History(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range history {
		if cm.Suite != coffer.SuiteV2 {
			t.Fatalf("commit %d is of suite %d", cm.Seq, cm.Suite)
		}
		for _, op := range cm.Ops {
			if (op.Kind == coffer.OpAdd || op.Kind == coffer.OpUpdateKey) && (op.KeysHash == [32]byte{} || op.EncryptionKey != nil) {
				t.Fatalf("commit %d: an op carries keys, not a hash", cm.Seq)
			}
		}
	}

	// Bob rotates his user key: he updates his keys in the group, and
	// writes and reads on.
	if err := bob.RotateUserKey(ctx); err != nil {
		t.Fatal(err)
	}
	afterRotation, err := bob.Put(ctx, g, strings.NewReader("bob, rotated"), clientlib.Meta{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(mustReadResource(t, alice, g, afterRotation.ID)); got != "bob, rotated" {
		t.Fatalf("alice reads %q", got)
	}
	if got := string(mustReadResource(t, alice, g, fromBob.ID)); got != "from bob" {
		t.Fatalf("alice reads bob's header signed with his old key as %q", got)
	}

	// Carol is removed: the group rotates, and what follows is not hers.
	if err := alice.RemoveMember(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	secret, err := alice.Put(ctx, g, strings.NewReader("after carol"), clientlib.Meta{Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readResource(carol, g, secret.ID); err == nil {
		t.Fatal("a removed member read what was written after the removal")
	}
	if got := string(mustReadResource(t, bob, g, secret.ID)); got != "after carol" {
		t.Fatalf("bob reads %q", got)
	}

	// Deletes are suite v2 tombstones, signed with the hybrid key: bob's
	// of his own resource (under his rotated key), alice's as an owner of
	// bob's. Each reaches the log, and nobody reads either resource again.
	if err := bob.Delete(ctx, g, afterRotation.ID); err != nil {
		t.Fatal(err)
	}
	if err := alice.Delete(ctx, g, fromBob.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*clientlib.Client{alice, bob} {
		for _, id := range []coffer.ResourceID{afterRotation.ID, fromBob.ID} {
			if _, err := readResource(c, g, id); coffer.ErrorCode(err) != coffer.ENOTFOUND {
				t.Fatalf("%s reads deleted resource %s: %v", c.Identity().Handle(), id, err)
			}
		}
	}
}

// TestSuiteV2MemberKeysServer: a server that withholds member keys, or
// answers with other keys than those asked for, stops the sync with a
// security error; nothing it returns is used unchecked.
func TestSuiteV2MemberKeysServer(t *testing.T) {
	t.Parallel()
	var mode atomic.Int32 // 0 honest, 1 withhold, 2 substitute, 3 garbage
	var subst atomic.Pointer[[]byte]
	p := httptest.NewServer(nil)
	t.Cleanup(p.Close)
	srv := MustServerWith(t, func(c *cofferd.Config) { c.Origins += "," + p.URL })
	target, _ := url.Parse(srv.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/v1/member-keys" || resp.StatusCode != http.StatusOK || mode.Load() == 0 {
			return nil
		}
		resp.Body.Close()
		var out struct {
			Keys [][]byte `json:"keys"`
		}
		switch mode.Load() {
		case 2:
			out.Keys = [][]byte{*subst.Load()}
		case 3:
			out.Keys = [][]byte{[]byte("not keys")}
		}
		body, _ := json.Marshal(out)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		return nil
	}
	p.Config.Handler = proxy
	ctx := context.Background()
	alice := mustV2Client(t, p.URL, "alice")
	mallory := mustV2Client(t, p.URL, "mallory")
	g, err := alice.CreateGroup(ctx, "v2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, g, "mallory", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	// Valid keys of an account outside the group, which no hash the
	// client asks for names.
	mustV2Client(t, p.URL, "zed")
	zed, err := alice.Lookup(ctx, "zed")
	if err != nil || zed.Chain == nil {
		t.Fatalf("lookup zed: %v", err)
	}
	enc := zed.Chain.MemberKeys().Marshal()
	subst.Store(&enc)
	for m, what := range map[int32]string{1: "withheld keys", 2: "keys of an account outside the group", 3: "keys that do not parse"} {
		mode.Store(m)
		bob := mustV2Client(t, p.URL, "bob"+string(rune('0'+m)))
		if err := alice.AddMember(ctx, g, string(bob.Identity().Handle()), coffer.RoleReader); err != nil {
			mode.Store(0)
			t.Fatalf("%s: the adder, whose keys are cached, fails: %v", what, err)
		}
		_, err := bob.Sync(ctx, g)
		wantSecurityIn(t, what, err)
		mode.Store(0)
		if _, err := bob.Sync(ctx, g); err != nil {
			t.Fatalf("%s: an honest answer afterwards: %v", what, err)
		}
	}
}
