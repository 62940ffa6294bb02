package clientlib

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// Identities through the heads map.
//
// The heads map holds, for every account, the record hash of its newest
// identity leaf. A sync proves each current member's identity there, in the
// same witnessed checkpoint that proved the group's head: the identity the
// server serves for the member must be exactly that leaf (account id,
// canonical identity, self-signature), and its handle and keys must be the
// ones the verified chain recorded when the member was added. A forged map
// proof is a security error; a member whose chain keys are not a logged
// identity (the server slipped in keys of its own) is treated like a key
// that contradicts a verified contact: writes for the group stop, naming
// the member, and reads and the member's removal stay possible. Proofs are
// cached per account: suite v1 has no key change, so one proof lasts.

// identityKey binds a member's handle and keys, for the caches below.
func identityKey(handle coffer.Handle, signing, encryption []byte) [32]byte {
	h := sha256.New()
	for _, b := range [][]byte{[]byte(handle), signing, encryption} {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b))
		h.Write(n[:])
		h.Write(b)
	}
	return [32]byte(h.Sum(nil))
}

// knownIdentity is an identity this client fetched and checked (self-
// signature, handle): the record hash of its log leaf and what it binds.
type knownIdentity struct {
	record [32]byte
	key    [32]byte
}

// noteIdentity remembers an account the server served and this client
// checked, so that a later sync proves it without fetching it again.
func (c *Client) noteIdentity(a api.Account, pub coffer.PublicIdentity) {
	k := knownIdentity{
		record: translog.RecordHash(translog.IdentityLeaf(a.ID, a.Identity, a.SelfSignature)),
		key:    identityKey(pub.Handle, pub.SigningKey, pub.EncryptionKey),
	}
	c.fresh.mu.Lock()
	defer c.fresh.mu.Unlock()
	if c.fresh.idents == nil {
		c.fresh.idents = map[coffer.AccountID]knownIdentity{}
	}
	c.fresh.idents[a.ID] = k
}

// maxIdentityFetches bounds the account lookups in flight.
const maxIdentityFetches = 8

// todoMember is a member entry whose identity is to be proven, with its
// identityKey.
type todoMember struct {
	m   *coffer.Member
	key [32]byte
}

