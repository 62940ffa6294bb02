package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// The freshness tests (issue 12, items 3 and 4) run the three parts
// of a deployment, each its own process (startDeployment): cofferd and two
// `coffer-audit witness serve`, each with its own key and state, which
// cofferd pushes every checkpoint to. Every client is configured with the two witness keys and a
// quorum of 2, and talks to cofferd through a proxy that plays the
// malicious server: it can rewrite the cosigned checkpoint the clients
// fetch (strip, forge, freeze or replay cosignatures), answer map proofs
// for other keys or sizes, and freeze a group's head as it was.

// checkpointProxy forwards to srv and applies the test's lies.
type checkpointProxy struct {
	url       string
	cosigners []*translog.Cosigner
	// note rewrites the cosigned checkpoint on its way to the client.
	note atomic.Pointer[func(string) string]
	// mapProofs rewrites map proof answers.
	mapProofs atomic.Pointer[func(*api.MapProofs)]
	// frozen holds the GET /v1/groups/{id} answers replayed instead of the
	// server's, hiding every commit after them.
	mu     sync.Mutex
	frozen map[string]frozenGroup
	// uploads counts upload starts and content uploads; logRequests every
	// request to /v1/log/; groupReads every GET of a group (a sync).
	uploads, logRequests, groupReads atomic.Int64
}

type frozenGroup struct {
	body []byte
	seq  uint64
}

// newCheckpointProxy forwards to the server at serverURL.
func newCheckpointProxy(t *testing.T, serverURL string, cosigners []*translog.Cosigner) *checkpointProxy {
	t.Helper()
	p := &checkpointProxy{cosigners: cosigners, frozen: map[string]frozenGroup{}}
	target, _ := url.Parse(serverURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		if resp.StatusCode != http.StatusOK || r.Method == http.MethodPut {
			return nil
		}
		var rewrite func([]byte) []byte
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/log/checkpoint":
			rewrite = func(b []byte) []byte { return []byte(p.serveNote(t, string(b))) }
		case r.Method == http.MethodPost && r.URL.Path == "/v1/log/map/proofs":
			f := p.mapProofs.Load()
			if f == nil {
				return nil
			}
			rewrite = func(b []byte) []byte {
				var mp api.MapProofs
				if json.Unmarshal(b, &mp) != nil {
					return b
				}
				(*f)(&mp)
				out, _ := json.Marshal(mp)
				return out
			}
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/groups/"):
			rest := strings.TrimPrefix(r.URL.Path, "/v1/groups/")
			id, sub, _ := strings.Cut(rest, "/")
			p.mu.Lock()
			fg, ok := p.frozen[id]
			p.mu.Unlock()
			if !ok {
				return nil
			}
			switch sub {
			case "":
				if fg.body == nil {
					rewrite = func(b []byte) []byte {
						var info api.Group
						if json.Unmarshal(b, &info) == nil {
							p.mu.Lock()
							p.frozen[id] = frozenGroup{body: b, seq: info.HeadSeq}
							p.mu.Unlock()
						}
						return b
					}
					break
				}
				rewrite = func([]byte) []byte { return fg.body }
			case "commits":
				if fg.body == nil {
					return nil
				}
				rewrite = func(b []byte) []byte {
					var list api.CommitList
					if json.Unmarshal(b, &list) != nil {
						return b
					}
					after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
					if after >= fg.seq {
						list.Commits = nil
					} else if n := fg.seq - after; uint64(len(list.Commits)) > n {
						list.Commits = list.Commits[:n]
					}
					out, _ := json.Marshal(list)
					return out
				}
			default:
				return nil
			}
		default:
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		body = rewrite(body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/uploads/") || (r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/resources")) {
			p.uploads.Add(1)
		}
		if strings.HasPrefix(r.URL.Path, "/v1/log/") {
			p.logRequests.Add(1)
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/groups/"); ok && r.Method == http.MethodGet && rest != "" && !strings.Contains(rest, "/") {
			p.groupReads.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ps.Close)
	p.url = ps.URL
	return p
}

// serveNote adds the stand-in witnesses' cosignatures, then the test's lie.
func (p *checkpointProxy) serveNote(t *testing.T, note string) string {
	for _, c := range p.cosigners {
		text, _, _ := strings.Cut(note, "\n\n")
		line, err := c.Cosign(text + "\n")
		if err != nil {
			t.Errorf("cosign: %v", err)
			return note
		}
		note = translog.AddCosignatures(note, line)
	}
	if f := p.note.Load(); f != nil {
		return (*f)(note)
	}
	return note
}

