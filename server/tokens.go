package server

import (
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
}

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
	account coffer.AccountID
	expires time.Time
}

// clockSkewLeeway is how far apart replicas' clocks may be: a token issued
// by a replica whose clock runs ahead is not "used before issued" on another,
// and expiry is judged with the same slack. It is small next to the
// access-token lifetime (15 minutes), so it extends a stolen token little.
const clockSkewLeeway = 30 * time.Second

// maxCachedTokens bounds memory: about 100 bytes an entry.
const maxCachedTokens = 100_000

func (c *tokenCache) get(h [32]byte, now time.Time) (coffer.AccountID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[h]
	if !ok || !now.Before(e.expires) {
		return coffer.AccountID{}, false
	}
	return e.account, true
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

func (t *tokenIssuer) issue(account coffer.AccountID) (string, error) {
	now := t.now()
	jti := make([]byte, 16)
	rand.Read(jti)
	claims := jwt.RegisteredClaims{
		Issuer:    t.issuer,
		Subject:   account.String(),
		Audience:  jwt.ClaimStrings{t.audience},
		ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        base64.RawURLEncoding.EncodeToString(jti),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = t.keys[0].ID
	return tok.SignedString(t.keys[0].Key)
}

// verify accepts only EdDSA tokens signed by a configured key, with our
// issuer and audience and an unexpired exp. Pinning the method defeats
// "alg: none" and the HS256-with-the-public-key confusion.
func (t *tokenIssuer) verify(s string) (coffer.AccountID, error) {
	h := sha256.Sum256([]byte(s))
	if id, ok := t.verified.get(h, t.now()); ok {
		return id, nil
	}
	var claims jwt.RegisteredClaims
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
	t.verified.put(h, cachedToken{account: id, expires: claims.ExpiresAt.Time}, t.now())
	return id, nil
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
