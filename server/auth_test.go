package server_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

func TestLogin(t *testing.T) {
	ts := MustServer(t)
	login := func(t *testing.T, req api.LoginRequest) *response {
		return ts.Do(t, http.MethodPost, "/v1/auth/login", "", req)
	}
	tests := []struct {
		name string
		// attempt registers nothing: it gets a fresh registered identity
		// and returns the response to the login under test.
		attempt    func(t *testing.T, id *testIdentity) *response
		wantStatus int
		wantCode   coffer.Code
	}{
		{
			name: "valid",
			attempt: func(t *testing.T, id *testIdentity) *response {
				return login(t, id.LoginRequest(ts.URL, MustChallenge(t, ts, id)))
			},
			wantStatus: 200,
		},
		{
			name: "replayed challenge",
			attempt: func(t *testing.T, id *testIdentity) *response {
				req := id.LoginRequest(ts.URL, MustChallenge(t, ts, id))
				login(t, req).Check(t, 200, "")
				return login(t, req)
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "expired challenge",
			attempt: func(t *testing.T, id *testIdentity) *response {
				req := id.LoginRequest(ts.URL, MustChallenge(t, ts, id))
				ts.Clock.Advance(61 * time.Second)
				return login(t, req)
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "challenge used just before it expires",
			attempt: func(t *testing.T, id *testIdentity) *response {
				req := id.LoginRequest(ts.URL, MustChallenge(t, ts, id))
				ts.Clock.Advance(59 * time.Second)
				return login(t, req)
			},
			wantStatus: 200,
		},
		{
			name: "signature by another key",
			attempt: func(t *testing.T, id *testIdentity) *response {
				return login(t, MustIdentity(t, "mallory").LoginRequest(ts.URL, MustChallenge(t, ts, id)))
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "a failed attempt burns the challenge",
			attempt: func(t *testing.T, id *testIdentity) *response {
				ch := MustChallenge(t, ts, id)
				login(t, MustIdentity(t, "mallory").LoginRequest(ts.URL, ch)).Check(t, 401, coffer.EUNAUTHORIZED)
				return login(t, id.LoginRequest(ts.URL, ch))
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "statement signed under another label",
			attempt: func(t *testing.T, id *testIdentity) *response {
				ch := MustChallenge(t, ts, id)
				req := id.LoginRequest(ts.URL, ch)
				req.Signature = coffer.Sign(id.Key, coffer.LabelIdentity, coffer.LoginStatement(ts.URL, ch.AccountID, ch.Challenge))
				return login(t, req)
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "wrong origin",
			attempt: func(t *testing.T, id *testIdentity) *response {
				// A signature made for another server, relayed here.
				return login(t, id.LoginRequest("https://coffer.example:443", MustChallenge(t, ts, id)))
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "origin without the explicit port",
			attempt: func(t *testing.T, id *testIdentity) *response {
				return login(t, id.LoginRequest(strings.TrimSuffix(ts.URL, ":"+portOf(ts.URL)), MustChallenge(t, ts, id)))
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "signed for another origin than the one claimed",
			attempt: func(t *testing.T, id *testIdentity) *response {
				ch := MustChallenge(t, ts, id)
				req := id.LoginRequest("https://coffer.example:443", ch)
				req.Origin = ts.URL
				return login(t, req)
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "challenge issued to another account",
			attempt: func(t *testing.T, id *testIdentity) *response {
				other := MustIdentity(t, "other"+strings.ToLower(rand.Text()[:8]))
				MustRegister(t, ts, other)
				ch := MustChallenge(t, ts, other)
				acct := MustChallenge(t, ts, id).AccountID
				ch.AccountID = acct
				return login(t, id.LoginRequest(ts.URL, ch))
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "challenge never issued",
			attempt: func(t *testing.T, id *testIdentity) *response {
				ch := MustChallenge(t, ts, id)
				rand.Read(ch.Challenge)
				return login(t, id.LoginRequest(ts.URL, ch))
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "unknown account",
			attempt: func(t *testing.T, id *testIdentity) *response {
				ch := MustChallenge(t, ts, id)
				ch.AccountID = coffer.NewAccountID()
				return login(t, id.LoginRequest(ts.URL, ch))
			},
			wantStatus: 401, wantCode: coffer.EUNAUTHORIZED,
		},
		{
			name: "challenge of the wrong size",
			attempt: func(t *testing.T, id *testIdentity) *response {
				ch := MustChallenge(t, ts, id)
				ch.Challenge = ch.Challenge[:16]
				return login(t, id.LoginRequest(ts.URL, ch))
			},
			wantStatus: 400, wantCode: coffer.EINVALID,
		},
		{
			name: "challenge for an unknown handle",
			attempt: func(t *testing.T, id *testIdentity) *response {
				return ts.Do(t, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "nobody"})
			},
			wantStatus: 404, wantCode: coffer.ENOTFOUND,
		},
		{
			name: "challenge for a malformed handle",
			attempt: func(t *testing.T, id *testIdentity) *response {
				return ts.Do(t, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "No Body"})
			},
			wantStatus: 400, wantCode: coffer.EINVALID,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := MustIdentity(t, "user"+string(rune('a'+i)))
			MustRegister(t, ts, id)
			r := tt.attempt(t, id)
			r.Check(t, tt.wantStatus, tt.wantCode)
			if tt.wantStatus != 200 {
				return
			}
			var tok api.Tokens
			r.Decode(t, &tok)
			ts.Do(t, http.MethodGet, "/v1/handles/"+string(id.Public.Handle), tok.AccessToken, nil).Check(t, 200, "")
		})
	}
}

func portOf(u string) string { return u[strings.LastIndexByte(u, ':')+1:] }

// TestAccessTokens sends forged and invalid access tokens to an
// authenticated endpoint. Each must be refused with 401, whatever trick it
// uses: the server pins EdDSA, its own keys, issuer, audience and a
// required, unexpired exp.
func TestAccessTokens(t *testing.T) {
	ts := MustServer(t)
	_, acct, tok := MustAccount(t, ts, "alice")
	now := ts.Clock.Now()
	pub := ts.JWTKey.Key.Public().(ed25519.PublicKey)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(pub))})

	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": "coffer", "aud": "coffer-api", "sub": acct.ID.String(),
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": "test",
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
		tk := jwt.NewWithClaims(method, c)
		if kid != "" {
			tk.Header["kid"] = kid
		}
		s, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	kid := ts.JWTKey.ID
	valid := sign(jwt.SigningMethodEdDSA, ts.JWTKey.Key, kid, claims(nil))
	parts := strings.Split(tok.AccessToken, ".")
	otherPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"coffer","aud":"coffer-api","sub":"` +
		coffer.NewAccountID().String() + `","exp":` + strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + `}`))

	tests := []struct {
		name       string
		header     string // the whole Authorization header
		wantStatus int
		wantCode   coffer.Code
	}{
		{"issued by the server", "Bearer " + tok.AccessToken, 200, ""},
		{"signed with the server key (control)", "Bearer " + valid, 200, ""},
		{"no Authorization header", "", 401, coffer.EUNAUTHORIZED},
		{"empty bearer", "Bearer ", 401, coffer.EUNAUTHORIZED},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:x")), 401, coffer.EUNAUTHORIZED},
		{"not a JWT", "Bearer not-a-token", 401, coffer.EUNAUTHORIZED},
		{"alg none", "Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims(nil)), 401, coffer.EUNAUTHORIZED},
		{"alg none, signature stripped from a real token", "Bearer " + noneHeader() + "." + parts[1] + ".", 401, coffer.EUNAUTHORIZED},
		{"HS256 keyed with the public key bytes", "Bearer " + sign(jwt.SigningMethodHS256, []byte(pub), kid, claims(nil)), 401, coffer.EUNAUTHORIZED},
		{"HS256 keyed with the public key PEM", "Bearer " + sign(jwt.SigningMethodHS256, pubPEM, kid, claims(nil)), 401, coffer.EUNAUTHORIZED},
		{"wrong audience", "Bearer " + sign(jwt.SigningMethodEdDSA, ts.JWTKey.Key, kid, claims(func(c jwt.MapClaims) { c["aud"] = "another-api" })), 401, coffer.EUNAUTHORIZED},
		{"no audience", "Bearer " + sign(jwt.SigningMethodEdDSA, ts.JWTKey.Key, kid, claims(func(c jwt.MapClaims) { delete(c, "aud") })), 401, coffer.EUNAUTHORIZED},
		{"wrong issuer", "Bearer " + sign(jwt.SigningMethodEdDSA, ts.JWTKey.Key, kid, claims(func(c jwt.MapClaims) { c["iss"] = "evil" })), 401, coffer.EUNAUTHORIZED},
		{"expired", "Bearer " + sign(jwt.SigningMethodEdDSA, ts.JWTKey.Key, kid, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() /* beyond the clock-skew leeway */ })), 401, coffer.EUNAUTHORIZED},
		{"missing exp", "Bearer " + sign(jwt.SigningMethodEdDSA, ts.JWTKey.Key, kid, claims(func(c jwt.MapClaims) { delete(c, "exp") })), 401, coffer.EUNAUTHORIZED},
		{"issued in the future", "Bearer " + sign(jwt.SigningMethodEdDSA, ts.JWTKey.Key, kid, claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), 401, coffer.EUNAUTHORIZED},
		{"unknown kid", "Bearer " + sign(jwt.SigningMethodEdDSA, otherKey, "rotated-out", claims(nil)), 401, coffer.EUNAUTHORIZED},
		{"no kid", "Bearer " + sign(jwt.SigningMethodEdDSA, ts.JWTKey.Key, "", claims(nil)), 401, coffer.EUNAUTHORIZED},
		{"known kid, other key", "Bearer " + sign(jwt.SigningMethodEdDSA, otherKey, kid, claims(nil)), 401, coffer.EUNAUTHORIZED},
		{"subject is not an account id", "Bearer " + sign(jwt.SigningMethodEdDSA, ts.JWTKey.Key, kid, claims(func(c jwt.MapClaims) { c["sub"] = "alice" })), 401, coffer.EUNAUTHORIZED},
		{"payload swapped under a real signature", "Bearer " + parts[0] + "." + otherPayload + "." + parts[2], 401, coffer.EUNAUTHORIZED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ts.NewRequest(t, http.MethodGet, "/v1/groups", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			r := ts.Send(t, req)
			p := r.Check(t, tt.wantStatus, tt.wantCode)
			if tt.wantStatus == 401 {
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q, want a Bearer challenge", r.Header.Get("WWW-Authenticate"))
				}
				if strings.Contains(p.Detail, "signature") || strings.Contains(p.Detail, "kid") {
					t.Errorf("detail %q tells the forger which check failed", p.Detail)
				}
			}
		})
	}
}

