package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/userkey"
)

// Suite v2 accounts through clientlib against a real cofferd, with the
// server played by a rewriting proxy where it attacks.

// rewriteProxy forwards to srv and lets rewrite change the JSON answer of
// any GET whose path it matches; rewrite returns the new body, or nil to
// leave it.
type rewriteProxy struct {
	*httptest.Server
	mu      sync.Mutex
	rewrite func(path string, body []byte) []byte
}

// newProxiedServer starts a server that also accepts the proxy's origin,
// so that accounts made through the proxy are bound to it.
func newProxiedServer(t *testing.T) (*Server, *rewriteProxy) {
	t.Helper()
	p := &rewriteProxy{}
	var rp atomic.Pointer[httputil.ReverseProxy]
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rp.Load().ServeHTTP(w, r) }))
	t.Cleanup(p.Close)
	srv := MustServerWith(t, func(c *cofferd.Config) { c.Origins += "," + p.URL })
	target, _ := url.Parse(srv.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		f := p.rewrite
		p.mu.Unlock()
		if f == nil || resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if nb := f(resp.Request.URL.Path, body); nb != nil {
			body = nb
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		return nil
	}
	rp.Store(proxy)
	return srv, p
}

func (p *rewriteProxy) set(f func(path string, body []byte) []byte) {
	p.mu.Lock()
	p.rewrite = f
	p.mu.Unlock()
}

func mustCreateAccount(t testing.TB, url, handle, device string) (*clientlib.Client, *coffer.RecoveryKey) {
	t.Helper()
	c := MustNewClient(t, url, NewCanaryKeyStore())
	rk, err := c.CreateAccount(context.Background(), handle, device)
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("recovery key", rk[:])
	return c, rk
}

// mustLink links a new client (of url) to the account of handle, approved
// by approver.
func mustLink(t testing.TB, url string, approver *clientlib.Client, handle, device string) *clientlib.Client {
	t.Helper()
	ctx := context.Background()
	c := MustNewClient(t, url, NewCanaryKeyStore())
	pl, err := c.StartDeviceLink(ctx, handle, device)
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("pairing code", []byte(pl.Code()))
	if _, err := approver.ApproveDeviceLink(ctx, pl.Code()); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := pl.Wait(wctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return c
}

func wantSecurityIn(t *testing.T, what string, err error) {
	t.Helper()
	if !coffer.IsSecurity(err) {
		t.Fatalf("%s: err = %v, want a security error", what, err)
	}
	t.Logf("%s: detected: %v", what, err)
}

// TestAccountDevicesLifecycle: link, revoke, rotate and recover through
// clientlib, with the checks a device makes of itself.
func TestAccountDevicesLifecycle(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	ctx := context.Background()
	laptop, rk := mustCreateAccount(t, srv.URL(), "alice", "laptop")
	sn := laptop.AccountSafetyNumber()
	phone := mustLink(t, srv.URL(), laptop, "alice", "phone")
	if phone.AccountSafetyNumber() != sn || phone.AccountID() != laptop.AccountID() {
		t.Fatalf("the phone is another account")
	}
	ds, err := laptop.Devices(ctx)
	if err != nil || len(ds) != 2 {
		t.Fatalf("devices %+v, %v", ds, err)
	}
	// A device cannot revoke itself, nor a device the account lacks.
	if err := phone.RevokeDevice(ctx, "phone"); coffer.ErrorCode(err) != coffer.EINVALID {
		t.Fatalf("self-revocation: %v", err)
	}
	if err := phone.RevokeDevice(ctx, "toaster"); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("revoking an unknown device: %v", err)
	}
	// A third device, and a group with content from before the revocation.
	desk := mustLink(t, srv.URL(), laptop, "alice", "desk")
	g, err := phone.CreateGroup(ctx, "notes", nil)
	if err != nil {
		t.Fatal(err)
	}
	before, err := phone.Put(ctx, g, strings.NewReader("before"), clientlib.Meta{Name: "before"})
	if err != nil {
		t.Fatal(err)
	}
	if err := phone.RevokeDevice(ctx, "laptop"); err != nil {
		t.Fatal(err)
	}
	// The desk, which did not make the rotation, takes the new user key
	// from the chain when it logs in again, and reads old and new.
	after, err := phone.Put(ctx, g, strings.NewReader("after"), clientlib.Meta{Name: "after"})
	if err != nil {
		t.Fatal(err)
	}
	for r, want := range map[coffer.ResourceID]string{before.ID: "before", after.ID: "after"} {
		if got := string(mustReadResource(t, desk, g, r)); got != want {
			t.Fatalf("the desk reads %q, want %q", got, want)
		}
	}
	if _, err := desk.Put(ctx, g, strings.NewReader("from the desk"), clientlib.Meta{Name: "desk"}); err != nil {
		t.Fatalf("the desk writes after another device's rotation: %v", err)
	}
	if _, err := laptop.Devices(ctx); !errors.Is(err, clientlib.ErrDeviceRevoked) {
		t.Fatalf("the revoked laptop's sync: %v, want ErrDeviceRevoked", err)
	}
	if err := laptop.Login(ctx); coffer.ErrorCode(err) != coffer.EUNAUTHORIZED {
		t.Fatalf("the revoked laptop logs in: %v", err)
	}
	if phone.AccountSafetyNumber() != sn {
		t.Fatal("the safety number changed with a revocation")
	}
	// A rotation without revocation, then a recovery that walks back
	// through three user keys.
	if err := phone.RotateUserKey(ctx); err != nil {
		t.Fatal(err)
	}
	tablet := MustNewClient(t, srv.URL(), NewCanaryKeyStore())
	wrong := coffer.NewRecoveryKey()
	if _, err := tablet.Recover(ctx, "alice", wrong.Words(), "tablet"); err == nil {
		t.Fatal("recovered with another key's words")
	}
	rk2, err := tablet.Recover(ctx, "alice", rk.Words(), "tablet")
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("recovery key", rk2[:])
	if tablet.AccountSafetyNumber() != sn {
		t.Fatal("the recovered device shows another safety number")
	}
	again := MustNewClient(t, srv.URL(), NewCanaryKeyStore())
	if _, err := again.Recover(ctx, "alice", rk.Words(), "again"); err == nil {
		t.Fatal("the replaced recovery words still work")
	}
	ds, err = phone.Devices(ctx)
	if err != nil || len(ds) != 3 {
		t.Fatalf("after recovery the phone lists %+v, %v; want phone, desk and tablet", ds, err)
	}
	if got := string(mustReadResource(t, tablet, g, after.ID)); got != "after" {
		t.Fatalf("the recovered tablet reads %q", got)
	}
}

