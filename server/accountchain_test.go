package server_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
)

func TestChainRegister(t *testing.T) {
	ts := MustServer(t)

	a := accounttest.MustAccount(t, ts.URL, "alice")
	r := ts.Do(t, http.MethodPost, "/v1/accounts", "", registerRequest(a))
	r.Check(t, http.StatusCreated, "")
	var acct api.Account
	r.Decode(t, &acct)
	if acct.ID != a.ID || acct.Handle != "alice" || acct.ChainSeq != 1 || !bytes.Equal(acct.Identity, a.State.Identity().Marshal()) {
		t.Fatalf("account %+v: want the chain's id %s, handle, identity and chain_seq 1", acct, a.ID)
	}
	// A current device logs in.
	if r, _ := login(t, ts, a); r.Status != http.StatusOK {
		t.Fatalf("login with the genesis device: %d %s", r.Status, r.Body)
	}

	other := accounttest.MustAccount(t, ts.URL, "bob")
	elsewhere := accounttest.MustAccount(t, "https://elsewhere.example:443", "carol")
	tests := []struct {
		name     string
		req      func() api.RegisterRequest
		status   int
		code     coffer.Code
		wantRule string
	}{
		{"genesis for another origin", func() api.RegisterRequest { return registerRequest(elsewhere) }, 400, coffer.EINVALID, coffer.RuleOrigin},
		{"identity is not the genesis's", func() api.RegisterRequest {
			req := registerRequest(other)
			id := MustIdentity(t, "bob") // same handle, other keys, validly self-signed
			req.Identity, req.SelfSignature = id.Public.Marshal(), coffer.Sign(id.Key, coffer.LabelIdentity, id.Public.Marshal())
			return req
		}, 400, coffer.EINVALID, ""},
		{"self-signature by a device key", func() api.RegisterRequest {
			req := registerRequest(other)
			req.SelfSignature = coffer.Sign(MustIdentity(t, "x").Key, coffer.LabelIdentity, req.Identity)
			return req
		}, 400, coffer.EINVALID, ""},
		{"genesis signed by another device", func() api.RegisterRequest {
			req := registerRequest(other)
			req.Genesis.Signature = accounttest.MustDevice(t).Key.Sign(coffer.LabelAccountLink, req.Genesis.Body)
			return req
		}, 400, coffer.EINVALID, coffer.RuleSignature},
		{"genesis with a device signature", func() api.RegisterRequest {
			req := registerRequest(other)
			req.Genesis.DeviceSignature = other.Device(0).Key.Sign(coffer.LabelAccountLinkDevice, req.Genesis.Body)
			return req
		}, 400, coffer.EINVALID, coffer.RuleDeviceSignature},
		{"a link that is not a genesis", func() api.RegisterRequest {
			b := accounttest.MustAccount(t, ts.URL, "dave")
			req := registerRequest(b)
			add := b.AddDevice(b.Device(0), accounttest.MustDevice(t))
			g := api.FromLink(add)
			req.Genesis = &g
			return req
		}, 400, coffer.EINVALID, coffer.RuleGenesis},
		{"truncated genesis", func() api.RegisterRequest {
			req := registerRequest(other)
			req.Genesis.Body = req.Genesis.Body[:100]
			return req
		}, 400, coffer.EINVALID, coffer.RuleMalformed},
		{"same account id again", func() api.RegisterRequest { return registerRequest(a) }, 409, coffer.ECONFLICT, ""},
		{"same handle, another account", func() api.RegisterRequest {
			return registerRequest(accounttest.MustAccount(t, ts.URL, "alice"))
		}, 409, coffer.ECONFLICT, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ts.Do(t, http.MethodPost, "/v1/accounts", "", tt.req()).Check(t, tt.status, tt.code)
			if p.Rule != tt.wantRule {
				t.Errorf("rule %q, want %q (%s)", p.Rule, tt.wantRule, p.Detail)
			}
		})
	}
	// None of the refused registrations left a row behind.
	var n int
	if err := ts.Pool.QueryRow(t.Context(), `SELECT count(*) FROM accounts`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d accounts (%v), want 1", n, err)
	}
	// Bob registers once the defects are gone.
	ts.Do(t, http.MethodPost, "/v1/accounts", "", registerRequest(other)).Check(t, http.StatusCreated, "")
}

func appendPath(a *accounttest.Account) string { return "/v1/accounts/" + a.ID.String() + "/links" }