// TestAccessTokenExpiry moves the server's clock past the 15-minute
// lifetime of an access token it issued.
func TestAccessTokenExpiry(t *testing.T) {
	ts := MustServer(t)
	_, _, tok := MustAccount(t, ts, "alice")
	ts.Do(t, http.MethodGet, "/v1/groups", tok.AccessToken, nil).Check(t, 200, "")
	ts.Clock.Advance(14 * time.Minute)
	ts.Do(t, http.MethodGet, "/v1/groups", tok.AccessToken, nil).Check(t, 200, "")
	// Past the lifetime and the clock-skew leeway replicas are allowed.
	ts.Clock.Advance(time.Minute + 31*time.Second)
	ts.Do(t, http.MethodGet, "/v1/groups", tok.AccessToken, nil).Check(t, 401, coffer.EUNAUTHORIZED)

	// The refresh token outlives it and yields a working access token.
	r := ts.Do(t, http.MethodPost, "/v1/auth/refresh", "", api.RefreshRequest{RefreshToken: tok.RefreshToken})
	r.Check(t, 200, "")
	var next api.Tokens
	r.Decode(t, &next)
	ts.Do(t, http.MethodGet, "/v1/groups", next.AccessToken, nil).Check(t, 200, "")
}

func TestRefreshRotation(t *testing.T) {
	ts := MustServer(t)
	id, _, first := MustAccount(t, ts, "alice")
	refresh := func(t *testing.T, token string) *response {
		return ts.Do(t, http.MethodPost, "/v1/auth/refresh", "", api.RefreshRequest{RefreshToken: token})
	}
	logout := func(t *testing.T, token string) *response {
		return ts.Do(t, http.MethodPost, "/v1/auth/logout", "", api.RefreshRequest{RefreshToken: token})
	}
	mustRefresh := func(t *testing.T, token string) api.Tokens {
		t.Helper()
		r := refresh(t, token)
		r.Check(t, 200, "")
		var tok api.Tokens
		r.Decode(t, &tok)
		if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 {
			t.Fatalf("tokens %+v", tok)
		}
		return tok
	}
	works := func(t *testing.T, access string) {
		t.Helper()
		ts.Do(t, http.MethodGet, "/v1/groups", access, nil).Check(t, 200, "")
	}

	t.Run("rotation and reuse", func(t *testing.T) {
		second := mustRefresh(t, first.RefreshToken)
		if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
			t.Fatal("refresh returned the same tokens")
		}
		works(t, second.AccessToken)
		third := mustRefresh(t, second.RefreshToken)
		works(t, third.AccessToken)

		// Reusing a rotated token means someone else has a copy: refused,
		// and the whole family stops working, including the newest token.
		refresh(t, first.RefreshToken).Check(t, 401, coffer.EUNAUTHORIZED)
		refresh(t, third.RefreshToken).Check(t, 401, coffer.EUNAUTHORIZED)
		refresh(t, second.RefreshToken).Check(t, 401, coffer.EUNAUTHORIZED)
		logout(t, third.RefreshToken).Check(t, 401, coffer.EUNAUTHORIZED)
	})

	t.Run("families are independent", func(t *testing.T) {
		phone := MustLogin(t, ts, id)
		laptop := MustLogin(t, ts, id)
		mustRefresh(t, phone.RefreshToken)
		refresh(t, phone.RefreshToken).Check(t, 401, coffer.EUNAUTHORIZED) // revokes the phone's family
		works(t, mustRefresh(t, laptop.RefreshToken).AccessToken)
	})

	t.Run("logout revokes", func(t *testing.T) {
		s := MustLogin(t, ts, id)
		next := mustRefresh(t, s.RefreshToken)
		logout(t, next.RefreshToken).Check(t, 204, "")
		refresh(t, next.RefreshToken).Check(t, 401, coffer.EUNAUTHORIZED)
		logout(t, next.RefreshToken).Check(t, 401, coffer.EUNAUTHORIZED)
	})

	t.Run("logout with the rotated token revokes the family", func(t *testing.T) {
		s := MustLogin(t, ts, id)
		next := mustRefresh(t, s.RefreshToken)
		logout(t, s.RefreshToken).Check(t, 204, "")
		refresh(t, next.RefreshToken).Check(t, 401, coffer.EUNAUTHORIZED)
	})

	t.Run("unknown and malformed tokens", func(t *testing.T) {
		for _, tok := range []string{"", "x", strings.Repeat("A", 43), first.AccessToken} {
			refresh(t, tok).Check(t, 401, coffer.EUNAUTHORIZED)
			logout(t, tok).Check(t, 401, coffer.EUNAUTHORIZED)
		}
	})

	t.Run("expired", func(t *testing.T) {
		s := MustLogin(t, ts, id)
		ts.Clock.Advance(30*24*time.Hour + time.Second)
		refresh(t, s.RefreshToken).Check(t, 401, coffer.EUNAUTHORIZED)
	})
}

func TestAuthRateLimit(t *testing.T) {
	ts := MustServer(t, withAuthRateLimit(3))
	for range 3 {
		// Counted even when it fails: the limit is on attempts.
		ts.Do(t, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "nobody"}).Check(t, 404, coffer.ENOTFOUND)
	}
	p := ts.Do(t, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "nobody"}).Check(t, 429, coffer.ERATELIMITED)
	if p.Detail == "" {
		t.Error("no detail on 429")
	}
	// Every auth endpoint and registration share the budget.
	ts.Do(t, http.MethodPost, "/v1/accounts", "", MustIdentity(t, "late").RegisterRequest()).Check(t, 429, coffer.ERATELIMITED)
	ts.Do(t, http.MethodPost, "/v1/auth/refresh", "", api.RefreshRequest{RefreshToken: "x"}).Check(t, 429, coffer.ERATELIMITED)
	// Other endpoints are not limited by it.
	ts.Do(t, http.MethodGet, "/healthz", "", nil).Check(t, 200, "")
	ts.Do(t, http.MethodGet, "/v1/groups", "", nil).Check(t, 401, coffer.EUNAUTHORIZED)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func noneHeader() string {
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
}
