package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cofferhq/coffer"
)

// JWTKey is one Ed25519 key for access tokens. The first configured key
// signs; every configured key verifies, so keys rotate by adding the new key
// first and removing the old one after the access-token lifetime.
type JWTKey struct {
	ID  string // the JWT "kid"
	Key ed25519.PrivateKey
}

// NewJWTKey derives the kid from the public key, so the same key always has
// the same id across replicas.
func NewJWTKey(k ed25519.PrivateKey) JWTKey {
	sum := sha256.Sum256(k.Public().(ed25519.PublicKey))
	return JWTKey{ID: base64.RawURLEncoding.EncodeToString(sum[:9]), Key: k}
}

type tokenIssuer struct {
	keys     []JWTKey
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
	verified tokenCache
	// sessions, when the auth service offers it, lets a logout revoke the
	// access tokens of its session on every replica.
	sessions sessionChecker
}

// sessionChecker is what the store offers for access-token revocation: an
// access token names its session (the family of its refresh tokens), and
// is refused once that family is revoked (logout, or a stolen refresh
// token caught by reuse detection).
type sessionChecker interface {
	RefreshFamily(ctx context.Context, hash [32]byte) ([16]byte, error)
	SessionLive(ctx context.Context, family [16]byte) (bool, error)
}

// sessionRecheck is how long a replica trusts its cached verdict that an
// access token's session is live: a logout through another replica takes
// effect here within this time (at once on the replica that served it).
const sessionRecheck = 30 * time.Second

// tokenCache remembers access tokens that passed full verification, until
// they expire. A token is an immutable signed statement, so a verdict about
// it stays true until its exp; caching it saves an Ed25519 verification and
// a JWT parse on every request, the largest cost of a small read. Entries
// are keyed by the token's SHA-256 and bounded in number.
type tokenCache struct {
	mu sync.Mutex
	m  map[[32]byte]cachedToken
}

type cachedToken struct {
	account    coffer.AccountID
	expires    time.Time
	session    [16]byte // zero: a token without a session claim
	checkedAt  time.Time
	revoked    bool
	hasSession bool
}

// clockSkewLeeway is how far apart replicas' clocks may be: a token issued
// by a replica whose clock runs ahead is not "used before issued" on another,
// and expiry is judged with the same slack. It is small next to the
// access-token lifetime (15 minutes), so it extends a stolen token little.
const clockSkewLeeway = 30 * time.Second

// maxCachedTokens bounds memory: about 100 bytes an entry.
const maxCachedTokens = 100_000

func (c *tokenCache) get(h [32]byte, now time.Time) (cachedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[h]
	if !ok || !now.Before(e.expires) {
		return cachedToken{}, false
	}
	return e, true
}

func (c *tokenCache) put(h [32]byte, e cachedToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[32]byte]cachedToken{}
	}
	if len(c.m) >= maxCachedTokens {
		for k, v := range c.m {
			if !now.Before(v.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedTokens {
			clear(c.m)
		}
	}
	c.m[h] = e
}

// accessClaims are the registered claims plus the session (sid): the
// family of the refresh tokens the access token was issued with.
type accessClaims struct {
	jwt.RegisteredClaims
	Session string `json:"sid,omitempty"`
}

func (t *tokenIssuer) issue(account coffer.AccountID, session [16]byte) (string, error) {
	now := t.now()
	jti := make([]byte, 16)
	rand.Read(jti)
	claims := accessClaims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    t.issuer,
		Subject:   account.String(),
		Audience:  jwt.ClaimStrings{t.audience},
		ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        base64.RawURLEncoding.EncodeToString(jti),
	}}
	if session != ([16]byte{}) {
		claims.Session = base64.RawURLEncoding.EncodeToString(session[:])
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = t.keys[0].ID
	return tok.SignedString(t.keys[0].Key)
}

// verify accepts only EdDSA tokens signed by a configured key, with our
// issuer and audience and an unexpired exp, whose session is not revoked.
// Pinning the method defeats "alg: none" and the HS256-with-the-public-key
// confusion.
func (t *tokenIssuer) verify(ctx context.Context, s string) (coffer.AccountID, error) {
	h := sha256.Sum256([]byte(s))
	if e, ok := t.verified.get(h, t.now()); ok {
		return t.checkSession(ctx, h, e)
	}
	var claims accessClaims
	_, err := jwt.ParseWithClaims(s, &claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		for _, k := range t.keys {
			if k.ID == kid {
				return k.Key.Public(), nil
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(t.audience),
		jwt.WithIssuer(t.issuer),
		jwt.WithTimeFunc(t.now),
		jwt.WithLeeway(clockSkewLeeway),
	)
	if err != nil {
		return coffer.AccountID{}, coffer.Errorf(coffer.EUNAUTHORIZED, "invalid or expired access token")
	}
	id, err := coffer.ParseAccountID(claims.Subject)
	if err != nil {
		return coffer.AccountID{}, coffer.Errorf(coffer.EUNAUTHORIZED, "invalid access token subject")
	}
	e := cachedToken{account: id, expires: claims.ExpiresAt.Time}
	if claims.Session != "" {
		b, err := base64.RawURLEncoding.DecodeString(claims.Session)
		if err != nil || len(b) != 16 {
			return coffer.AccountID{}, coffer.Errorf(coffer.EUNAUTHORIZED, "invalid access token session")
		}
		e.session, e.hasSession = [16]byte(b), true
	}
	return t.checkSession(ctx, h, e)
}

// checkSession refuses a token whose session was revoked, asking the store
// when the cached verdict is older than sessionRecheck, and caches the
// result.
func (t *tokenIssuer) checkSession(ctx context.Context, h [32]byte, e cachedToken) (coffer.AccountID, error) {
	if e.revoked {
		return coffer.AccountID{}, coffer.Errorf(coffer.EUNAUTHORIZED, "the session of this access token ended (logout)")
	}
	now := t.now()
	if e.hasSession && t.sessions != nil && (e.checkedAt.IsZero() || now.Sub(e.checkedAt) >= sessionRecheck || now.Before(e.checkedAt)) {
		live, err := t.sessions.SessionLive(ctx, e.session)
		if err != nil {
			return coffer.AccountID{}, err
		}
		e.checkedAt = now
		e.revoked = !live
		t.verified.put(h, e, now)
		if !live {
			return coffer.AccountID{}, coffer.Errorf(coffer.EUNAUTHORIZED, "the session of this access token ended (logout)")
		}
		return e.account, nil
	}
	if e.checkedAt.IsZero() {
		e.checkedAt = now
		t.verified.put(h, e, now)
	}
	return e.account, nil
}

// revoke marks a verified access token revoked in this replica's cache at
// once; other replicas learn it from the store within sessionRecheck.
func (t *tokenIssuer) revoke(ctx context.Context, s string) {
	h := sha256.Sum256([]byte(s))
	if _, err := t.verify(ctx, s); err != nil {
		return
	}
	if e, ok := t.verified.get(h, t.now()); ok {
		e.revoked = true
		t.verified.put(h, e, t.now())
	}
}

// newRefreshToken returns 256 random bits as the token and its SHA-256 as
// the only thing the server stores: a database leak yields no usable token.
func newRefreshToken() (token string, hash [32]byte) {
	b := make([]byte, 32)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, sha256.Sum256([]byte(token))
}

func hashRefreshToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }
