package clientlib

import (
	"crypto/rand"
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

	verifiedOnce sync.Once
	verified     verifiedContacts
}

// verifiedContacts indexes a book's verified contacts by the handle and
// the account id of the identity they verified.
type verifiedContacts struct {
	byHandle map[coffer.Handle][]*Contact
	byID     map[coffer.AccountID][]*Contact
}

// verifiedIndex returns the book's verified contacts, but for the one
// stored under self (this account's own handle), indexed; it is built
// once per book.
func (b *contactBook) verifiedIndex(self coffer.Handle) verifiedContacts {
	b.verifiedOnce.Do(func() {
		b.verified = verifiedContacts{byHandle: map[coffer.Handle][]*Contact{}, byID: map[coffer.AccountID][]*Contact{}}
		for _, ct := range b.list {
			if ct.VerifiedIdentity != nil && ct.Handle != self {
				b.verified.byHandle[ct.VerifiedIdentity.Handle] = append(b.verified.byHandle[ct.VerifiedIdentity.Handle], ct)
				b.verified.byID[ct.AccountID] = append(b.verified.byID[ct.AccountID], ct)
			}
		}
	})
	return b.verified
}

// The contact book is read and parsed once per stamp: a removal from a
// group of 10,000 read and parsed 10,000 contacts for its trust checks,
// about a tenth of its time outside sealing. Every write of a contact or of
// the index changes the stamp (a random value under contactStampKey) before
// and after it, so a book read under a stamp that still stands holds every
// contact as stored, whichever Client sharing the key store wrote it. The
// write before covers a reader that reads the book between the contact's
// write and the stamp's.
const contactStampKey = "contact-book-stamp"

// bookCache is the contact book last read, with the stamp it was read
// under. The book is shared: callers only read it.
type bookCache struct {
	mu    sync.Mutex
	stamp string
	book  *contactBook
	// consistent holds member entries found to contradict no contact of
	// the book consistentIn (keyConflictsIn).
	consistentIn *contactBook
	consistent   map[*coffer.Member]bool
}

// putContact stores ct, changing the stamp around the write.
func (c *Client) putContact(ct *Contact) error {
	if err := c.changeContactStamp(); err != nil {
		return err
	}
	if err := c.ks.Put(contactKey(ct.Handle), ct.marshal()); err != nil {
		return err
	}
	return c.changeContactStamp()
}

func (c *Client) changeContactStamp() error {
	return c.ks.Put(contactStampKey, []byte(rand.Text()))
}

// loadContactBook returns the contact book, read again only when the
// stamp changed since the last read.
func (c *Client) loadContactBook() (*contactBook, error) {
	stamp, err := c.ks.Get(contactStampKey)
	if errors.Is(err, ErrNotFound) {
		// Contacts written before stamps existed: start one, so that the
		// next read can use the book read now.
		if err = c.changeContactStamp(); err == nil {
			stamp, err = c.ks.Get(contactStampKey)
		}
	}
	if err != nil {
		return nil, err
	}
	c.books.mu.Lock()
	if c.books.book != nil && c.books.stamp == string(stamp) {
		b := c.books.book
		c.books.mu.Unlock()
		return b, nil
	}
	c.books.mu.Unlock()
	book, err := c.readContactBook()
	if err != nil {
		return nil, err
	}
	c.books.mu.Lock()
	c.books.stamp, c.books.book = string(stamp), book
	c.books.mu.Unlock()
	return book, nil
}

func (c *Client) readContactBook() (*contactBook, error) {
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