func (p *checkpointProxy) setNote(f func(string) string) { p.note.Store(&f) }

func (p *checkpointProxy) setMapProofs(f func(*api.MapProofs)) { p.mapProofs.Store(&f) }

// freeze makes the proxy serve g as c sees it now: its head and its
// commits up to it, whatever the group does later.
func (p *checkpointProxy) freeze(t *testing.T, g coffer.GroupID, c *clientlib.Client) {
	t.Helper()
	p.mu.Lock()
	p.frozen[g.String()] = frozenGroup{}
	p.mu.Unlock()
	if _, err := c.Sync(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen[g.String()].body == nil {
		t.Fatal("freeze: the sync did not fetch the group")
	}
}

// logSignerFrom is a log's signer from its key file, for tests that play
// a server signing what it should not.
func logSignerFrom(t *testing.T, keyFile, origin string) *translog.Signer {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	s, err := translog.NewSigner(origin, key.(ed25519.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// freshFixture is a deployment (cofferd and two witness processes) and a
// proxy the clients use.
type freshFixture struct {
	dep   *deployment
	proxy *checkpointProxy
	opts  clientlib.Options
}

func newFreshFixture(t *testing.T) *freshFixture {
	t.Helper()
	return newFreshFixtureWith(t)
}

// newFreshFixtureWith is newFreshFixture with more cofferd flags.
func newFreshFixtureWith(t *testing.T, cofferdArgs ...string) *freshFixture {
	t.Helper()
	f := &freshFixture{dep: startDeployment(t, deploymentOptions{Args: cofferdArgs})}
	f.proxy = newCheckpointProxy(t, f.dep.URL, nil)
	f.opts = clientlib.Options{Witnesses: f.dep.WitnessKeys(), Quorum: 2, LogWait: 3 * time.Second}
	return f
}

// client registers handle through the proxy, with the fixture's options
// (changed by edit, if set).
func (f *freshFixture) client(t *testing.T, handle string, edit func(*clientlib.Options)) *clientlib.Client {
	t.Helper()
	o := f.opts
	if edit != nil {
		edit(&o)
	}
	// Registered directly (the login statement names the server's
	// origin), then used through the proxy with the session it holds.
	ks := NewCanaryKeyStore()
	direct := MustNewClientWith(t, f.dep.URL, ks, &o)
	if err := direct.Register(context.Background(), handle); err != nil {
		t.Fatalf("register %s: %v", handle, err)
	}
	f.waitCosigned(t)
	return MustNewClientWith(t, f.proxy.url, ks, &o)
}

// waitCosigned waits until cofferd serves a checkpoint that both witnesses
// cosigned. A fresh deployment's witnesses cosign nothing before the log
// holds a leaf, and until they have cosigned once cofferd serves its newest
// checkpoint bare (PROTOCOL, "GET /v1/log/checkpoint"), which a client
// requiring both refuses as stale: a test's first write could race the
// witnesses' first cosignature.
func (f *freshFixture) waitCosigned(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(f.dep.URL + "/v1/log/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		note, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The log's signature line and one per witness.
		if strings.Count(string(note), "\n— ") >= 1+len(f.dep.Witnesses) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s cofferd still serves a checkpoint without both witnesses' cosignatures:\n%s", note)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reopen is a new client for the key store of c, through the proxy.
func (f *freshFixture) reopen(t *testing.T, c *clientlib.Client, edit func(*clientlib.Options)) *clientlib.Client {
	t.Helper()
	o := f.opts
	if edit != nil {
		edit(&o)
	}
	return MustNewClientWith(t, f.proxy.url, KeyStore(t, c), &o)
}

func put(c *clientlib.Client, g coffer.GroupID, name, text string) (*clientlib.Resource, error) {
	return c.Put(context.Background(), g, strings.NewReader(text), clientlib.Meta{Name: name})
}

// TestFreshnessHonestRun: the three-person story with the witnesses on:
// alice shares with bob (writer) and carol (reader), everyone reads, alice
// removes carol, bob writes again, carol cannot read it. Every sync and
// read reports a proof vouched for by both witnesses and a few seconds old.
func TestFreshnessHonestRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFreshFixture(t)
	alice, bob, carol := f.client(t, "alice", nil), f.client(t, "bob", nil), f.client(t, "carol", nil)
	g := mustGroup(t, alice, "story", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	r1, err := put(bob, g, "plan.txt", "the plan")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*clientlib.Client{alice, bob, carol} {
		res, err := c.Sync(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		p := res.Proof
		if p.Seq != res.State.Seq || p.Head != res.State.Head || len(p.Witnesses) != 2 || p.CheckpointSize == 0 || p.Age() > time.Minute {
			t.Fatalf("%s: sync proof %+v for head %d, want the head, both witnesses and a fresh time", c.Identity().Handle(), p, res.State.Seq)
		}
		if got := string(mustReadResource(t, c, g, r1.ID)); got != "the plan" {
			t.Fatalf("read %q", got)
		}
		h, err := c.Head(ctx, g, r1.ID)
		if err != nil {
			t.Fatal(err)
		}
		if h.ProofAge < 0 || h.ProofAge > time.Minute {
			t.Fatalf("resource proof age %v", h.ProofAge)
		}
	}
	if err := alice.RemoveMember(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	r2, err := put(bob, g, "after.txt", "carol must not read this")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readResource(carol, g, r2.ID); err == nil {
		t.Fatal("carol read what bob wrote after her removal")
	}
	if got := string(mustReadResource(t, alice, g, r2.ID)); got != "carol must not read this" {
		t.Fatalf("alice read %q", got)
	}
}

// TestFreshnessHiddenRemoval: a proxy that keeps showing bob the head from
// before carol's removal makes bob's Put fail with a security error before
// any content leaves: the witnessed heads map names the newer head. This
// holds whether bob wrote just before (a cached proof) or not.
func TestFreshnessHiddenRemoval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFreshFixture(t)
	alice, bob, carol := f.client(t, "alice", nil), f.client(t, "bob", nil), f.client(t, "carol", nil)
	g := mustGroup(t, alice, "hidden", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	mustAdd(t, alice, carol, g, coffer.RoleReader)
	if _, err := put(bob, g, "before.txt", "before"); err != nil {
		t.Fatal(err)
	}
	f.proxy.freeze(t, g, bob)
	if err := alice.RemoveMember(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*clientlib.Client{bob, f.reopen(t, bob, nil)} {
		before := f.proxy.uploads.Load()
		_, err := put(c, g, "secret.txt", "written after carol's removal")
		wantSecurity(t, err)
		if !strings.Contains(err.Error(), g.String()) {
			t.Errorf("the error does not name the group: %v", err)
		}
		if n := f.proxy.uploads.Load() - before; n != 0 {
			t.Fatalf("%d upload requests left bob's client before the error", n)
		}
		// A membership change (which wraps the current key) is refused the same way.
		wantSecurity(t, c.Rotate(ctx, g))
	}
}

// TestFreshnessStaleCheckpoint: a checkpoint older than MaxStaleness blocks
// writes with the retryable ESTALECHECKPOINT; they work again once the
// server serves a fresh one.
func TestFreshnessStaleCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The log re-signs (and the witnesses cosign) every second, so a fresh
	// checkpoint is at most a few seconds old.
	f := newFreshFixtureWith(t, "-checkpoint-interval", "1s")
	alice := f.client(t, "alice", nil)
	g := mustGroup(t, alice, "stale", nil)
	if _, err := put(alice, g, "a.txt", "a"); err != nil {
		t.Fatal(err)
	}
	// The proxy replays the checkpoint (with its cosignatures) as it is now.
	var frozen atomic.Pointer[string]
	f.proxy.setNote(func(n string) string {
		frozen.CompareAndSwap(nil, &n)
		return *frozen.Load()
	})
	short := f.reopen(t, alice, func(o *clientlib.Options) { o.MaxStaleness = 4 * time.Second })
	if _, err := short.Sync(ctx, g); err != nil {
		t.Fatal(err) // fresh enough for now
	}
	time.Sleep(5 * time.Second)
	before := f.proxy.uploads.Load()
	_, err := put(short, g, "b.txt", "b")
	wantCode(t, err, coffer.ESTALECHECKPOINT)
	if n := f.proxy.uploads.Load() - before; n != 0 {
		t.Fatalf("%d upload requests before the stale checkpoint was refused", n)
	}
	wantCode(t, short.Rotate(ctx, g), coffer.ESTALECHECKPOINT)
	// A read whose cached proof aged out must prove again, and cannot.
	_, err = short.Sync(ctx, g)
	wantCode(t, err, coffer.ESTALECHECKPOINT)
	// The same client recovers when the server serves a fresh checkpoint.
	f.proxy.setNote(func(n string) string { return n })
	if _, err := put(short, g, "b.txt", "b"); err != nil {
		t.Fatalf("after a fresh checkpoint: %v", err)
	}
}

// TestFreshnessCosignatureAttacks: cosignatures stripped, one missing,
// forged, duplicated or by unknown witnesses never make a write proceed.
func TestFreshnessCosignatureAttacks(t *testing.T) {
	t.Parallel()
	f := newFreshFixture(t)
	alice := f.client(t, "alice", nil)
	// The first checkpoint the witnesses cosigned that the proxy forwards,
	// from before the group existed.
	var firstSeen atomic.Pointer[string]
	f.proxy.setNote(func(n string) string {
		if strings.Count(n, "\n— ") >= 3 {
			firstSeen.CompareAndSwap(nil, &n)
		}
		return n
	})
	if _, err := alice.LatestCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	g := mustGroup(t, alice, "cosign", nil)
	if firstSeen.Load() == nil {
		t.Fatal("the proxy saw no checkpoint with both cosignatures")
	}
	first := *firstSeen.Load()
	sigLines := func(n string) (body string, log string, cosigs []string) {
		body, sigs, _ := strings.Cut(n, "\n\n")
		lines := strings.Split(strings.TrimRight(sigs, "\n"), "\n")
		return body, lines[0], lines[1:]
	}
	assemble := func(body, log string, cosigs ...string) string {
		return body + "\n\n" + strings.Join(append([]string{log}, cosigs...), "\n") + "\n"
	}
	impostorKey, _, _ := translog.GenerateWitnessKey("witness-a.test")
	impostor, _ := translog.NewCosigner(impostorKey)
	strangerKey, _, _ := translog.GenerateWitnessKey("witness-c.test")
	stranger, _ := translog.NewCosigner(strangerKey)
	cases := []struct {
		name     string
		rewrite  func(string) string
		security bool
	}{
		{"stripped", func(n string) string { b, l, _ := sigLines(n); return assemble(b, l) }, false},
		{"one-missing", func(n string) string { b, l, c := sigLines(n); return assemble(b, l, c[0]) }, false},
		{"one-twice", func(n string) string { b, l, c := sigLines(n); return assemble(b, l, c[0], c[0]) }, false},
		{"unknown-witness", func(n string) string {
			b, l, c := sigLines(n)
			line, _ := stranger.Cosign(b + "\n")
			return assemble(b, l, c[0], strings.TrimRight(line, "\n"))
		}, false},
		{"impostor-key-same-name", func(n string) string {
			// A key named like witness-a but not its key: not counted.
			b, l, c := sigLines(n)
			line, _ := impostor.Cosign(b + "\n")
			return assemble(b, l, c[1], strings.TrimRight(line, "\n"))
		}, false},
		{"forged", func(n string) string {
			b, l, c := sigLines(n)
			// witness-a's key hash with a signature that does not verify.
			name, sig, _ := strings.Cut(strings.TrimPrefix(c[0], "— "), " ")
			raw, _ := base64.StdEncoding.DecodeString(sig)
			raw[len(raw)-1] ^= 1
			return assemble(b, l, "— "+name+" "+base64.StdEncoding.EncodeToString(raw), c[1])
		}, true},
		{"replayed-from-older-checkpoint", func(n string) string {
			// The witnesses' valid lines of an earlier checkpoint.
			b, l, _ := sigLines(n)
			_, _, old := sigLines(first)
			return assemble(b, l, old...)
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.reopen(t, alice, nil)
			f.proxy.setNote(tc.rewrite)
			defer f.proxy.setNote(func(n string) string { return n })
			before := f.proxy.uploads.Load()
			_, err := put(c, g, "x.txt", "x")
			if tc.security {
				wantSecurity(t, err)
			} else {
				wantCode(t, err, coffer.ESTALECHECKPOINT)
			}
			if n := f.proxy.uploads.Load() - before; n != 0 {
				t.Fatalf("%d upload requests", n)
			}
		})
	}
	// A quorum of 1 accepts one valid cosignature.
	t.Run("quorum-1", func(t *testing.T) {
		c := f.reopen(t, alice, func(o *clientlib.Options) { o.Quorum = 1 })
		f.proxy.setNote(cases[1].rewrite)
		defer f.proxy.setNote(func(n string) string { return n })
		if _, err := put(c, g, "y.txt", "y"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFreshnessMapProofAttacks: a map proof for another key, at another
// size, with a wrong entry or index, or an absent entry, never proves the
// head.
func TestFreshnessMapProofAttacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFreshFixture(t)
	alice := f.client(t, "alice", nil)
	g := mustGroup(t, alice, "map", nil)
	other := mustGroup(t, alice, "other", nil)
	// The entry of the other group, proven honestly.
	var otherProof api.MapProof
	f.proxy.setMapProofs(func(mp *api.MapProofs) {
		if len(mp.Proofs) == 1 {
			otherProof = mp.Proofs[0]
		}
	})
	if _, err := alice.Sync(ctx, other); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		lie      func(*api.MapProofs)
		security bool
	}{
		{"other-key", func(mp *api.MapProofs) { mp.Proofs[0] = otherProof }, true},
		{"other-size", func(mp *api.MapProofs) { mp.Size-- }, true},
		{"flipped-entry", func(mp *api.MapProofs) { mp.Proofs[0].Entry[len(mp.Proofs[0].Entry)-20] ^= 1 }, true},
		{"wrong-index", func(mp *api.MapProofs) { mp.Proofs[0].Index ^= 1 }, true},
		{"forged-proof", func(mp *api.MapProofs) {
			if len(mp.Proofs[0].Proof) == 0 {
				mp.Proofs[0].Proof = [][]byte{make([]byte, 32)}
			} else {
				mp.Proofs[0].Proof[0][0] ^= 1
			}
		}, true},
		{"no-proofs", func(mp *api.MapProofs) { mp.Proofs = nil }, true},
		// Absence cannot be proven; for a group the device verified it
		// means the witnesses never vouched for its head: retryable.
		{"absent", func(mp *api.MapProofs) { mp.Proofs[0] = api.MapProof{Index: -1} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.reopen(t, alice, func(o *clientlib.Options) { o.LogWait = 300 * time.Millisecond })
			f.proxy.setMapProofs(tc.lie)
			defer f.proxy.setMapProofs(func(*api.MapProofs) {})
			_, err := put(c, g, "x.txt", "x")
			if tc.security {
				wantSecurity(t, err)
			} else {
				wantCode(t, err, coffer.ESTALECHECKPOINT)
			}
		})
	}
}

// TestFreshnessForkedCheckpoint: a device that holds a cosigned checkpoint
// and is then shown a checkpoint signed by the log key that contradicts it
// (same size, another tree; or a tree that does not extend it) raises a
// security error naming both views, at once and every time: no retry turns
// it into an outage.
func TestFreshnessForkedCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFreshFixture(t)
	signer := f.dep.Signer
	alice := f.client(t, "alice", nil)
	g := mustGroup(t, alice, "fork", nil)
	held, err := alice.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	heldText, _, _ := strings.Cut(held, "\n\n")
	heldCP, err := translog.ParseCheckpointText(heldText + "\n")
	if err != nil {
		t.Fatal(err)
	}
	forge := func(cp translog.Checkpoint) func(string) string {
		return func(string) string {
			cp.Time = time.Now().Unix()
			n, err := signer.Sign(cp)
			if err != nil {
				t.Error(err)
			}
			// Without cosignatures: the contradiction is named before the
			// quorum is even counted.
			return n
		}
	}
	sameSize := heldCP
	sameSize.Root[0] ^= 1
	otherMap := heldCP
	otherMap.MapRoot[0] ^= 1
	cases := map[string]translog.Checkpoint{"same-size-other-root": sameSize, "same-size-other-map": otherMap}
	for name, cp := range cases {
		t.Run(name, func(t *testing.T) {
			f.proxy.setNote(forge(cp))
			defer f.proxy.setNote(func(n string) string { return n })
			var err error
			for range 2 {
				start := time.Now()
				_, err = alice.Sync(ctx, g)
				wantSecurity(t, err)
				msg := err.Error()
				for _, want := range []string{base64.StdEncoding.EncodeToString(heldCP.Root[:]), base64.StdEncoding.EncodeToString(cp.Root[:]),
					base64.StdEncoding.EncodeToString(cp.MapRoot[:]), "size " + strconv.FormatInt(cp.Size, 10)} {
					if !strings.Contains(msg, want) {
						t.Errorf("the fork error does not name %q: %v", want, msg)
					}
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("the fork took %v to report", d)
				}
			}
			var se *coffer.SecurityError
			if !errors.As(err, &se) || se.Check != "log" || !strings.Contains(err.Error(), "fork") {
				t.Errorf("got %v, want a log check naming the fork", err)
			}
		})
	}
}

// TestFreshnessCachedProof: a read whose group view was proven within
// MaxStaleness does not sync the group again; a sync against an unchanged
// checkpoint asks the log only for the checkpoint. (Costs in time are in
// docs/BENCHMARKS.md; this pins the number of requests.)
func TestFreshnessCachedProof(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFreshFixture(t)
	alice, bob := f.client(t, "alice", nil), f.client(t, "bob", nil)
	g := mustGroup(t, alice, "cached", nil)
	mustAdd(t, alice, bob, g, coffer.RoleReader)
	r, err := put(alice, g, "a.txt", "a")
	if err != nil {
		t.Fatal(err)
	}
	mustReadResource(t, bob, g, r.ID) // warms bob's view and proof
	before := f.proxy.groupReads.Load()
	for range 5 {
		mustReadResource(t, bob, g, r.ID)
	}
	if n := f.proxy.groupReads.Load() - before; n != 0 {
		t.Errorf("5 reads with a fresh cached head proof synced the group %d times, want 0", n)
	}
	// The checkpoint stays the same unless the log grows or is re-signed.
	f.proxy.setNote(func() func(string) string {
		var first atomic.Pointer[string]
		return func(n string) string { first.CompareAndSwap(nil, &n); return *first.Load() }
	}())
	if _, err := bob.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	before = f.proxy.logRequests.Load()
	res, err := bob.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.proxy.logRequests.Load() - before; n != 1 {
		t.Errorf("a sync against an unchanged checkpoint made %d log requests, want 1 (the checkpoint)", n)
	}
	if p, ok := bob.HeadProof(g); !ok || p.Seq != res.State.Seq || p.Head != res.State.Head {
		t.Errorf("HeadProof = %+v, %v; want the synced head", p, ok)
	}
}

// TestFreshnessTwoAdminsFork: the server forks a group. alice adds carol
// (commit X at seq n+1, logged and witnessed); then the server drops X from
// what it serves, shows dave the group and the checkpoint from before, and
// accepts dave's own commit Y at the same seq n+1, which it logs after X.
// Both witness processes refuse every checkpoint that holds Y (a second
// commit n+1: rule duplicate), so no cosigned checkpoint ever holds it, and
// cofferd logs their refusals. dave's write never succeeds, and once dave
// and alice are shown the other's branch, each names the fork as a
// security error.
func TestFreshnessTwoAdminsFork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFreshFixture(t)
	alice, dave := f.client(t, "alice", nil), f.client(t, "dave", nil)
	carol, erin := f.client(t, "carol", nil), f.client(t, "erin", nil)
	g := mustGroup(t, alice, "forked", nil)
	mustAdd(t, alice, dave, g, coffer.RoleAdmin)
	mustVerify(t, alice, carol)
	mustVerify(t, dave, erin)

	// dave's own view of the server, frozen as it is now.
	daveProxy := newCheckpointProxy(t, f.dep.URL, nil)
	daveVia := MustNewClientWith(t, daveProxy.url, KeyStore(t, dave), &f.opts)
	daveProxy.freeze(t, g, daveVia)
	var frozen atomic.Pointer[string]
	daveProxy.setNote(func(n string) string { frozen.CompareAndSwap(nil, &n); return *frozen.Load() })
	if _, err := daveVia.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	db := mustDBAt(t, f.dep.DatabaseURL)
	var (
		seq, epoch int64
		head       []byte
		state      []byte
	)
	if err := db.QueryRow(ctx, `SELECT head_seq, head_hash, epoch, state FROM groups WHERE id = $1`, g).Scan(&seq, &head, &epoch, &state); err != nil {
		t.Fatal(err)
	}
	// The state's rows (one per account ever a member) go back with it.
	var (
		stateIDs            []coffer.AccountID
		stateMembers, roles [][]byte
	)
	if err := db.QueryRow(ctx, `SELECT array_agg(account_id), array_agg(member), array_agg(roles) FROM group_state_accounts WHERE group_id = $1`, g).Scan(&stateIDs, &stateMembers, &roles); err != nil {
		t.Fatal(err)
	}
	// X: alice adds carol; it is logged and the witnesses cosign it.
	if err := alice.AddMember(ctx, g, "carol", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	var xEntry int64
	if err := db.QueryRow(ctx, `SELECT id FROM log_entries WHERE group_id = $1 AND seq = $2`, g, seq+1).Scan(&xEntry); err != nil {
		t.Fatal(err)
	}
	xIndex := leafIndex(t, db, xEntry)
	_, witnessed := f.dep.waitCosigned(t, xIndex+1)
	// The server drops X from what it serves (the log keeps it), and the
	// rule that the log holds one commit per seq.
	mustExec(t, db, `DELETE FROM commits WHERE group_id = $1 AND seq = $2`, g, seq+1)
	mustExec(t, db, `DROP INDEX log_entries_commit`)
	mustExec(t, db, `UPDATE groups SET head_seq = $2, head_hash = $3, epoch = $4, state = $5 WHERE id = $1`, g, seq, head, epoch, state)
	mustExec(t, db, `DELETE FROM group_state_accounts WHERE group_id = $1`, g)
	mustExec(t, db, `INSERT INTO group_state_accounts SELECT $1, * FROM unnest($2::uuid[], $3::bytea[], $4::bytea[])`, g, stateIDs, stateMembers, roles)

	// Y: dave, shown the old head and the old checkpoint, adds erin at the
	// same seq. The server takes it; the log cannot hold it beside X.
	err := daveVia.AddMember(ctx, g, "erin", coffer.RoleReader)
	if err == nil {
		t.Fatal("dave's commit at the seq of alice's witnessed commit succeeded")
	}
	t.Logf("dave's forked write: %v", err)
	var y int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM commits WHERE group_id = $1 AND seq = $2`, g, seq+1).Scan(&y); err != nil || y != 1 {
		t.Fatalf("the server did not take dave's commit (%d rows, %v): the fork did not happen", y, err)
	}
	var yEntry int64
	if err := db.QueryRow(ctx, `SELECT id FROM log_entries WHERE group_id = $1 AND seq = $2 AND id <> $3`, g, seq+1, xEntry).Scan(&yEntry); err != nil {
		t.Fatalf("the server did not log dave's commit: %v", err)
	}
	// cofferd's sequencer will not put Y in the tree beside X (the heads map
	// holds seq n+1 already); the server, malicious, does it by hand and
	// signs a checkpoint that holds Y, which cofferd pushes to the
	// witnesses. They refuse it: no cosignature on any tree with Y.
	if yIndex := f.dep.appendForged(t, db, yEntry); yIndex <= xIndex {
		t.Fatalf("Y is leaf %d, X leaf %d: the server logged Y first", yIndex, xIndex)
	}
	f.dep.wantWitnessesRefuse(t, db, yEntry, "duplicate")
	// Left with a checkpoint both witnesses cosigned (it holds X), the
	// server serves that to its clients.
	f.proxy.setNote(func(string) string { return witnessed })

	// Shown the real checkpoint again, dave names the fork: the witnesses
	// vouch for X at seq n+1, the server serves Y.
	_, err = dave.Sync(ctx, g)
	wantSecurity(t, err)
	if !strings.Contains(err.Error(), "witnesses vouch for head seq "+strconv.FormatInt(seq+1, 10)) {
		t.Errorf("dave's error does not name the witnessed head: %v", err)
	}
	// alice, who verified X, is served Y at the same seq.
	_, err = alice.Sync(ctx, g)
	wantSecurity(t, err)
	// Neither writes on either branch.
	_, err = put(dave, g, "d.txt", "d")
	wantSecurity(t, err)
	_, err = put(alice, g, "a.txt", "a")
	wantSecurity(t, err)
}
