// Package api holds the JSON request and response bodies of Coffer's HTTP
// API, shared by the server and the client library so the two cannot drift.
// Byte fields are base64 (standard alphabet, padded), as encoding/json does
// for []byte. docs/openapi.yaml describes the same shapes.
package api

import (
	"time"

	"github.com/cofferhq/coffer"
)

// Problem is an RFC 9457 application/problem+json body. Code is stable and
// maps back to coffer.Code on the client.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
	Rule   string `json:"rule,omitempty"`
	// HeadSeq is set on a 409 from a commit append: the current head.
	HeadSeq uint64 `json:"head_seq,omitempty"`
}

type RegisterRequest struct {
	Identity      []byte `json:"identity"`       // canonical coffer.PublicIdentity
	SelfSignature []byte `json:"self_signature"` // under coffer.LabelIdentity
}

type Account struct {
	ID            coffer.AccountID `json:"id"`
	Handle        coffer.Handle    `json:"handle"`
	Identity      []byte           `json:"identity"`
	SelfSignature []byte           `json:"self_signature"`
	CreatedAt     time.Time        `json:"created_at"`
}

type ChallengeRequest struct {
	Handle coffer.Handle `json:"handle"`
}

type ChallengeResponse struct {
	AccountID coffer.AccountID `json:"account_id"`
	Challenge []byte           `json:"challenge"`
	ExpiresAt time.Time        `json:"expires_at"`
}

type LoginRequest struct {
	AccountID coffer.AccountID `json:"account_id"`
	Origin    string           `json:"origin"`
	Challenge []byte           `json:"challenge"`
	Signature []byte           `json:"signature"` // over coffer.LoginStatement
}

type Tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"` // "Bearer"
	ExpiresIn    int    `json:"expires_in"` // seconds
	RefreshToken string `json:"refresh_token"`
}

type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type SignedCommit struct {
	Body      []byte `json:"body"`
	Signature []byte `json:"signature"`
}

type Wrap struct {
	Member coffer.AccountID `json:"member"`
	Epoch  uint64           `json:"epoch"`
	Wrap   []byte           `json:"wrap"`
}

type HistoryLink struct {
	Epoch uint64 `json:"epoch"`
	Link  []byte `json:"link"`
}

// CommitRequest creates a group (with a genesis commit) or appends to one.
type CommitRequest struct {
	Commit SignedCommit  `json:"commit"`
	Wraps  []Wrap        `json:"wraps"`
	Links  []HistoryLink `json:"links,omitempty"`
	Meta   []byte        `json:"meta,omitempty"`
}

type Group struct {
	ID        coffer.GroupID `json:"id"`
	HeadSeq   uint64         `json:"head_seq"`
	HeadHash  []byte         `json:"head_hash"`
	Epoch     uint64         `json:"epoch"`
	MetaEpoch uint64         `json:"meta_epoch,omitempty"`
	Meta      []byte         `json:"meta,omitempty"`
	Role      coffer.Role    `json:"role"`
}

type GroupList struct {
	Groups     []Group `json:"groups"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

type CommitList struct {
	Commits []SignedCommit `json:"commits"`
}

type Keys struct {
	Wraps []Wrap        `json:"wraps"`
	Links []HistoryLink `json:"links"`
}
