package clientlib

import (
	"errors"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/cofferhq/coffer"
)

// contactBook is the contact book read once for one decision about a
// group: the key-conflict check reads every verified contact, and the trust
// check of a rotation reads the contact of every member. For a group of
// 10,000 each was a full pass over the key store, so a removal read and
// parsed the whole book twice.
type contactBook struct {
	c        *Client
	list     []*Contact
	byHandle map[coffer.Handle]*Contact
}

func (c *Client) loadContactBook() (*contactBook, error) {
	// Keyed by the name each contact is stored under, which is what
	// loadContact reads.
	byHandle := map[coffer.Handle]*Contact{}
	list, err := c.readContacts(func(h coffer.Handle, ct *Contact) *Contact {
		ct = trustFields(ct)
		byHandle[h] = ct
		return ct
	})
	if err != nil {
		return nil, err
	}
	return &contactBook{c: c, list: list, byHandle: byHandle}, nil
}

// contact is loadContact through the book. A handle the index does not
// list is still read from the key store: a contact stored without its index
// entry (a write cut between the two) is as binding as any other.
func (b *contactBook) contact(h coffer.Handle) (*Contact, error) {
	if ct, ok := b.byHandle[h]; ok {
		return ct, nil
	}
	return b.c.loadContact(h)
}

// readContacts is Contacts, each contact passed through keep. The key
// store is read on this goroutine (a KeyStore need not be safe for
// concurrent use); the contacts are parsed on every core, since parsing
// checks each stored signing key, a curve point decoding that dominates
// reading thousands of contacts. They are read in batches, so that the
// stored bytes of the whole book are never held at once.
func (c *Client) readContacts(keep func(h coffer.Handle, ct *Contact) *Contact) ([]*Contact, error) {
	b, err := c.ks.Get(contactIndexKey)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	handles := strings.Fields(string(b))
	const batch = 256
	var (
		out   = make([]*Contact, 0, len(handles))
		raw   = make([][]byte, 0, batch)
		names = make([]coffer.Handle, 0, batch)
		cts   = make([]*Contact, batch)
		errs  = make([]error, batch)
	)
	for start := 0; start < len(handles); start += batch {
		raw, names = raw[:0], names[:0]
		for _, h := range handles[start:min(start+batch, len(handles))] {
			v, err := c.ks.Get(contactKey(coffer.Handle(h)))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			raw, names = append(raw, v), append(names, coffer.Handle(h))
		}
		workers := min(runtime.GOMAXPROCS(0), len(raw))
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(raw); i += workers {
					cts[i], errs[i] = parseContact(raw[i])
				}
			})
		}
		wg.Wait()
		for i := range raw {
			if errs[i] != nil {
				return nil, errs[i] // the first in index order, as a sequential read would
			}
			out = append(out, keep(names[i], cts[i]))
			cts[i], raw[i] = nil, nil
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Handle < out[j].Handle })
	return out, nil
}

// trustFields is the part of a contact that trust decisions read: a
// removal from a group of 10,000 holds the book while it checks every
// member, and the keys last seen from the server (and a suite v2 chain)
// would double it.
func trustFields(ct *Contact) *Contact {
	return &Contact{Handle: ct.Handle, AccountID: ct.AccountID, VerifiedIdentity: ct.VerifiedIdentity,
		State: ct.State, VerifiedGenesis: ct.VerifiedGenesis}
}
