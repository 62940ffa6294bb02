package server_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
)

// pairingRequest is what a new device sends: the id and request MAC of a
// fresh code, which it keeps to show the user.
func pairingRequest(handle string, d *accounttest.Device) (*coffer.PairingCode, api.CreatePairingRequest) {
	code := coffer.NewPairingCode()
	return code, api.CreatePairingRequest{ID: code.ID(), Handle: coffer.Handle(handle), MAC: code.RequestMAC(coffer.Handle(handle), d.Keys()),
		Device: api.PairingDevice{ID: d.ID, Name: d.Name, SigningKey: d.Key.Public().Bytes(), EncryptionKey: d.Enc.PublicKey().Bytes()}}
}

func MustPairing(tb testing.TB, ts *testServer, handle string, d *accounttest.Device) *coffer.PairingCode {
	tb.Helper()
	code, req := pairingRequest(handle, d)
	ts.Do(tb, http.MethodPost, "/v1/pairings", "", req).Check(tb, http.StatusCreated, "")
	return code
}

// servedDevice is the device of a pairing as the server served it.
func servedDevice(tb testing.TB, p api.Pairing) coffer.DeviceKeys {
	tb.Helper()
	sk, err := coffer.ParseHybridPublicKey(p.Device.SigningKey)
	if err != nil {
		tb.Fatal(err)
	}
	return coffer.DeviceKeys{ID: p.Device.ID, Name: p.Device.Name, SigningKey: sk, EncryptionKey: p.Device.EncryptionKey}
}

