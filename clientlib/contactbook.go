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
	list, err := c.readContacts()
	if err != nil {
		return nil, err
	}
	byHandle := make(map[coffer.Handle]*Contact, len(list))
	for _, ct := range list {
		byHandle[ct.Handle] = ct
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

// readContacts is Contacts. The key store is read on this goroutine (a
// KeyStore need not be safe for concurrent use); the contacts are parsed on
// every core, since parsing checks each stored signing key, a curve point
// decoding that dominates reading thousands of contacts.
func (c *Client) readContacts() ([]*Contact, error) {
	b, err := c.ks.Get(contactIndexKey)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var raw [][]byte
	for _, h := range strings.Fields(string(b)) {
		v, err := c.ks.Get(contactKey(coffer.Handle(h)))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		raw = append(raw, v)
	}
	out := make([]*Contact, len(raw))
	errs := make([]error, len(raw))
	workers := min(runtime.GOMAXPROCS(0), len(raw))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(raw); i += workers {
				out[i], errs[i] = parseContact(raw[i])
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err // the first in index order, as a sequential read would
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Handle < out[j].Handle })
	return out, nil
}
