package server_test

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/server"
)

func withTrustedProxies(cidrs ...string) serverOption {
	return func(c *server.Config, _ *server.Services) {
		for _, s := range cidrs {
			c.TrustedProxies = append(c.TrustedProxies, netip.MustParsePrefix(s))
		}
	}
}

func withLimits(auth, log, account int) serverOption {
	return func(c *server.Config, _ *server.Services) {
		c.AuthRateLimit, c.LogRateLimit, c.AccountRateLimit = auth, log, account
	}
}

// challengeFrom sends an anonymous auth request with the given headers and
// returns its status.
func challengeFrom(t *testing.T, ts *testServer, headers map[string]string) int {
	t.Helper()
	req := ts.NewRequest(t, http.MethodPost, "/v1/auth/challenge", api.ChallengeRequest{Handle: "nobody"})
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return ts.Send(t, req).Status
}

// TestProxyAwareRateLimit: behind a trusted proxy each client has its own
// budget, named by X-Forwarded-For or Forwarded; from an untrusted peer
// those headers are ignored, so a client cannot choose its key.
func TestProxyAwareRateLimit(t *testing.T) {
	xff := func(v string) map[string]string { return map[string]string{"X-Forwarded-For": v} }
	fwd := func(v string) map[string]string { return map[string]string{"Forwarded": v} }

	t.Run("trusted proxy", func(t *testing.T) {
		ts := MustServer(t, withTrustedProxies("127.0.0.1/32"), withLimits(2, 2, 2))
		for range 2 {
			if got := challengeFrom(t, ts, xff("198.51.100.1")); got != 404 {
				t.Fatalf("client 1 under its budget: %d", got)
			}
		}
		if got := challengeFrom(t, ts, xff("198.51.100.1")); got != 429 {
			t.Fatalf("client 1 over its budget: %d, want 429", got)
		}
		// Another client behind the same proxy has a budget of its own.
		for _, h := range []map[string]string{xff("198.51.100.2"), fwd(`for="[2001:db8::1]:4711";proto=https`), fwd("for=198.51.100.3")} {
			if got := challengeFrom(t, ts, h); got != 404 {
				t.Errorf("another client %v was limited: %d", h, got)
			}
		}
		// The entry the trusted proxy appended is the client: whatever the
		// client put before it is ignored, so spoofing does not escape.
		for _, spoof := range []string{"203.0.113.7, 198.51.100.1", "10.9.9.9,198.51.100.1", "garbage, 198.51.100.1"} {
			if got := challengeFrom(t, ts, xff(spoof)); got != 429 {
				t.Errorf("X-Forwarded-For %q escaped client 1's limit: %d", spoof, got)
			}
		}
		// A chain of trusted proxies is walked to the first untrusted hop.
		if got := challengeFrom(t, ts, xff("198.51.100.1, 127.0.0.1")); got != 429 {
			t.Errorf("client 1 behind two trusted hops escaped its limit: %d", got)
		}
	})

	t.Run("untrusted peer", func(t *testing.T) {
		ts := MustServer(t, withLimits(2, 2, 2)) // no trusted proxies
		for i, h := range []map[string]string{xff("198.51.100.1"), xff("198.51.100.2")} {
			if got := challengeFrom(t, ts, h); got != 404 {
				t.Fatalf("request %d: %d", i, got)
			}
		}
		// Spoofed headers from an untrusted peer do not make new budgets.
		for _, h := range []map[string]string{xff("198.51.100.3"), fwd("for=198.51.100.4"), {"X-Real-IP": "198.51.100.5"}, {"True-Client-IP": "198.51.100.6"}} {
			if got := challengeFrom(t, ts, h); got != 429 {
				t.Errorf("spoofed %v from an untrusted peer escaped the limit: %d", h, got)
			}
		}
	})

	t.Run("trusted proxy elsewhere", func(t *testing.T) {
		// The peer (127.0.0.1) is not in the trusted range.
		ts := MustServer(t, withTrustedProxies("10.0.0.0/8"), withLimits(1, 1, 1))
		challengeFrom(t, ts, xff("198.51.100.1"))
		if got := challengeFrom(t, ts, xff("198.51.100.2")); got != 429 {
			t.Errorf("X-Forwarded-For from a peer outside -trusted-proxies was believed: %d", got)
		}
	})
}

// TestRateLimitPerAccount: authenticated callers are limited per account,
// not per address, on the API and on the log; anonymous log readers per
// address. A rate-limited answer carries Retry-After.
func TestRateLimitPerAccount(t *testing.T) {
	limited := MustServer(t, withLimits(1_000_000, 3, 3))
	_, _, carol := MustAccount(t, limited, "carol")
	_, _, dave := MustAccount(t, limited, "dave")

	for range 3 {
		limited.Do(t, http.MethodGet, "/v1/groups", carol.AccessToken, nil).Check(t, 200, "")
	}
	r := limited.Do(t, http.MethodGet, "/v1/groups", carol.AccessToken, nil)
	r.Check(t, 429, coffer.ERATELIMITED)
	if r.Header.Get("Retry-After") == "" {
		t.Error("a 429 without Retry-After")
	}
	// Same address, another account: its own budget.
	limited.Do(t, http.MethodGet, "/v1/groups", dave.AccessToken, nil).Check(t, 200, "")

	// The log: anonymous readers share the address's budget; a reader
	// with a valid token has its account's.
	for range 3 {
		limited.Do(t, http.MethodGet, "/v1/log/key", "", nil)
	}
	limited.Do(t, http.MethodGet, "/v1/log/key", "", nil).Check(t, 429, coffer.ERATELIMITED)
	limited.Do(t, http.MethodGet, "/v1/log/key", "not-a-token", nil).Check(t, 429, coffer.ERATELIMITED)
	if got := limited.Do(t, http.MethodGet, "/v1/log/key", dave.AccessToken, nil).Status; got == 429 {
		t.Error("an authenticated log reader was limited by the anonymous budget of its address")
	}
}