// TestAccountPairingSwappedKeys: the server relays other keys than the new
// device posted; the approving device refuses them, and signs nothing.
func TestAccountPairingSwappedKeys(t *testing.T) {
	t.Parallel()
	srv, p := newProxiedServer(t)
	ctx := context.Background()
	laptop, _ := mustCreateAccount(t, p.URL, "alice", "laptop")
	evil := MustNewClient(t, srv.URL(), NewCanaryKeyStore())
	evilLink, err := evil.StartDeviceLink(ctx, "alice", "evil")
	if err != nil {
		t.Fatal(err)
	}
	var evilDevice api.PairingDevice
	if err := srv.getJSON(t, "/v1/pairings/"+mustPairingID(t, evilLink.Code()), &struct {
		Device *api.PairingDevice `json:"device"`
	}{&evilDevice}); err != nil {
		t.Fatal(err)
	}
	phone := MustNewClient(t, srv.URL(), NewCanaryKeyStore())
	pl, err := phone.StartDeviceLink(ctx, "alice", "phone")
	if err != nil {
		t.Fatal(err)
	}
	for _, swap := range []func(d *api.PairingDevice){
		func(d *api.PairingDevice) { d.SigningKey = evilDevice.SigningKey },
		func(d *api.PairingDevice) { d.EncryptionKey = evilDevice.EncryptionKey },
		func(d *api.PairingDevice) { d.ID = evilDevice.ID },
		func(d *api.PairingDevice) { d.Name = "phone " },
		func(d *api.PairingDevice) { *d = evilDevice },
	} {
		p.set(func(path string, body []byte) []byte {
			if !strings.HasPrefix(path, "/v1/pairings/") {
				return nil
			}
			var pr api.Pairing
			if json.Unmarshal(body, &pr) != nil {
				return nil
			}
			swap(&pr.Device)
			b, _ := json.Marshal(pr)
			return b
		})
		// A security error, from the code's MAC, before anything is signed:
		// with a colluding server an approval of the swapped keys would be
		// stored and used, so an honest server's refusal is not enough.
		_, err := laptop.ApproveDeviceLink(ctx, pl.Code())
		wantSecurityIn(t, "approving swapped keys", err)
	}
	p.set(nil)
	var pr api.Pairing
	if err := srv.getJSON(t, "/v1/pairings/"+mustPairingID(t, pl.Code()), &pr); err != nil || pr.Approval != nil {
		t.Fatalf("a swapped pairing was approved: %+v, %v", pr.Approval, err)
	}
}

