package clientlib

import (
	"context"
	"errors"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// Own writes are proven.
//
// The server's "201 Created" for a commit or a registration proves nothing
// to its author: a server that keeps the write out of the transparency log
// (and so can show other clients a history without it, or a different one)
// answers the same. So a write is reported done only after the author has
// proven its inclusion, exactly as written, in a checkpoint it verified. A
// forged or wrong proof is a *coffer.SecurityError; a write the log has not
// included within Options.LogWait is EUNAVAILABLE, and the caller may check
// again later (a Sync proves it), but never gets success for it.

// witnessOwnCommit waits, up to Options.LogWait, until the witnesses vouch
// for s, the state this client's own commit produced, in a fresh heads map:
// a removal or rotation is reported done only once every other member's
// next check of the group sees it. A map that already shows a newer head
// is fine: the log holds exactly one commit at each seq, and this one was
// proven in it.
func (c *Client) witnessOwnCommit(ctx context.Context, s *coffer.GroupState) error {
	_, err := c.proveHead(ctx, s, groupHead{})
	if errors.Is(err, errMapAhead) {
		return nil
	}
	return err
}

// proveOwnCommit proves the commit sc this client appended at seq of g.
func (c *Client) proveOwnCommit(ctx context.Context, g coffer.GroupID, seq uint64, sc coffer.SignedCommit) error {
	return c.proveCommitsLogged(ctx, g, seq, []coffer.SignedCommit{sc})
}

// proveOwnIdentity proves this device's identity, as it registered it,
// under account.
func (c *Client) proveOwnIdentity(ctx context.Context, account coffer.AccountID, id *Identity) error {
	return c.proveLogged(ctx, []loggedObject{{
		ref:  coffer.LogRef{Account: account},
		leaf: translog.IdentityLeaf(account, id.Public().Marshal(), id.SelfSignature()),
	}})
}
