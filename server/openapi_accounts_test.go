package server_test

import (
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
)

// TestOpenAPIAccountChains drives the suite v2 account operations through
// the documented schemas, as TestOpenAPIResponses does for the others.
func TestOpenAPIAccountChains(t *testing.T) {
	c := &openAPIChecker{doc: MustOpenAPI(t)}
	ts := MustServer(t)
	ex := func(method, template, path, token string, body any, wantStatus int) *response {
		t.Helper()
		r := c.Exchange(t, ts, method, template, path, token, body)
		if r.Status != wantStatus {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, wantStatus, r.Body)
		}
		return r
	}
	a := accounttest.MustAccount(t, ts.URL, "alice")
	ex("POST", "/v1/accounts", "/v1/accounts", "", registerRequest(a), 201)
	ex("POST", "/v1/accounts", "/v1/accounts", "", registerRequest(accounttest.MustAccount(t, "https://x.example:443", "bob")), 400)
	_, tok := login(t, ts, a)

	links := "/v1/accounts/{accountID}/links"
	path := "/v1/accounts/" + a.ID.String() + "/links"
	ex("GET", links, path, "", nil, 200)
	ex("GET", links, path+"?after=1", "", nil, 200)
	ex("GET", links, "/v1/accounts/"+coffer.NewAccountID().String()+"/links", "", nil, 404)
	ex("GET", "/v1/handles/{handle}/links", "/v1/handles/alice/links", "", nil, 200)

	phone := accounttest.MustDevice(t)
	sl := a.AddDevice(a.Device(0), phone)
	stale := a.AddDevice(a.Device(0), accounttest.MustDevice(t))
	a.Push(sl)
	ex("POST", links, path, "", appendRequest(sl, nil), 201)
	ex("POST", links, path, "", appendRequest(stale, nil), 409)
	rot := a.Rotate(a.Device(0))
	ex("POST", links, path, "", appendRequest(rot, nil), 400)
	a.Push(rot)
	ex("POST", links, path, "", appendRequest(rot, a.SelfSignature()), 201)
	_, tok = login(t, ts, a)

	laptop := accounttest.MustDevice(t)
	code, req := pairingRequest("alice", laptop)
	ex("POST", "/v1/pairings", "/v1/pairings", "", req, 201)
	_, nobody := pairingRequest("nobody", laptop)
	ex("POST", "/v1/pairings", "/v1/pairings", "", nobody, 404)
	ex("GET", "/v1/pairings/{pairingID}", "/v1/pairings/"+code.ID(), "", nil, 200)
	ex("GET", "/v1/pairings/{pairingID}", "/v1/pairings/x", "", nil, 400)
	approval := "/v1/pairings/{pairingID}/approval"
	link := coffer.SignLink(a.AddDeviceLink(a.Device(0), laptop), a.Device(0).Key, nil)
	body := api.PairingApproval{Link: api.FromLink(link), MAC: code.ApprovalMAC(link.Body)}
	ex("PUT", approval, "/v1/pairings/"+code.ID()+"/approval", "", body, 401)
	ex("PUT", approval, "/v1/pairings/"+code.ID()+"/approval", tok.AccessToken, body, 204)
	ex("PUT", approval, "/v1/pairings/"+code.ID()+"/approval", tok.AccessToken, body, 409)
	ex("GET", "/v1/pairings/{pairingID}", "/v1/pairings/"+code.ID(), "", nil, 200)
}
