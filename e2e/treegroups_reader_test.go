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
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferd"
)

// readerProxy stands between one client and the server: it counts the
// member keys and accounts the client asks for, and withholds the keys a
// test names from every answer.
type readerProxy struct {
	url      string
	keys     atomic.Int64 // hashes asked of POST /v1/member-keys
	accounts atomic.Int64 // ids asked of POST /v1/accounts/lookup
	withhold atomic.Pointer[[][]byte]
}

func newReaderProxy(t *testing.T) *readerProxy {
	t.Helper()
	p := &readerProxy{}
	ts := httptest.NewServer(nil)
	t.Cleanup(ts.Close)
	srv := MustServerWith(t, func(c *cofferd.Config) { c.Origins += "," + ts.URL })
	target, _ := url.Parse(srv.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		w := p.withhold.Load()
		if resp.Request.URL.Path != "/v1/member-keys" || resp.StatusCode != http.StatusOK || w == nil {
			return nil
		}
		var out struct {
			Keys [][]byte `json:"keys"`
		}
		err := json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil {
			return err
		}
		kept := out.Keys[:0]
		for _, k := range out.Keys {
			if !slices.ContainsFunc(*w, func(h []byte) bool { return bytes.Equal(h, k) }) {
				kept = append(kept, k)
			}
		}
		out.Keys = kept
		body, _ := json.Marshal(out)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		return nil
	}
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && (r.URL.Path == "/v1/member-keys" || r.URL.Path == "/v1/accounts/lookup") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var req struct {
				Hashes []json.RawMessage `json:"hashes"`
				IDs    []json.RawMessage `json:"ids"`
			}
			_ = json.Unmarshal(body, &req)
			p.keys.Add(int64(len(req.Hashes)))
			p.accounts.Add(int64(len(req.IDs)))
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, r)
	})
	p.url = ts.URL
	return p
}

