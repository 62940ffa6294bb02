package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// routeCount sums coffer_http_requests_total for one POST route.
func routeCount(t *testing.T, url, route string) int {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	prefix := fmt.Sprintf(`coffer_http_requests_total{method="POST",route=%q,`, route)
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			n += int(v)
		}
	}
	return n
}

// TestCLIKeepsAccessToken: the CLI keeps its access token in the profile
// until it expires, so consecutive commands spend no refresh (or login),
// and logout drops it.
func TestCLIKeepsAccessToken(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds coffer and cofferd and runs cofferd -dev with its own PostgreSQL")
	}
	bins := mustBuildCLI(t)
	srv := startCLIServer(t, bins)
	alice := srv.profile(t, "alice", false)
	alice.ok(t, "init", "--server", srv.url, "--handle", "alice")
	alice.ok(t, "group", "create", "kept")

	// The session is cached in the encrypted key store (keys/cli/session).
	session := filepath.Join(alice.dir, "keys", "cli", "session")
	fi, err := os.Stat(session)
	if err != nil {
		t.Fatalf("no cached session after a command: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the cached session has mode %v, want 0600", fi.Mode().Perm())
	}
	if b, err := alice.keyStore(t).Get("cli/session"); err != nil || !strings.Contains(string(b), "access_token") {
		t.Fatalf("the cached session does not decrypt: %v", err)
	}
	refreshes := routeCount(t, srv.url, "/v1/auth/refresh")
	logins := routeCount(t, srv.url, "/v1/auth/login")
	for range 3 {
		alice.ok(t, "ls", "kept")
	}
	if got := routeCount(t, srv.url, "/v1/auth/refresh"); got != refreshes {
		t.Errorf("three commands spent %d refreshes, want 0", got-refreshes)
	}
	if got := routeCount(t, srv.url, "/v1/auth/login"); got != logins {
		t.Errorf("three commands logged in %d times, want 0", got-logins)
	}
	alice.ok(t, "logout")
	if _, err := os.Stat(session); !os.IsNotExist(err) {
		t.Errorf("the cached session survives logout: %v", err)
	}
}
