package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
)

// TestDrainRefusesNewRequests: once draining, the server answers new
// requests 503 unavailable with Connection: close, which clients retry.
func TestDrainRefusesNewRequests(t *testing.T) {
	ts := MustServer(t)
	_, _, tok := MustAccount(t, ts, "alice")
	ts.Do(t, http.MethodGet, "/v1/groups", tok.AccessToken, nil).Check(t, 200, "")
	ts.Server.Drain()
	for _, path := range []string{"/v1/groups", "/readyz"} {
		r := ts.Do(t, http.MethodGet, path, tok.AccessToken, nil)
		r.Check(t, 503, coffer.EUNAVAILABLE)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", path)
		}
	}
}

// TestRequestIDHonoured: a plain X-Request-Id from the caller is kept,
// logged and returned; anything else is replaced by a fresh id.
func TestRequestIDHonoured(t *testing.T) {
	ts := MustServer(t)
	for given, keep := range map[string]bool{
		"3f2b9c1e-8a7d-4c55-9e0f-1234567890ab": true,
		"proxy_req_42":                         true,
		"":                                     false,
		"has space":                            false,
		"semi;colon":                           false,
		strings.Repeat("a", 65):                false,
	} {
		req := ts.NewRequest(t, http.MethodGet, "/healthz", nil)
		if given != "" {
			req.Header["X-Request-Id"] = []string{given}
		}
		got := ts.Send(t, req).Header.Get("X-Request-Id")
		switch {
		case got == "":
			t.Errorf("%q: no X-Request-Id returned", given)
		case keep && got != given:
			t.Errorf("%q: returned %q, want it kept", given, got)
		case !keep && got == given:
			t.Errorf("%q: kept, want a fresh id", given)
		}
		if keep && !strings.Contains(ts.Log.String(), "request_id="+given) {
			t.Errorf("%q: not in the log", given)
		}
	}
}