// proveMembers proves the identity of every member of s in scope that this
// client has not proven yet in the heads map of w.
func (c *Client) proveMembers(ctx context.Context, w *witnessed, s *coffer.GroupState, scope *memberScope) error {
	var pending []todoMember
	c.fresh.mu.Lock()
	for _, m := range scope.members(s) {
		// An entry is never changed in place (GroupState.Clone shares
		// them, a commit replaces one it changes), so an entry proven
		// before is proven without hashing its keys again: a sync of a
		// 100,000-member group hashed 130 MB here.
		if c.fresh.provenEntries[m] {
			continue
		}
		k := identityKey(m.Handle, m.SigningKey, m.EncryptionKey)
		if p, ok := c.fresh.provenIDs[m.ID]; ok && p == k {
			c.noteProvenEntryLocked(m)
			continue
		}
		pending = append(pending, todoMember{m, k})
	}
	c.fresh.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	// In a stable order, so the requests are the same every time.
	slices.SortFunc(pending, func(a, b todoMember) int { return bytes.Compare(a.m.ID[:], b.m.ID[:]) })
	// The identities the server serves, fetched unless this client checked
	// them before (Lookup, an earlier sync).
	records := make([][32]byte, len(pending))
	var fetch []int // indices into pending
	for i, p := range pending {
		c.fresh.mu.Lock()
		k, ok := c.fresh.idents[p.m.ID]
		c.fresh.mu.Unlock()
		if ok && k.key == p.key {
			records[i] = k.record
			continue
		}
		fetch = append(fetch, i)
	}
	// Asked in batches (POST /v1/accounts/lookup): a new member of a
	// 100,000-member group made 100,000 requests here.
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(maxIdentityFetches)
	for start := 0; start < len(fetch); start += coffer.MaxAccountsLookup {
		batch := fetch[start:min(start+coffer.MaxAccountsLookup, len(fetch))]
		eg.Go(func() error {
			served, err := c.lookupAccounts(gctx, pending, batch)
			if err != nil {
				return err
			}
			for _, i := range batch {
				p := pending[i]
				a, ok := served[p.m.ID]
				if !ok {
					c.noteUnlogged(p.m, p.key) // no such account
					continue
				}
				acct, err := checkMemberAccount(a, p.m)
				if err != nil {
					return err
				}
				pub := acct.Identity
				if !bytes.Equal(pub.SigningKey, p.m.SigningKey) || !bytes.Equal(pub.EncryptionKey, p.m.EncryptionKey) {
					c.noteUnlogged(p.m, p.key) // the account's keys are not the member's
					continue
				}
				c.noteIdentity(a, pub)
				records[i] = translog.RecordHash(translog.IdentityLeaf(a.ID, a.Identity, a.SelfSignature))
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	// Their entries in the witnessed map, in batches, several at once.
	eg, gctx = errgroup.WithContext(ctx)
	eg.SetLimit(maxIdentityFetches)
	for start := 0; start < len(pending); start += logBatch {
		batch := pending[start:min(start+logBatch, len(pending))]
		eg.Go(func() error {
			keys := make([]translog.MapKey, len(batch))
			for i, p := range batch {
				keys[i] = translog.AccountKey(p.m.ID)
			}
			entries, found, err := c.mapEntries(gctx, w.cp, keys)
			if err != nil {
				return err
			}
			c.fresh.mu.Lock()
			defer c.fresh.mu.Unlock()
			if c.fresh.provenIDs == nil {
				c.fresh.provenIDs = map[coffer.AccountID][32]byte{}
			}
			for i, p := range batch {
				if records[start+i] == ([32]byte{}) {
					continue // noted as unlogged above
				}
				if !found[i] || entries[i].Hash != records[start+i] {
					// Not the identity the log holds for the account.
					c.noteUnloggedLocked(p.m, p.key)
					continue
				}
				c.fresh.provenIDs[p.m.ID] = p.key
				c.noteProvenEntryLocked(p.m)
				delete(c.fresh.unlogged, p.m.ID)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	return nil
}

// lookupAccounts asks for the accounts of pending[i] for each i in batch
// and returns them by id. An account not asked for, or served twice, is a
// security error: the server answers for exactly the ids it was asked.
func (c *Client) lookupAccounts(ctx context.Context, pending []todoMember, batch []int) (map[coffer.AccountID]api.Account, error) {
	req := api.AccountsRequest{IDs: make([]coffer.AccountID, len(batch))}
	asked := make(map[coffer.AccountID]bool, len(batch))
	for j, i := range batch {
		req.IDs[j] = pending[i].m.ID
		asked[pending[i].m.ID] = true
	}
	var resp api.AccountsResponse
	if err := c.call(ctx, http.MethodPost, "/v1/accounts/lookup", true, &req, &resp); err != nil {
		return nil, err
	}
	served := make(map[coffer.AccountID]api.Account, len(resp.Accounts))
	for _, a := range resp.Accounts {
		if !asked[a.ID] {
			return nil, coffer.Security("lookup", fmt.Errorf("asked for %d accounts, the server answered account %s, which was not asked for", len(batch), a.ID))
		}
		if _, dup := served[a.ID]; dup {
			return nil, coffer.Security("lookup", fmt.Errorf("the server answered account %s twice", a.ID))
		}
		served[a.ID] = a
	}
	return served, nil
}

// noteProvenEntryLocked remembers entry m as proven. The set is dropped
// when it outgrows maxProvenEntries, which only costs hashing again.
func (c *Client) noteProvenEntryLocked(m *coffer.Member) {
	if c.fresh.provenEntries == nil || len(c.fresh.provenEntries) >= maxProvenEntries {
		c.fresh.provenEntries = map[*coffer.Member]bool{}
	}
	c.fresh.provenEntries[m] = true
}

// maxProvenEntries bounds provenEntries: old entries (of members since
// changed or removed) stay in it, and keep their entry alive.
const maxProvenEntries = 1 << 20

// noteUnlogged records a member whose handle and keys in the group's chain
// are not an identity the heads map holds for its account. Like a key that
// contradicts a verified contact, it blocks every write that encrypts or
// wraps for the group (keyConflicts), while reads and removing the member
// stay possible: the chain itself verified, and failing the whole sync
// would leave no way out.
func (c *Client) noteUnlogged(m *coffer.Member, key [32]byte) {
	c.fresh.mu.Lock()
	defer c.fresh.mu.Unlock()
	c.noteUnloggedLocked(m, key)
}

func (c *Client) noteUnloggedLocked(m *coffer.Member, key [32]byte) {
	if c.fresh.unlogged == nil {
		c.fresh.unlogged = map[coffer.AccountID][32]byte{}
	}
	c.fresh.unlogged[m.ID] = key
}

// unloggedIDs lists the accounts noted unlogged: each sync proves them
// again (memberscope.go), since an account registered just before it was
// added may reach the witnessed map only after the sync that found it.
func (c *Client) unloggedIDs() []coffer.AccountID {
	c.fresh.mu.Lock()
	defer c.fresh.mu.Unlock()
	return slices.Collect(maps.Keys(c.fresh.unlogged))
}

// unloggedMembers returns the members of s recorded by noteUnlogged with
// the keys they still have in s.
func (c *Client) unloggedMembers(s *coffer.GroupState) []*coffer.Member {
	c.fresh.mu.Lock()
	defer c.fresh.mu.Unlock()
	var out []*coffer.Member
	for id, key := range c.fresh.unlogged {
		if m := s.Members[id]; m != nil && identityKey(m.Handle, m.SigningKey, m.EncryptionKey) == key {
			out = append(out, m)
		}
	}
	return out
}