func TestPairing(t *testing.T) {
	ts := MustServer(t)
	a, tok := MustRegisterChain(t, ts, "alice")
	_, bobTok := MustRegisterChain(t, ts, "bob")
	laptop := accounttest.MustDevice(t)

	code, req := pairingRequest("alice", laptop)
	r := ts.Do(t, http.MethodPost, "/v1/pairings", "", req)
	r.Check(t, http.StatusCreated, "")
	var created api.CreatePairingResponse
	r.Decode(t, &created)
	if created.ID != code.ID() || created.ExpiresAt.Sub(ts.Clock.Now()) != 10*time.Minute {
		t.Fatalf("pairing %+v: want id %s, expiring in 10 minutes", created, code.ID())
	}
	path := "/v1/pairings/" + created.ID
	var p api.Pairing
	ts.Do(t, http.MethodGet, path, "", nil).Decode(t, &p)
	if err := code.CheckRequestMAC(p.Handle, servedDevice(t, p), p.MAC); err != nil || p.ID != created.ID || p.Approval != nil {
		t.Fatalf("served pairing does not check under its code: %v", err)
	}
	ts.Do(t, http.MethodGet, "/v1/pairings/not-an-id", "", nil).Check(t, http.StatusBadRequest, coffer.EINVALID)
	ts.Do(t, http.MethodGet, "/v1/pairings/"+coffer.NewPairingCode().ID(), "", nil).Check(t, http.StatusNotFound, coffer.ENOTFOUND)
	// The server keeps no code, only its hash.
	var stored int
	if err := ts.Pool.QueryRow(t.Context(), `SELECT count(*) FROM pairings WHERE position($1 in id) > 0`, code.Reveal()).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("the code reached the database (%v)", err)
	}

	approve := func(token string, sl coffer.SignedLink) *response {
		return ts.Do(t, http.MethodPut, path+"/approval", token, api.PairingApproval{Link: api.FromLink(sl), MAC: code.ApprovalMAC(sl.Body)})
	}
	good := coffer.SignLink(a.AddDeviceLink(a.Device(0), laptop), a.Device(0).Key, nil)

	t.Run("approval refusals", func(t *testing.T) {
		approve("", good).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		approve(bobTok.AccessToken, good).Check(t, http.StatusForbidden, coffer.EFORBIDDEN)
		other := accounttest.MustDevice(t)
		sl := coffer.SignLink(a.AddDeviceLink(a.Device(0), other), a.Device(0).Key, nil)
		approve(tok.AccessToken, sl).Check(t, http.StatusBadRequest, coffer.EINVALID)
		renamed := laptop.Keys()
		renamed.Name = "not the laptop"
		l := a.AddDeviceLink(a.Device(0), laptop)
		l.Device = renamed
		approve(tok.AccessToken, coffer.SignLink(l, a.Device(0).Key, nil)).Check(t, http.StatusBadRequest, coffer.EINVALID)
		withDevSig := coffer.SignLink(a.AddDeviceLink(a.Device(0), laptop), a.Device(0).Key, laptop.Key)
		if p := approve(tok.AccessToken, withDevSig).Check(t, http.StatusBadRequest, coffer.EINVALID); p.Rule != coffer.RuleDeviceSignature {
			t.Errorf("rule %q", p.Rule)
		}
		forged := coffer.SignLink(a.AddDeviceLink(a.Device(0), laptop), laptop.Key, nil)
		if p := approve(tok.AccessToken, forged).Check(t, http.StatusBadRequest, coffer.EINVALID); p.Rule != coffer.RuleSignature {
			t.Errorf("rule %q", p.Rule)
		}
		short := api.PairingApproval{Link: api.FromLink(good), MAC: code.ApprovalMAC(good.Body)[:31]}
		ts.Do(t, http.MethodPut, path+"/approval", tok.AccessToken, short).Check(t, http.StatusBadRequest, coffer.EINVALID)
		ts.Do(t, http.MethodPut, "/v1/pairings/"+coffer.NewPairingCode().ID()+"/approval", tok.AccessToken,
			api.PairingApproval{Link: api.FromLink(good), MAC: code.ApprovalMAC(good.Body)}).Check(t, http.StatusNotFound, coffer.ENOTFOUND)
		ts.Do(t, http.MethodGet, path, "", nil).Decode(t, &p)
		if p.Approval != nil {
			t.Fatal("a refused approval was stored")
		}
	})

	t.Run("approve and link", func(t *testing.T) {
		approve(tok.AccessToken, good).Check(t, http.StatusNoContent, "")
		approve(tok.AccessToken, good).Check(t, http.StatusConflict, coffer.ECONFLICT) // once only
		ts.Do(t, http.MethodGet, path, "", nil).Decode(t, &p)
		if p.Approval == nil || !bytes.Equal(p.Approval.Link.Body, good.Body) || !bytes.Equal(p.Approval.Link.Signature, good.Signature) {
			t.Fatal("the approval is not served as stored")
		}
		if err := code.CheckApprovalMAC(p.Approval.Link.Body, p.Approval.MAC); err != nil {
			t.Fatal(err)
		}
		// The new device adds its own signature and appends.
		sl := p.Approval.Link.Link()
		sl.DeviceSignature = laptop.Key.Sign(coffer.LabelAccountLinkDevice, sl.Body)
		mustAppend(t, ts, a, sl)
		ts.Do(t, http.MethodGet, path, "", nil).Check(t, http.StatusNotFound, coffer.ENOTFOUND)
	})

	t.Run("a swapped key fails the code's MAC", func(t *testing.T) {
		// The server can serve any keys, but the approving device checks
		// the MAC under the code it was shown.
		d := accounttest.MustDevice(t)
		c := MustPairing(t, ts, "alice", d)
		if _, err := ts.Pool.Exec(t.Context(), `UPDATE pairings SET signing_key = $1 WHERE id = $2`,
			accounttest.MustDevice(t).Key.Public().Bytes(), c.ID()); err != nil {
			t.Fatal(err)
		}
		var p api.Pairing
		ts.Do(t, http.MethodGet, "/v1/pairings/"+c.ID(), "", nil).Decode(t, &p)
		if err := c.CheckRequestMAC(p.Handle, servedDevice(t, p), p.MAC); !coffer.IsSecurity(err) {
			t.Fatalf("a pairing with another key checks under the code: %v", err)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		d := accounttest.MustDevice(t)
		c := MustPairing(t, ts, "alice", d)
		ts.Clock.Advance(10*time.Minute - time.Second)
		ts.Do(t, http.MethodGet, "/v1/pairings/"+c.ID(), "", nil).Check(t, http.StatusOK, "")
		ts.Clock.Advance(time.Second)
		ts.Do(t, http.MethodGet, "/v1/pairings/"+c.ID(), "", nil).Check(t, http.StatusNotFound, coffer.ENOTFOUND)
		sl := coffer.SignLink(a.AddDeviceLink(a.Device(0), d), a.Device(0).Key, nil)
		ts.Do(t, http.MethodPut, "/v1/pairings/"+c.ID()+"/approval", tok.AccessToken, api.PairingApproval{Link: api.FromLink(sl), MAC: c.ApprovalMAC(sl.Body)}).
			Check(t, http.StatusNotFound, coffer.ENOTFOUND)
	})

	t.Run("at most 8 open per handle", func(t *testing.T) {
		ts.Clock.Advance(11 * time.Minute) // everything above expired
		for range 8 {
			MustPairing(t, ts, "alice", accounttest.MustDevice(t))
		}
		_, req := pairingRequest("alice", accounttest.MustDevice(t))
		ts.Do(t, http.MethodPost, "/v1/pairings", "", req).Check(t, 422, coffer.ELIMIT)
		// Another handle has its own budget; expiry frees alice's.
		MustPairing(t, ts, "bob", accounttest.MustDevice(t))
		ts.Clock.Advance(11 * time.Minute)
		MustPairing(t, ts, "alice", accounttest.MustDevice(t))
	})

	t.Run("bad requests", func(t *testing.T) {
		d := accounttest.MustDevice(t)
		MustRegister(t, ts, MustIdentity(t, "victor"))
		for name, c := range map[string]struct {
			mutate func(*api.CreatePairingRequest)
			status int
			code   coffer.Code
		}{
			"unknown handle":   {func(r *api.CreatePairingRequest) { r.Handle = "nobody" }, 404, coffer.ENOTFOUND},
			"suite v1 handle":  {func(r *api.CreatePairingRequest) { r.Handle = "victor" }, 404, coffer.ENOTFOUND},
			"malformed id":     {func(r *api.CreatePairingRequest) { r.ID = r.ID[:31] }, 400, coffer.EINVALID},
			"upper-case id":    {func(r *api.CreatePairingRequest) { r.ID = string(bytes.ToUpper([]byte(r.ID))) + "" }, 400, coffer.EINVALID},
			"short mac":        {func(r *api.CreatePairingRequest) { r.MAC = r.MAC[:31] }, 400, coffer.EINVALID},
			"no device id":     {func(r *api.CreatePairingRequest) { r.Device.ID = coffer.DeviceID{} }, 400, coffer.EINVALID},
			"no device name":   {func(r *api.CreatePairingRequest) { r.Device.Name = "" }, 400, coffer.EINVALID},
			"bad signing key":  {func(r *api.CreatePairingRequest) { r.Device.SigningKey = r.Device.SigningKey[:100] }, 400, coffer.EINVALID},
			"bad x-wing key":   {func(r *api.CreatePairingRequest) { r.Device.EncryptionKey = r.Device.EncryptionKey[:1215] }, 400, coffer.EINVALID},
			"same id again":    {nil, 409, coffer.ECONFLICT},
			"malformed handle": {func(r *api.CreatePairingRequest) { r.Handle = "A" }, 400, coffer.EINVALID},
		} {
			t.Run(name, func(t *testing.T) {
				_, req := pairingRequest("bob", d)
				if c.mutate == nil {
					ts.Do(t, http.MethodPost, "/v1/pairings", "", req).Check(t, http.StatusCreated, "")
				} else {
					c.mutate(&req)
				}
				ts.Do(t, http.MethodPost, "/v1/pairings", "", req).Check(t, c.status, c.code)
			})
		}
	})
}