func TestChainAppend(t *testing.T) {
	ts := MustServer(t)
	a, tok := MustRegisterChain(t, ts, "alice")
	phone := accounttest.MustDevice(t)
	mustAppend(t, ts, a, a.AddDevice(a.Device(0), phone))

	send := func(sl coffer.SignedLink, self []byte) *response {
		return ts.Do(t, http.MethodPost, appendPath(a), "", appendRequest(sl, self))
	}
	rule := func(t *testing.T, r *response, status int, code coffer.Code, rule string) {
		t.Helper()
		if p := r.Check(t, status, code); p.Rule != rule {
			t.Errorf("rule %q, want %q (%s)", p.Rule, rule, p.Detail)
		}
	}

	t.Run("forged links", func(t *testing.T) {
		stranger := accounttest.MustDevice(t)
		// A device the account does not have authors an add-device of
		// itself: what a server would forge to slip a key in.
		l := a.AddDeviceLink(stranger, stranger)
		rule(t, send(coffer.SignLink(l, stranger.Key, stranger.Key), nil), 400, coffer.EINVALID, coffer.RuleLinkAuthor)
		// A current device's id, another key's signature.
		l = a.AddDeviceLink(a.Device(0), stranger)
		rule(t, send(coffer.SignLink(l, stranger.Key, stranger.Key), nil), 400, coffer.EINVALID, coffer.RuleSignature)
		// The new device never signed.
		rule(t, send(coffer.SignLink(l, a.Device(0).Key, nil), nil), 400, coffer.EINVALID, coffer.RuleDeviceSignature)
		// Signed by the recovery key of another account.
		l = a.AddDeviceLink(a.Device(0), stranger)
		l.AuthorKind, l.AuthorDevice, l.AuthorRecoveryKey = coffer.AuthorRecovery, coffer.DeviceID{}, coffer.NewRecoveryKey().SigningKey().Public()
		rule(t, send(coffer.SignLink(l, coffer.NewRecoveryKey().SigningKey(), stranger.Key), nil), 400, coffer.EINVALID, coffer.RuleLinkAuthor)
		// A device that revokes itself.
		rule(t, send(a.Revoke(phone, phone), a.SelfSignature()), 400, coffer.EINVALID, coffer.RuleLinkAuthor)
		// Re-adding a device the account has.
		rule(t, send(a.AddDevice(a.Device(0), phone), nil), 400, coffer.EINVALID, coffer.RuleDuplicateDevice)
		// A link of another account, posted under this one.
		b := accounttest.MustAccount(t, ts.URL, "bob")
		r := ts.Do(t, http.MethodPost, appendPath(a), "", appendRequest(b.AddDevice(b.Device(0), accounttest.MustDevice(t)), nil))
		rule(t, r, 400, coffer.EINVALID, coffer.RuleAccount)
		// A genesis where a link belongs.
		rule(t, send(coffer.SignLink(func() *coffer.AccountLink {
			l := a.AddDeviceLink(a.Device(0), stranger)
			l.Kind = coffer.LinkGenesis
			return l
		}(), a.Device(0).Key, nil), nil), 400, coffer.EINVALID, coffer.RuleMalformed)
	})

	t.Run("seq conflict", func(t *testing.T) {
		first, second := accounttest.MustDevice(t), accounttest.MustDevice(t)
		l1 := a.AddDevice(a.Device(0), first)
		l2 := a.AddDevice(phone, second) // built on the same head
		mustAppend(t, ts, a, l1)
		if p := send(l2, nil).Check(t, http.StatusConflict, coffer.ECONFLICT); p.HeadSeq != 3 {
			t.Errorf("409 with head_seq %d, want 3", p.HeadSeq)
		}
		// A link from the future is a race too.
		far := a.AddDeviceLink(a.Device(0), second)
		far.Seq += 5
		if p := send(coffer.SignLink(far, a.Device(0).Key, second.Key), nil).Check(t, http.StatusConflict, coffer.ECONFLICT); p.HeadSeq != 3 {
			t.Errorf("409 with head_seq %d, want 3", p.HeadSeq)
		}
	})

	t.Run("rotation needs the new self-signature", func(t *testing.T) {
		sl := a.Rotate(a.Device(0))
		old := a.SelfSignature()
		rule(t, send(sl, nil), 400, coffer.EINVALID, "")
		rule(t, send(sl, old), 400, coffer.EINVALID, "") // the old identity's
		rule(t, send(sl, bytes.Repeat([]byte{1}, 63)), 400, coffer.EINVALID, "")
		// And a link that rotates nothing carries none.
		rule(t, send(a.SetRecovery(a.Device(0)), old), 400, coffer.EINVALID, "")
	})

	t.Run("rotation changes the identity and ends sessions", func(t *testing.T) {
		oldKey := a.SigningKey()
		oldRefresh := tok.RefreshToken
		mustAppend(t, ts, a, a.Revoke(a.Device(0), phone))
		var acct api.Account
		_, tok2 := login(t, ts, a)
		if tok2.AccessToken == "" {
			t.Fatal("the remaining device cannot log in with the new user signing key")
		}
		ts.Do(t, http.MethodGet, "/v1/accounts/"+a.ID.String(), tok2.AccessToken, nil).Decode(t, &acct)
		if !bytes.Equal(acct.Identity, a.State.Identity().Marshal()) || acct.ChainSeq != a.State.Seq {
			t.Fatalf("accounts row after the rotation: chain_seq %d, identity changed %v", acct.ChainSeq, !bytes.Equal(acct.Identity, a.State.Identity().Marshal()))
		}
		if err := a.State.Identity().VerifySelfSignature(acct.SelfSignature); err != nil {
			t.Fatalf("the stored self-signature is not the new identity's: %v", err)
		}
		// The refresh token of the session from before the rotation is dead.
		ts.Do(t, http.MethodPost, "/v1/auth/refresh", "", api.RefreshRequest{RefreshToken: oldRefresh}).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		// The old user signing key no longer logs in.
		r := ts.Do(t, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "alice"})
		var ch api.ChallengeResponse
		r.Decode(t, &ch)
		stmt := coffer.LoginStatement(ts.URL, ch.AccountID, ch.Challenge)
		ts.Do(t, http.MethodPost, "/v1/auth/login", "", api.LoginRequest{AccountID: ch.AccountID, Origin: ts.URL, Challenge: ch.Challenge,
			Signature: coffer.Sign(oldKey, coffer.LabelLogin, stmt)}).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		// The revoked device cannot add a device any more.
		d := accounttest.MustDevice(t)
		l := a.AddDeviceLink(phone, d)
		rule(t, send(coffer.SignLink(l, phone.Key, d.Key), nil), 400, coffer.EINVALID, coffer.RuleLinkAuthor)
	})

	t.Run("suite v1 and unknown accounts", func(t *testing.T) {
		_, v1, _ := MustAccount(t, ts, "victor")
		d := accounttest.MustDevice(t)
		l := a.AddDeviceLink(a.Device(0), d)
		l.Account = v1.ID
		r := ts.Do(t, http.MethodPost, "/v1/accounts/"+v1.ID.String()+"/links", "", appendRequest(coffer.SignLink(l, a.Device(0).Key, d.Key), nil))
		if p := r.Check(t, http.StatusBadRequest, coffer.EINVALID); !strings.Contains(p.Detail, "suite v1") {
			t.Errorf("detail %q", p.Detail)
		}
		ts.Do(t, http.MethodPost, "/v1/accounts/"+coffer.NewAccountID().String()+"/links", "", appendRequest(a.SetRecovery(a.Device(0)), nil)).
			Check(t, http.StatusBadRequest, coffer.EINVALID) // the link names another account
	})

	// Whatever was refused, the stored chain is exactly the pushed one.
	var links api.AccountLinks
	ts.Do(t, http.MethodGet, appendPath(a), "", nil).Decode(t, &links)
	if len(links.Links) != len(a.Links) || links.HeadSeq != a.State.Seq {
		t.Fatalf("stored chain has %d links, head %d; want %d", len(links.Links), links.HeadSeq, len(a.Links))
	}
	for i, l := range links.Links {
		if !bytes.Equal(l.Body, a.Links[i].Body) || !bytes.Equal(l.Signature, a.Links[i].Signature) || !bytes.Equal(l.DeviceSignature, a.Links[i].DeviceSignature) {
			t.Fatalf("stored link %d differs from the one sent", i+1)
		}
	}
}

