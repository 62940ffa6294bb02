package clientlib

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// followChain verifies a suite v2 account's chain for an account the
// server returned, and sets acct.Chain. It continues from the chain this
// device verified before (its own account's, or a contact's), so the
// server can neither fork nor roll back an account this device has seen,
// and requires the identity the server shows to be the one the chain's
// current user key derives. A suite v1 account (no chain) is left as is.
func (c *Client) followChain(ctx context.Context, a api.Account, acct *Account) error {
	if a.ChainSeq == 0 {
		return nil
	}
	from := &coffer.AccountState{Account: a.ID, Origin: c.origin, Handle: acct.Identity.Handle}
	c.mu.Lock()
	own := c.acct
	c.mu.Unlock()
	if own != nil && own.state != nil && own.state.Account == a.ID {
		from = own.state
	} else if ct, err := c.loadContact(acct.Identity.Handle); err != nil {
		return err
	} else if ct != nil && ct.Chain != nil && ct.Chain.Account == a.ID {
		from = ct.Chain
	}
	if from.Seq > a.ChainSeq {
		return coffer.Security("account-chain", fmt.Errorf("the server shows %s's chain at link %d; this device verified it up to %d", acct.Identity.Handle, a.ChainSeq, from.Seq))
	}
	s := from
	if a.ChainSeq > from.Seq {
		_, links, err := c.fetchLinks(ctx, "/v1/accounts/"+a.ID.String()+"/links", from.Seq)
		if err != nil {
			return err
		}
		if s, err = coffer.VerifyAccountChain(from, links); err != nil {
			return coffer.Security("account-chain", err)
		}
	}
	if !s.Identity().Equal(acct.Identity) {
		return coffer.Security("account-chain", errors.New("the identity the server shows is not the one the account's chain names"))
	}
	acct.Chain = s
	return nil
}

// followMemberChains refreshes, through Lookup (which follows the chain),
// each verified suite v2 contact that is a member of s in scope with keys
// other than the ones this device verified last. When the chain names the keys
// the group now holds, the contact's verified identity moves to them; when
// it does not, keyConflicts still finds the difference.
//
// Only members who updated their keys (KeyEpoch after JoinedEpoch) and,
// when this device held the group before (prev), whose keys changed since,
// are looked at: a sync of a group where nobody rotated reads no contact.
func (c *Client) followMemberChains(ctx context.Context, prev, s *coffer.GroupState, scope *memberScope) error {
	for id, m := range scope.members(s) {
		if m.KeyEpoch <= m.JoinedEpoch {
			continue
		}
		if prev != nil {
			if p := prev.Members[id]; p != nil && (m.KeysHash != [32]byte{} && p.KeysHash == m.KeysHash ||
				m.KeysHash == [32]byte{} && bytes.Equal(p.SigningKey, m.SigningKey) && bytes.Equal(p.EncryptionKey, m.EncryptionKey)) {
				continue
			}
		}
		ct, err := c.loadContact(m.Handle)
		if err != nil {
			return err
		}
		if ct == nil || ct.Chain == nil || ct.VerifiedIdentity == nil || ct.State != Verified || ct.AccountID != id ||
			bytes.Equal(m.SigningKey, ct.VerifiedIdentity.SigningKey) && bytes.Equal(m.EncryptionKey, ct.VerifiedIdentity.EncryptionKey) {
			continue
		}
		a, err := c.Lookup(ctx, string(ct.Handle))
		if err != nil {
			return err
		}
		if _, err := c.observe(a); err != nil {
			return err
		}
	}
	return nil
}
