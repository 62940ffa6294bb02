package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cofferhq/coffer"
)

// TestTokenClockSkew: a token issued by a replica whose clock runs a few
// seconds ahead, or checked a few seconds after its expiry by a replica
// whose clock runs behind, is accepted; beyond the leeway it is not.
func TestTokenClockSkew(t *testing.T) {
	ts := MustServer(t)
	_, acct, _ := MustAccount(t, ts, "alice")
	now := ts.Clock.Now()
	token := func(iat, exp time.Time) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": "coffer", "aud": "coffer-api", "sub": acct.ID.String(),
			"exp": exp.Unix(), "iat": iat.Unix(), "jti": iat.String() + exp.String(),
		})
		tk.Header["kid"] = ts.JWTKey.ID
		s, err := tk.SignedString(ts.JWTKey.Key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, c := range []struct {
		name     string
		iat, exp time.Time
		want     int
	}{
		{"issued 10 s ahead", now.Add(10 * time.Second), now.Add(15 * time.Minute), 200},
		{"expired 10 s ago", now.Add(-15 * time.Minute), now.Add(-10 * time.Second), 200},
		{"issued 2 min ahead", now.Add(2 * time.Minute), now.Add(17 * time.Minute), 401},
		{"expired 2 min ago", now.Add(-17 * time.Minute), now.Add(-2 * time.Minute), 401},
	} {
		r := ts.Do(t, http.MethodGet, "/v1/groups", token(c.iat, c.exp), nil)
		if r.Status != c.want {
			t.Errorf("%s: %d, want %d", c.name, r.Status, c.want)
		}
		if c.want == 401 {
			r.Check(t, 401, coffer.EUNAUTHORIZED)
		}
	}
}
