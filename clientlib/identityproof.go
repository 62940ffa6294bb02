package clientlib

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"

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
// ones the verified chain recorded when the member was added. A server that
// keeps an identity out of the log, or shows one client other keys than the
// witnesses saw, is caught here. Proofs are cached per account: suite v1
// has no key change, so one proof per account and map lasts.

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

// proveMembers proves the identity of every member of s that this client
// has not proven yet in the heads map of w.
func (c *Client) proveMembers(ctx context.Context, w *witnessed, s *coffer.GroupState) error {
	type todo struct {
		m   *coffer.Member
		key [32]byte
	}
	var pending []todo
	c.fresh.mu.Lock()
	// In a stable order, so the requests are the same every time.
	for _, m := range s.SortedMembers() {
		k := identityKey(m.Handle, m.SigningKey, m.EncryptionKey)
		if p, ok := c.fresh.provenIDs[m.ID]; ok && p == k {
			continue
		}
		pending = append(pending, todo{m, k})
	}
	c.fresh.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	// The identities the server serves, fetched unless this client checked
	// them before (Lookup, an earlier sync).
	records := make([][32]byte, len(pending))
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(maxIdentityFetches)
	for i, p := range pending {
		c.fresh.mu.Lock()
		k, ok := c.fresh.idents[p.m.ID]
		c.fresh.mu.Unlock()
		if ok {
			if k.key != p.key {
				return coffer.Security("identity", fmt.Errorf("the server served %s (%s) with other keys than the group's log records for them", p.m.Handle, p.m.ID))
			}
			records[i] = k.record
			continue
		}
		eg.Go(func() error {
			var a api.Account
			if err := c.call(gctx, http.MethodGet, "/v1/accounts/"+p.m.ID.String(), true, nil, &a); err != nil {
				if coffer.ErrorCode(err) == coffer.ENOTFOUND {
					return coffer.Security("identity", fmt.Errorf("the server has no account %s, a member (%s) in the group's log", p.m.ID, p.m.Handle))
				}
				return err
			}
			acct, err := checkAccount(a, &p.m.Handle, &p.m.ID)
			if err != nil {
				return err
			}
			pub := acct.Identity
			if !bytes.Equal(pub.SigningKey, p.m.SigningKey) || !bytes.Equal(pub.EncryptionKey, p.m.EncryptionKey) {
				return coffer.Security("identity", fmt.Errorf("the server serves keys for %s (%s) that differ from the keys the group's log records", p.m.Handle, p.m.ID))
			}
			c.noteIdentity(a, pub)
			records[i] = translog.RecordHash(translog.IdentityLeaf(a.ID, a.Identity, a.SelfSignature))
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	// Their entries in the witnessed map, in batches.
	for start := 0; start < len(pending); start += logBatch {
		batch := pending[start:min(start+logBatch, len(pending))]
		keys := make([]translog.MapKey, len(batch))
		for i, p := range batch {
			keys[i] = translog.AccountKey(p.m.ID)
		}
		entries, found, err := c.mapEntries(ctx, w.cp, keys)
		if err != nil {
			return err
		}
		for i, p := range batch {
			if !found[i] {
				return coffer.Security("identity", fmt.Errorf("the heads map of the cosigned checkpoint [%s] has no identity for %s (%s), a member of group %s",
					viewOf(w.cp), p.m.Handle, p.m.ID, s.Group))
			}
			if entries[i].Hash != records[start+i] {
				return coffer.Security("identity", fmt.Errorf("the identity the server serves for %s (%s) is not the one the witnesses vouch for (record %s, log leaf %d, in [%s])",
					p.m.Handle, p.m.ID, b64(entries[i].Hash[:]), entries[i].LogIndex, viewOf(w.cp)))
			}
		}
	}
	c.fresh.mu.Lock()
	if c.fresh.provenIDs == nil {
		c.fresh.provenIDs = map[coffer.AccountID][32]byte{}
	}
	for _, p := range pending {
		c.fresh.provenIDs[p.m.ID] = p.key
	}
	c.fresh.mu.Unlock()
	return nil
}
