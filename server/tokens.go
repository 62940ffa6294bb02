package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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
	)
	if err != nil {
		return coffer.AccountID{}, coffer.Errorf(coffer.EUNAUTHORIZED, "invalid or expired access token")
	}
	id, err := coffer.ParseAccountID(claims.Subject)
	if err != nil {
		return coffer.AccountID{}, coffer.Errorf(coffer.EUNAUTHORIZED, "invalid access token subject")
	}
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