// TestAccountPairingForgedApproval: the server answers the new device's
// poll with an approval of its own making (a real account's link, another
// pairing's approval, a bad MAC); the new device refuses each, and does not
// join.
func TestAccountPairingForgedApproval(t *testing.T) {
	t.Parallel()
	srv, p := newProxiedServer(t)
	ctx := context.Background()
	laptop, _ := mustCreateAccount(t, srv.URL(), "alice", "laptop")
	mallory, _ := mustCreateAccount(t, srv.URL(), "mallory", "m")
	// A genuine approval, for another pairing of mallory's: the server has
	// it in its database.
	other := MustNewClient(t, srv.URL(), NewCanaryKeyStore())
	opl, err := other.StartDeviceLink(ctx, "mallory", "m2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.ApproveDeviceLink(ctx, opl.Code()); err != nil {
		t.Fatal(err)
	}
	var real api.Pairing
	if err := srv.getJSON(t, "/v1/pairings/"+mustPairingID(t, opl.Code()), &real); err != nil || real.Approval == nil {
		t.Fatalf("no approval to replay: %v", err)
	}
	var fake atomic.Pointer[api.AccountLinks]
	for name, forge := range map[string]func(pr *api.Pairing){
		"another pairing's approval": func(pr *api.Pairing) { pr.Approval = real.Approval },
		"a bad MAC": func(pr *api.Pairing) {
			a := *real.Approval
			a.MAC = bytes.Repeat([]byte{7}, 32)
			pr.Approval = &a
		},
		// The strongest forgery: a whole "alice" chain of the server's own
		// making, with a well-formed add-device of exactly this device.
		// Only the approval MAC, which needs the code, tells it apart.
		"an account of the server's making": func(pr *api.Pairing) {
			chain, link := fakeAccountWith(t, p.URL, pr.Handle, pr.Device)
			fake.Store(&chain)
			pr.Approval = &api.PairingApproval{Link: api.FromLink(link), MAC: bytes.Repeat([]byte{9}, 32)}
		},
	} {
		phone := MustNewClient(t, p.URL, NewCanaryKeyStore())
		pl, err := phone.StartDeviceLink(ctx, "alice", "phone")
		if err != nil {
			t.Fatal(err)
		}
		fake.Store(nil)
		p.set(func(path string, body []byte) []byte {
			if strings.HasSuffix(path, "/links") {
				if f := fake.Load(); f != nil {
					b, _ := json.Marshal(*f)
					return b
				}
				return nil
			}
			if !strings.HasPrefix(path, "/v1/pairings/") {
				return nil
			}
			var pr api.Pairing
			if json.Unmarshal(body, &pr) != nil {
				return nil
			}
			forge(&pr)
			b, _ := json.Marshal(pr)
			return b
		})
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = pl.Wait(wctx, 20*time.Millisecond)
		cancel()
		wantSecurityIn(t, name, err)
		if phone.IsAccountV2() {
			t.Fatalf("%s: the phone joined an account", name)
		}
		p.set(nil)
	}
	ds, err := laptop.Devices(ctx)
	if err != nil || len(ds) != 1 {
		t.Fatalf("alice has %d devices (%v), want 1", len(ds), err)
	}
}

