package clientlib

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cofferhq/coffer"
)

// A group member whose keys in the verified log differ from the keys this
// device verified for that handle (or from this device's own keys) is a
// substitution: in suite v1 an account's keys never change. Reading stays
// possible, since it exposes nothing to the impostor, but everything that
// encrypts for the group does not: new content and new metadata would be
// readable with the current epoch key, which the impostor holds, and a
// rotation or an add would wrap a fresh key where the impostor can read it.
// So Put, Replace and every commit that wraps keys stop, naming the member
// and the group, until the user verifies the member again or removes them.

// keyConflicts returns the members of s whose keys contradict a contact
// this device verified, or its own identity, sorted by handle. It reads the
// verified contacts rather than every member, so its cost follows the
// contact book, not the size of the group. A member is matched to a
// verified contact by handle and by account id, and any difference in
// handle, account id or either key is a conflict.
func (c *Client) keyConflicts(s *coffer.GroupState) ([]*coffer.Member, error) {
	book, err := c.loadContactBook()
	if err != nil {
		return nil, err
	}
	return c.keyConflictsIn(s, book)
}

// maxConsistentEntries bounds bookCache.consistent, which keeps the
// entries of members since changed or removed until the book changes.
const maxConsistentEntries = 1 << 20

// keyConflictsIn is keyConflicts against a contact book already read.
func (c *Client) keyConflictsIn(s *coffer.GroupState, book *contactBook) ([]*coffer.Member, error) {
	id, me, err := c.me()
	if err != nil {
		return nil, err
	}
	contradicts := func(m *coffer.Member, verifiedID coffer.AccountID, verified *coffer.PublicIdentity) bool {
		return m.ID != verifiedID || m.Handle != verified.Handle ||
			string(m.SigningKey) != string(verified.SigningKey) ||
			string(m.EncryptionKey) != string(verified.EncryptionKey)
	}
	found := map[coffer.AccountID]*coffer.Member{}
	// check looks the verified identity up both by handle and by account
	// id: the same account under another handle is as much a substitution
	// as other keys under the same handle.
	check := func(verifiedID coffer.AccountID, verified *coffer.PublicIdentity) {
		for _, m := range []*coffer.Member{s.MemberByHandle(verified.Handle), s.Members[verifiedID]} {
			if m != nil && contradicts(m, verifiedID, verified) {
				found[m.ID] = m
			}
		}
	}
	self := id.Public()
	check(me, &self)
	// Every other verified contact, from the side of the members: the
	// contacts verified under a member's handle or account id. A member
	// entry found consistent with this book is not compared again (entries
	// are never changed in place): a removal from a group of 100,000 whose
	// members are all verified contacts compared 100,000 keys per commit.
	ix := book.verifiedIndex(self.Handle)
	c.books.mu.Lock()
	if c.books.consistentIn != book || len(c.books.consistent) >= maxConsistentEntries {
		c.books.consistentIn, c.books.consistent = book, map[*coffer.Member]bool{}
	}
	for _, m := range s.Members {
		if c.books.consistent[m] {
			continue
		}
		ok := true
		for _, cts := range [][]*Contact{ix.byHandle[m.Handle], ix.byID[m.ID]} {
			for _, ct := range cts {
				if contradicts(m, ct.AccountID, ct.VerifiedIdentity) {
					found[m.ID], ok = m, false
				}
			}
		}
		if ok {
			c.books.consistent[m] = true
		}
	}
	c.books.mu.Unlock()
	// Members whose keys are not the identity the heads map holds for
	// their account (identityproof.go).
	for _, m := range c.unloggedMembers(s) {
		found[m.ID] = m
	}
	out := make([]*coffer.Member, 0, len(found))
	for _, m := range found {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Handle < out[j].Handle })
	return out, nil
}

// checkKeyConflicts refuses to encrypt or wrap for group s while it holds a
// member whose keys contradict a verified contact: a security error that
// names the group and every such member, with code key_changed inside.
func (c *Client) checkKeyConflicts(s *coffer.GroupState) error {
	book, err := c.loadContactBook()
	if err != nil {
		return err
	}
	return c.checkKeyConflictsIn(s, book)
}

// checkKeyConflictsIn is checkKeyConflicts against a contact book already
// read.
func (c *Client) checkKeyConflictsIn(s *coffer.GroupState, book *contactBook) error {
	conflicts, err := c.keyConflictsIn(s, book)
	if err != nil || len(conflicts) == 0 {
		return err
	}
	names := make([]string, len(conflicts))
	for i, m := range conflicts {
		names[i] = fmt.Sprintf("%s (account %s)", m.Handle, m.ID)
	}
	return coffer.Security("contact-key", &coffer.Error{Code: coffer.EKEYCHANGED, Message: fmt.Sprintf(
		"group %s holds %s with keys that differ from the keys you verified: writes and key changes in this group are blocked; "+
			"compare safety numbers again, or remove the member", s.Group, strings.Join(names, ", "))})
}
