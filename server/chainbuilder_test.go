package server_test

import (
	"net/http"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
)

// registerRequest registers a with its genesis.
func registerRequest(a *accounttest.Account) api.RegisterRequest {
	g := api.FromLink(a.Links[0])
	return api.RegisterRequest{Identity: a.State.Identity().Marshal(), SelfSignature: a.SelfSignature(), Genesis: &g}
}

// appendRequest sends link; with a rotation, the caller pushes it first so
// that SelfSignature is the new identity's.
func appendRequest(sl coffer.SignedLink, selfSig []byte) api.AppendLinkRequest {
	return api.AppendLinkRequest{Link: api.FromLink(sl), SelfSignature: selfSig}
}

// login logs a in with its first current device.
func login(tb testing.TB, ts *testServer, a *accounttest.Account) (*response, api.Tokens) {
	tb.Helper()
	r := ts.Do(tb, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Handle: a.State.Handle})
	r.Check(tb, http.StatusOK, "")
	var ch api.ChallengeResponse
	r.Decode(tb, &ch)
	d := a.Device(0)
	r = ts.Do(tb, http.MethodPost, "/v1/auth/login", "", api.LoginRequest{AccountID: ch.AccountID, Origin: ts.URL,
		Challenge: ch.Challenge, DeviceID: &d.ID, Signature: d.SignLogin(ts.URL, ch.AccountID, ch.Challenge)})
	var tok api.Tokens
	if r.Status == http.StatusOK {
		r.Decode(tb, &tok)
	}
	return r, tok
}

// MustRegisterChain registers a new account for ts and logs it in.
func MustRegisterChain(tb testing.TB, ts *testServer, handle string) (*accounttest.Account, api.Tokens) {
	tb.Helper()
	a := accounttest.MustAccount(tb, ts.URL, handle)
	ts.Do(tb, http.MethodPost, "/v1/accounts", "", registerRequest(a)).Check(tb, http.StatusCreated, "")
	r, tok := login(tb, ts, a)
	r.Check(tb, http.StatusOK, "")
	return a, tok
}

// mustAppend sends sl (pushing it first) and expects 201.
func mustAppend(tb testing.TB, ts *testServer, a *accounttest.Account, sl coffer.SignedLink) {
	tb.Helper()
	l, _ := coffer.ParseAccountLink(sl.Body)
	a.Push(sl)
	var self []byte
	if l.Kind == coffer.LinkRevokeDevice || l.Kind == coffer.LinkRotateUserKey {
		self = a.SelfSignature()
	}
	r := ts.Do(tb, http.MethodPost, "/v1/accounts/"+a.ID.String()+"/links", "", appendRequest(sl, self))
	r.Check(tb, http.StatusCreated, "")
	var resp api.AppendLinkResponse
	r.Decode(tb, &resp)
	if resp.Seq != l.Seq {
		tb.Fatalf("appended at seq %d, want %d", resp.Seq, l.Seq)
	}
}
