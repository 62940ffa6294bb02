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

// Wrap is an epoch key sealed to one member with HPKE (coffer.WrapSize bytes).
type Wrap struct {
	Member AccountID
	Epoch  uint64
	Data   []byte
}

// HistoryLink holds the key of Epoch sealed under a key derived from the key
// of Epoch+1 (coffer.HistoryLinkSize bytes).
type HistoryLink struct {
	Epoch uint64
	Data  []byte
}

// GroupInfo is what a member may see of a group without reading commits.
type GroupInfo struct {
	ID        GroupID
	HeadSeq   uint64
	HeadHash  [32]byte
	Epoch     uint64
	MetaEpoch uint64
	Meta      []byte // encrypted under the key of MetaEpoch
	Role      Role   // the caller's current role
}

// GroupAppend is a verified commit with everything stored atomically with
// it. The server builds it after running the chain verifier on Commit
// against the stored state Prev; State is the verifier's state after it.
type GroupAppend struct {
	Commit   SignedCommit
	Parsed   *Commit
	State    *GroupState
	PrevSeq  uint64 // 0 for genesis
	Wraps    []Wrap
	Links    []HistoryLink
	Meta     []byte // optional new encrypted group metadata, under State.Epoch
	Received time.Time
}

// GroupService stores groups and their commit chains.
type GroupService interface {
	// CreateGroup stores a group with its genesis. ECONFLICT if the id exists.
	CreateGroup(ctx context.Context, a *GroupAppend) error
	// GroupState returns the verified state after the stored head, for the
	// server to verify the next commit against. ENOTFOUND unless caller is
	// a member.
	GroupState(ctx context.Context, caller AccountID, g GroupID) (*GroupState, error)
	// AppendCommit stores a commit at PrevSeq+1. If another commit took that
	// seq first it returns ECONFLICT and the current head seq.
	AppendCommit(ctx context.Context, caller AccountID, a *GroupAppend) (head uint64, err error)
	// Groups lists the caller's groups ordered by id, after the cursor.
	Groups(ctx context.Context, caller AccountID, after GroupID, limit int) ([]GroupInfo, error)
	// Group returns one group, ENOTFOUND unless caller is a member.
	Group(ctx context.Context, caller AccountID, g GroupID) (*GroupInfo, error)
	// Commits returns up to limit commits with seq > after, in order.
	Commits(ctx context.Context, caller AccountID, g GroupID, after uint64, limit int) ([]SignedCommit, error)
	// Keys returns the caller's wraps for every epoch and all history links.
	Keys(ctx context.Context, caller AccountID, g GroupID) ([]Wrap, []HistoryLink, error)
}