func TestChainLinksPaging(t *testing.T) {
	ts := MustServer(t)
	a, _ := MustRegisterChain(t, ts, "alice")
	const n = api.MaxLinksPage + 4
	for len(a.Links) < n {
		mustAppend(t, ts, a, a.SetRecovery(a.Device(0)))
	}
	for _, path := range []string{appendPath(a), "/v1/handles/alice/links"} {
		var got []api.SignedLink
		after := uint64(0)
		pages := 0
		for {
			var page api.AccountLinks
			ts.Do(t, http.MethodGet, path+"?after="+strconv.FormatUint(after, 10), "", nil).Decode(t, &page)
			pages++
			if page.AccountID != a.ID || page.HeadSeq != n || len(page.Links) > api.MaxLinksPage {
				t.Fatalf("%s page after %d: account %s head %d, %d links", path, after, page.AccountID, page.HeadSeq, len(page.Links))
			}
			if len(page.Links) == 0 {
				break
			}
			got = append(got, page.Links...)
			after += uint64(len(page.Links))
		}
		if pages != 3 || len(got) != n {
			t.Fatalf("%s: %d links in %d pages, want %d in 3", path, len(got), pages, n)
		}
		links := make([]coffer.SignedLink, len(got))
		for i, l := range got {
			links[i] = l.Link()
		}
		if s, err := coffer.VerifyAccountChain(nil, links); err != nil || s.Head != a.State.Head {
			t.Fatalf("%s: the served chain does not verify to the head: %v", path, err)
		}
	}
	// Public: no token. Errors.
	ts.Do(t, http.MethodGet, "/v1/accounts/"+coffer.NewAccountID().String()+"/links", "", nil).Check(t, http.StatusNotFound, coffer.ENOTFOUND)
	ts.Do(t, http.MethodGet, "/v1/handles/nobody/links", "", nil).Check(t, http.StatusNotFound, coffer.ENOTFOUND)
	ts.Do(t, http.MethodGet, appendPath(a)+"?after=-1", "", nil).Check(t, http.StatusBadRequest, coffer.EINVALID)
	ts.Do(t, http.MethodGet, appendPath(a)+"?after=x", "", nil).Check(t, http.StatusBadRequest, coffer.EINVALID)
	// A suite v1 account has no chain: an empty page at head 0.
	MustRegister(t, ts, MustIdentity(t, "victor"))
	var page api.AccountLinks
	r := ts.Do(t, http.MethodGet, "/v1/handles/victor/links", "", nil)
	r.Decode(t, &page)
	if page.HeadSeq != 0 || page.Links == nil || len(page.Links) != 0 {
		t.Fatalf("suite v1 account: %s", r.Body)
	}
}