// TestTreeReaderChecksOnUse: a member of a tree group below the admin role
// reads without the other members' keys or identities. Its sync fetches and
// proves its own and the admins' (the commits' authors), and leaves every
// other member's to when that member is used. So a server that withholds a
// plain member's keys does not stop the reader reading, and stops, with a
// security error, every use of that member: listing the members, a sync
// that lists their trust, reading what that member wrote, and every sync
// once the reader is an admin, since an admin checks every member.
func TestTreeReaderChecksOnUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newReaderProxy(t)
	alice := mustV2Client(t, p.url, "alice")
	g, err := alice.CreateGroup(ctx, "readers", &clientlib.GroupOptions{Tree: true})
	if err != nil {
		t.Fatal(err)
	}
	plain := []string{"bob", "erin", "frank", "grace", "heidi", "carol"}
	for _, h := range plain[:len(plain)-1] {
		mustV2Client(t, p.url, h)
	}
	carol := mustV2Client(t, p.url, "carol")
	if err := alice.AddMembers(ctx, g, plain, coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	written, err := carol.Put(ctx, g, strings.NewReader("from carol"), clientlib.Meta{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	keysOf := func(handle string) []byte {
		t.Helper()
		a, err := alice.Lookup(ctx, handle)
		if err != nil || a.Chain == nil {
			t.Fatalf("lookup %s: %v", handle, err)
		}
		return a.Chain.MemberKeys().Marshal()
	}
	carolKeys := keysOf("carol")

	// Dave talks to the server through the proxy, which withholds carol's
	// keys from the start; the others talk to the server.
	dave := mustV2Client(t, p.url, "dave")
	if err := alice.AddMember(ctx, g, "dave", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	p.withhold.Store(&[][]byte{carolKeys})
	keys0, accounts0 := p.keys.Load(), p.accounts.Load()
	epochs, err := dave.ReadableEpochs(ctx, g)
	if err != nil || len(epochs) == 0 {
		t.Fatalf("a reader's first sync with a plain member's keys withheld: epochs %v, err %v", epochs, err)
	}
	// Alice's keys and identity (she signed every commit) and dave's own:
	// not the six plain members'.
	if k, a := p.keys.Load()-keys0, p.accounts.Load()-accounts0; k > 2 || a > 2 {
		t.Fatalf("a reader's first sync asked for %d member keys and %d accounts; it needs its own and its admins' alone (2 each)", k, a)
	}
	_, err = dave.Members(ctx, g)
	wantCheck(t, err, "member-keys") // listing the members with a member's keys withheld
	_, err = dave.Sync(ctx, g)
	wantCheck(t, err, "member-keys") // a sync that lists trust with a member's keys withheld
	_, err = readResource(dave, g, written.ID)
	wantCheck(t, err, "header") // reading what carol wrote with her keys withheld

	// Honest again: every use works, and the members are listed with the
	// keys the chain names.
	p.withhold.Store(nil)
	members, err := dave.Members(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != len(plain)+2 {
		t.Fatalf("dave lists %d members, want %d", len(members), len(plain)+2)
	}
	for _, m := range members {
		if len(m.EncryptionKey) == 0 || len(m.SigningKey) == 0 {
			t.Fatalf("member %s is listed without keys", m.Handle)
		}
	}
	if got, err := readResource(dave, g, written.ID); err != nil || string(got) != "from carol" {
		t.Fatalf("dave reads %q, %v", got, err)
	}

	// A reader that verified a member as a contact writes: the member's
	// entry, which its sync did not resolve, is compared with the contact
	// (an unresolved entry would contradict it), and the group shows no
	// conflict.
	dave2 := mustV2Client(t, p.url, "dave2")
	if err := alice.AddMember(ctx, g, "dave2", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	if _, err := dave2.Verify(ctx, "carol", carol.AccountSafetyNumber()); err != nil {
		t.Fatal(err)
	}
	g2, err := dave2.Group(ctx, g)
	if err != nil || len(g2.KeyConflicts) != 0 {
		t.Fatalf("a reader sees key conflicts %v (err %v) in a group whose members match its contacts", g2, err)
	}
	if _, err := dave2.Put(ctx, g, strings.NewReader("from dave2"), clientlib.Meta{Name: "d"}); err != nil {
		t.Fatalf("a reader's write with a verified contact in the group: %v", err)
	}

	// A write shares content with every member: a writer that has only
	// read checks them all first, and a withheld member stops it.
	frankKeys := keysOf("frank")
	olga := mustV2Client(t, p.url, "olga")
	if err := alice.AddMember(ctx, g, "olga", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	p.withhold.Store(&[][]byte{frankKeys})
	if _, err := olga.ReadableEpochs(ctx, g); err != nil {
		t.Fatalf("a reader's first sync with a plain member's keys withheld: %v", err)
	}
	_, err = olga.Put(ctx, g, strings.NewReader("from olga"), clientlib.Meta{Name: "o"})
	wantCheck(t, err, "member-keys") // a write with a member's keys withheld

	// Members that commits change are checked as they arrive, even by a
	// reader: ivan's keys withheld stop dave's next sync.
	mustV2Client(t, p.url, "ivan")
	p.withhold.Store(nil)
	if err := alice.AddMember(ctx, g, "ivan", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	p.withhold.Store(&[][]byte{keysOf("ivan")})
	_, err = dave.ReadableEpochs(ctx, g)
	wantCheck(t, err, "member-keys") // a reader's sync with a new member's keys withheld

	// Promoted, a reader checks every member on its next sync: olga, who
	// never resolved frank, stops over his withheld keys.
	p.withhold.Store(nil)
	if err := alice.ChangeRole(ctx, g, "olga", coffer.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	p.withhold.Store(&[][]byte{frankKeys})
	_, err = olga.ReadableEpochs(ctx, g)
	wantCheck(t, err, "member-keys") // an admin's sync with a member's keys withheld
	p.withhold.Store(nil)
	for _, c := range []*clientlib.Client{dave, olga} {
		if _, err := c.ReadableEpochs(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
}
