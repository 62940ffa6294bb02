package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/store"
)

// replica starts a second server on ts's database, JWT key and clock, as
// another cofferd replica would be.
func replica(t *testing.T, ts *testServer) *testServer {
	t.Helper()
	return replicaOn(t, ts, ts.DB)
}

// replicaOn is replica with db for every service: a store of its own on
// ts's database is what a second cofferd process has.
func replicaOn(t *testing.T, ts *testServer, db *store.DB) *testServer {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	cfg := server.DefaultConfig()
	cfg.Origins = []string{"http://" + hs.Listener.Addr().String()}
	cfg.JWTKeys = []server.JWTKey{ts.JWTKey}
	cfg.AuthRateLimit = 1_000_000
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Now = ts.Clock.Now
	srv, err := server.New(cfg, server.Services{Accounts: db, Auth: db, Groups: db, Ready: db.Ping})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(hs.Close)
	return &testServer{URL: hs.URL, Clock: ts.Clock, Pool: ts.Pool, DB: db, JWTKey: ts.JWTKey, Log: &syncBuffer{}, Server: srv}
}

func logout(t *testing.T, ts *testServer, tok api.Tokens) {
	t.Helper()
	ts.Do(t, http.MethodPost, "/v1/auth/logout", tok.AccessToken, api.RefreshRequest{RefreshToken: tok.RefreshToken}).Check(t, 204, "")
}

// TestLogoutRevokesAccessToken: logout revokes the access token presented
// with it at once, and every access token of the session on every replica
// within the recheck interval; other sessions are untouched.
func TestLogoutRevokesAccessToken(t *testing.T) {
	ts := MustServer(t)
	other := replica(t, ts)
	alice, _, first := MustAccount(t, ts, "alice")
	second := MustLogin(t, ts, alice)
	third := MustLogin(t, ts, alice)
	for _, s := range []*testServer{ts, other} {
		for _, tok := range []api.Tokens{first, second, third} {
			s.Do(t, http.MethodGet, "/v1/groups", tok.AccessToken, nil).Check(t, 200, "")
		}
	}

	logout(t, ts, first)
	ts.Do(t, http.MethodGet, "/v1/groups", first.AccessToken, nil).Check(t, 401, coffer.EUNAUTHORIZED)
	// The other replica cached its verdict a moment ago; it learns of the
	// logout from the database within the recheck interval.
	ts.Clock.Advance(31 * time.Second)
	other.Do(t, http.MethodGet, "/v1/groups", first.AccessToken, nil).Check(t, 401, coffer.EUNAUTHORIZED)
	for _, s := range []*testServer{ts, other} {
		s.Do(t, http.MethodGet, "/v1/groups", second.AccessToken, nil).Check(t, 200, "")
	}

	// A logout on the other replica, with only the refresh token: the
	// session's access tokens die everywhere after the recheck.
	other.Do(t, http.MethodPost, "/v1/auth/logout", "", api.RefreshRequest{RefreshToken: second.RefreshToken}).Check(t, 204, "")
	ts.Clock.Advance(31 * time.Second)
	for _, s := range []*testServer{ts, other} {
		s.Do(t, http.MethodGet, "/v1/groups", second.AccessToken, nil).Check(t, 401, coffer.EUNAUTHORIZED)
	}

	// Reuse detection revokes the family, and so its access tokens.
	next := ts.Do(t, http.MethodPost, "/v1/auth/refresh", "", api.RefreshRequest{RefreshToken: third.RefreshToken})
	next.Check(t, 200, "")
	ts.Do(t, http.MethodPost, "/v1/auth/refresh", "", api.RefreshRequest{RefreshToken: third.RefreshToken}).Check(t, 401, coffer.EUNAUTHORIZED)
	ts.Clock.Advance(31 * time.Second)
	ts.Do(t, http.MethodGet, "/v1/groups", third.AccessToken, nil).Check(t, 401, coffer.EUNAUTHORIZED)
}