// TestAccountServerChains: the server adds a link of its own making,
// drops links, or serves another account's chain; the account's devices
// and its contacts refuse each.
func TestAccountServerChains(t *testing.T) {
	t.Parallel()
	srv, p := newProxiedServer(t)
	ctx := context.Background()
	laptop, _ := mustCreateAccount(t, p.URL, "alice", "laptop")
	phone := mustLink(t, p.URL, laptop, "alice", "phone")
	bob, _ := mustCreateAccount(t, p.URL, "bob", "b")
	if _, err := bob.Verify(ctx, "alice", laptop.AccountSafetyNumber()); err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.Devices(ctx); err != nil {
		t.Fatal(err)
	}
	var links api.AccountLinks
	if err := srv.getJSON(t, "/v1/handles/alice/links?after=0", &links); err != nil {
		t.Fatal(err)
	}
	var mlinks api.AccountLinks
	if err := srv.getJSON(t, "/v1/handles/bob/links?after=0", &mlinks); err != nil {
		t.Fatal(err)
	}
	// The next link, forged: the laptop's add-device replayed one seq
	// later, and one with a signature flipped.
	replayed := links.Links[1]
	flipped := links.Links[1]
	flipped.Signature = bytes.Clone(flipped.Signature)
	flipped.Signature[10] ^= 1
	type attack struct {
		links    func(al *api.AccountLinks)
		chainSeq func(seq uint64) uint64 // what the account's lookup says
	}
	for name, a := range map[string]attack{
		"a replayed link": {func(al *api.AccountLinks) {
			al.Links = append(al.Links, replayed)
			al.HeadSeq++
		}, func(seq uint64) uint64 { return seq + 1 }},
		"a link with a bad signature": {func(al *api.AccountLinks) {
			al.Links = append(al.Links, flipped)
			al.HeadSeq++
		}, func(seq uint64) uint64 { return seq + 1 }},
		"a rolled back chain": {func(al *api.AccountLinks) {
			al.Links, al.HeadSeq = nil, 1
		}, func(uint64) uint64 { return 1 }},
		"another account's chain": {func(al *api.AccountLinks) { *al = mlinks }, func(seq uint64) uint64 { return seq + 1 }},
	} {
		p.set(func(path string, body []byte) []byte {
			if strings.HasSuffix(path, "/links") {
				var al api.AccountLinks
				if json.Unmarshal(body, &al) != nil {
					return nil
				}
				a.links(&al)
				b, _ := json.Marshal(al)
				return b
			}
			if path == "/v1/handles/alice" || path == "/v1/accounts/"+laptop.AccountID().String() {
				var acct api.Account
				if json.Unmarshal(body, &acct) != nil {
					return nil
				}
				acct.ChainSeq = a.chainSeq(acct.ChainSeq)
				b, _ := json.Marshal(acct)
				return b
			}
			return nil
		})
		_, err := phone.Devices(ctx)
		wantSecurityIn(t, name+" (the account's own device)", err)
		_, err = bob.Verify(ctx, "alice", laptop.AccountSafetyNumber())
		wantSecurityIn(t, name+" (a contact)", err)
		p.set(nil)
	}
	// Honest again, both still trust the account.
	if _, err := phone.Devices(ctx); err != nil {
		t.Fatal(err)
	}
	if ct, err := bob.Verify(ctx, "alice", laptop.AccountSafetyNumber()); err != nil || ct.State != clientlib.Verified {
		t.Fatalf("bob's contact after the attacks: %+v, %v", ct, err)
	}
}

