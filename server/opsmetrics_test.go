package server_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// metricValue returns the value of the metric line starting with prefix
// (name and labels), or -1.
func metricValue(t *testing.T, ts *testServer, prefix string) float64 {
	t.Helper()
	body := ts.Do(t, http.MethodGet, "/metrics", "", nil).Body
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			var v float64
			fmt.Sscan(line[len(prefix)+1:], &v)
			return v
		}
	}
	return -1
}

// TestOperationalMetrics: auth failures are counted by reason and verifier
// rejections by rule, from the server's own decisions.
func TestOperationalMetrics(t *testing.T) {
	ts := MustServer(t)
	alice, aliceAcct, tok := MustAccount(t, ts, "alice")
	bob := MustIdentity(t, "bob")

	ts.Do(t, http.MethodGet, "/v1/groups", "", nil).Check(t, 401, coffer.EUNAUTHORIZED)
	ts.Do(t, http.MethodGet, "/v1/groups", "garbage", nil).Check(t, 401, coffer.EUNAUTHORIZED)
	ts.Do(t, http.MethodPost, "/v1/auth/refresh", "", api.RefreshRequest{RefreshToken: "nope"}).Check(t, 401, coffer.EUNAUTHORIZED)
	for reason, want := range map[string]float64{"missing_token": 1, "invalid_token": 1, "refresh": 1, "signature": 0} {
		if got := metricValue(t, ts, `coffer_auth_failures_total{reason="`+reason+`"}`); got != want {
			t.Errorf("auth failures %s = %v, want %v", reason, got, want)
		}
	}

	// A genesis signed by someone else than its author breaks a rule.
	c := &coffer.Commit{Group: coffer.NewGroupID(), Seq: 1, Epoch: 1, Author: aliceAcct.ID, Time: time.Now().UnixMilli(), ShareHistory: true,
		Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: aliceAcct.ID, Handle: "alice", Role: coffer.RoleOwner,
			SigningKey: alice.Public.SigningKey, EncryptionKey: alice.Public.EncryptionKey}}}
	rand.Read(c.KeyCommitment[:])
	sc := coffer.SignCommit(c, bob.Key)
	req := api.CommitRequest{Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature},
		Wraps: []api.Wrap{{Member: aliceAcct.ID, Epoch: 1, Wrap: make([]byte, coffer.WrapSize)}}}
	r := ts.Do(t, http.MethodPost, "/v1/groups", tok.AccessToken, req)
	var p api.Problem
	if err := json.Unmarshal(r.Body, &p); err != nil || p.Rule == "" {
		t.Fatalf("the rejection names no rule: %s", r.Body)
	}
	if got := metricValue(t, ts, `coffer_verifier_rejections_total{rule="`+p.Rule+`"}`); got != 1 {
		t.Errorf("verifier rejections for rule %s = %v, want 1", p.Rule, got)
	}
	if got := metricValue(t, ts, "coffer_uploads_in_flight"); got != 0 {
		t.Errorf("uploads in flight %v, want 0", got)
	}
}
