package coffer

import (
	"context"
	"time"
)

// This file holds the interfaces between the HTTP server and storage. The
// store package implements them on PostgreSQL; the server package calls them.
// Neither imports the other: cmd/cofferd wires them together.
//
// Every method that takes a caller AccountID enforces membership inside its
// query: a non-member gets ENOTFOUND, exactly as if the object did not exist.

// Account is a registered identity as the server stores it.
type Account struct {
	ID            AccountID
	Identity      PublicIdentity
	SelfSignature []byte
	Created       time.Time
}

// AccountService stores accounts.
type AccountService interface {
	// CreateAccount stores a new account. ECONFLICT if the handle is taken.
	CreateAccount(ctx context.Context, a *Account) error
	// AccountByID returns an account or ENOTFOUND.
	AccountByID(ctx context.Context, id AccountID) (*Account, error)
	// AccountByHandle returns an account or ENOTFOUND.
	AccountByHandle(ctx context.Context, h Handle) (*Account, error)
}

// RefreshToken is the stored form of a refresh token: only its hash.
type RefreshToken struct {
	Hash    [32]byte
	Family  [16]byte
	Account AccountID
	Expires time.Time
}

// AuthService stores login challenges and refresh tokens.
type AuthService interface {
	// CreateChallenge records the hash of a fresh challenge for account.
	CreateChallenge(ctx context.Context, account AccountID, challengeHash [32]byte, expires time.Time) error
	// ConsumeChallenge deletes the challenge and reports EUNAUTHORIZED if it
	// was absent, expired, already used or issued to another account.
	ConsumeChallenge(ctx context.Context, account AccountID, challengeHash [32]byte) error
	// CreateRefreshToken stores a new refresh token.
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RotateRefreshToken marks the token with hash old as used and stores
	// next in the same family, returning the account. A token that is
	// unknown, expired, revoked or already used gets EUNAUTHORIZED; a used
	// one also revokes its whole family, because reuse means it was stolen.
	RotateRefreshToken(ctx context.Context, old [32]byte, next RefreshToken) (AccountID, error)
	// RevokeRefreshToken revokes the family of the token (logout).
	RevokeRefreshToken(ctx context.Context, hash [32]byte) error
}