// TestChainAppendRace: of concurrent appends at one seq, exactly one is
// stored; the others get 409 with the new head, and the chain stays whole.
func TestChainAppendRace(t *testing.T) {
	ts := MustServer(t)
	a, _ := MustRegisterChain(t, ts, "alice")
	const n = 8
	links := make([]coffer.SignedLink, n)
	for i := range links {
		links[i] = a.AddDevice(a.Device(0), accounttest.MustDevice(t))
	}
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for _, sl := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := ts.Do(t, http.MethodPost, appendPath(a), "", appendRequest(sl, nil))
			if r.Status == http.StatusConflict {
				if p := r.Problem(t); p.HeadSeq != 2 {
					t.Errorf("409 with head_seq %d, want 2", p.HeadSeq)
				}
			}
			statuses <- r.Status
		}()
	}
	wg.Wait()
	close(statuses)
	won := 0
	for s := range statuses {
		switch s {
		case http.StatusCreated:
			won++
		case http.StatusConflict:
		default:
			t.Errorf("status %d", s)
		}
	}
	if won != 1 {
		t.Fatalf("%d appends at seq 2 succeeded, want 1", won)
	}
	var page api.AccountLinks
	ts.Do(t, http.MethodGet, appendPath(a), "", nil).Decode(t, &page)
	chain := []coffer.SignedLink{page.Links[0].Link(), page.Links[1].Link()}
	if s, err := coffer.VerifyAccountChain(nil, chain); err != nil || page.HeadSeq != 2 || s.Seq != 2 {
		t.Fatalf("stored chain after the race: head %d, %v", page.HeadSeq, err)
	}
	// A link for an account that does not exist.
	b := accounttest.MustAccount(t, ts.URL, "nobody")
	ts.Do(t, http.MethodPost, appendPath(b), "", appendRequest(b.AddDevice(b.Device(0), accounttest.MustDevice(t)), nil)).
		Check(t, http.StatusNotFound, coffer.ENOTFOUND)
	// A link over the size limit, and a body over the JSON limit.
	big := a.SetRecovery(a.Device(0))
	big.Body = append(big.Body, make([]byte, coffer.MaxLinkSize)...)
	ts.Do(t, http.MethodPost, appendPath(a), "", appendRequest(big, nil)).Check(t, http.StatusBadRequest, coffer.EINVALID)
	huge := appendRequest(a.SetRecovery(a.Device(0)), make([]byte, 2<<20))
	ts.Do(t, http.MethodPost, appendPath(a), "", huge).Check(t, http.StatusRequestEntityTooLarge, coffer.ETOOLARGE)
}