// TestAccountRateLimits: appends and new pairings are limited per client
// address like log-ins; reads of chains and pairings like the public log,
// so a device polling its pairing or a client reading many chains is not
// cut off by the write budget.
func TestAccountRateLimits(t *testing.T) {
	ts := MustServer(t, withAuthRateLimit(3)) // registration, challenge and log-in have a budget of their own
	a, _ := MustRegisterChain(t, ts, "alice")
	code := MustPairing(t, ts, "alice", accounttest.MustDevice(t))
	mustAppend(t, ts, a, a.SetRecovery(a.Device(0)))
	mustAppend(t, ts, a, a.SetRecovery(a.Device(0)))
	_, req := pairingRequest("alice", accounttest.MustDevice(t))
	ts.Do(t, http.MethodPost, "/v1/pairings", "", req).Check(t, http.StatusTooManyRequests, coffer.ERATELIMITED)
	ts.Do(t, http.MethodPost, appendPath(a), "", appendRequest(a.SetRecovery(a.Device(0)), nil)).Check(t, http.StatusTooManyRequests, coffer.ERATELIMITED)
	for range 10 {
		ts.Do(t, http.MethodGet, "/v1/pairings/"+code.ID(), "", nil).Check(t, http.StatusOK, "")
		ts.Do(t, http.MethodGet, appendPath(a), "", nil).Check(t, http.StatusOK, "")
	}
}