// fakeAccountWith builds, as a malicious server would with keys of its
// own, a chain for handle at origin whose genesis device then adds the
// pairing device d: valid signatures, and a real wrap of the fake user key
// to d. It returns the whole chain as the links endpoint serves it, and the
// add-device link with the author's signature only.
func fakeAccountWith(t *testing.T, origin string, handle coffer.Handle, d api.PairingDevice) (api.AccountLinks, coffer.SignedLink) {
	t.Helper()
	u, _ := url.Parse(origin)
	account := coffer.NewAccountID()
	seed := bytes.Repeat([]byte{0x42}, coffer.DeviceSeedSize)
	sk, dk, err := coffer.DeviceKeysFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	uk, _ := userkey.Generate()
	usk, _ := userkey.HybridSigningKey(uk)
	rk := coffer.NewRecoveryKey()
	dev := coffer.NewDeviceID()
	seal := func(to []byte, r userkey.Recipient) []byte {
		w, err := userkey.Seal(to, account, 1, r, uk)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	g := &coffer.AccountLink{Account: account, Seq: 1, Kind: coffer.LinkGenesis, AuthorKind: coffer.AuthorDevice, AuthorDevice: dev,
		Origin: coffer.CanonicalOrigin(u), Handle: handle,
		Device:  coffer.DeviceKeys{ID: dev, Name: "server", SigningKey: sk.Public(), EncryptionKey: dk.PublicKey().Bytes()},
		UserKey: uk.PublicKey().Bytes(), UserSigningKey: usk.Public(),
		RecoveryCommitment: rk.Commitment(account), RecoveryEncryptionKey: rk.EncryptionKey().PublicKey().Bytes(),
		DeviceWraps:  []coffer.DeviceWrap{{Device: dev, Wrap: seal(dk.PublicKey().Bytes(), userkey.Recipient{Device: dev})}},
		RecoveryWrap: seal(rk.EncryptionKey().PublicKey().Bytes(), userkey.RecoveryRecipient)}
	gl := coffer.SignLink(g, sk, nil)
	nk, err := coffer.ParseHybridPublicKey(d.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	add := &coffer.AccountLink{Account: account, Seq: 2, Prev: gl.Hash(), Kind: coffer.LinkAddDevice, AuthorKind: coffer.AuthorDevice, AuthorDevice: dev,
		Device:      coffer.DeviceKeys{ID: d.ID, Name: d.Name, SigningKey: nk, EncryptionKey: d.EncryptionKey},
		DeviceWraps: []coffer.DeviceWrap{{Device: d.ID, Wrap: seal(d.EncryptionKey, userkey.Recipient{Device: d.ID})}}}
	body := add.Marshal()
	return api.AccountLinks{AccountID: account, Links: []api.SignedLink{api.FromLink(gl)}, HeadSeq: 1},
		coffer.SignedLink{Body: body, Signature: sk.Sign(coffer.LabelAccountLink, body)}
}

func mustPairingID(t *testing.T, code string) string {
	t.Helper()
	c, err := coffer.ParsePairingCode(code)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID()
}

// getJSON GETs path from the server without a session.
func (s *Server) getJSON(t *testing.T, path string, v any) error {
	t.Helper()
	resp, err := http.Get(s.URL() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return errors.New(resp.Status + ": " + string(b))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestAccountResetShowsAsChanged: the handle a contact verified now names
// a new account (a new genesis: the account was reset, or the server
// swapped it). The contact shows as changed, and writes to a group that
// holds the old account stop, as for a suite v1 key change.
func TestAccountResetShowsAsChanged(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	ctx := context.Background()
	alice, _ := mustCreateAccount(t, srv.URL(), "alice", "laptop")
	bob, _ := mustCreateAccount(t, srv.URL(), "bob", "b")
	if _, err := bob.Verify(ctx, "alice", alice.AccountSafetyNumber()); err != nil {
		t.Fatal(err)
	}
	g, err := bob.CreateGroup(ctx, "g", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.AddMember(ctx, g, "alice", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	// The old account loses its handle; a new one takes it.
	db := mustDB(t, srv)
	mustExec(t, db, `UPDATE accounts SET handle = 'alice-old' WHERE id = $1`, alice.AccountID())
	reset, _ := mustCreateAccount(t, srv.URL(), "alice", "new laptop")
	if reset.AccountSafetyNumber() == alice.AccountSafetyNumber() {
		t.Fatal("a new genesis kept the safety number")
	}
	a, err := bob.Lookup(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != reset.AccountID() {
		t.Fatalf("the lookup found %s, want the new account", a.ID)
	}
	// The group's member is still the account bob verified: writes go on.
	if _, err := bob.Put(ctx, g, strings.NewReader("x"), clientlib.Meta{Name: "x"}); err != nil {
		t.Fatalf("bob's write to the group of the verified account: %v", err)
	}
	// The new account under the handle is refused until verified again.
	g2, err := bob.CreateGroup(ctx, "g2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.AddMember(ctx, g2, "alice", coffer.RoleReader); !coffer.IsSecurity(err) || !strings.Contains(err.Error(), string(coffer.EKEYCHANGED)) {
		t.Fatalf("adding the new alice: %v, want a security error (changed contact)", err)
	}
	ct, err := bob.Contact("alice")
	if err != nil || ct.State != clientlib.Changed || ct.AccountID != alice.AccountID() {
		t.Fatalf("bob's contact of alice: state %v, account %s (%v); want changed, still pinned to %s", ct.State, ct.AccountID, err, alice.AccountID())
	}
	if ct.SafetyNumber() != reset.AccountSafetyNumber() {
		t.Fatal("the contact shows another safety number than the new account's")
	}
}
