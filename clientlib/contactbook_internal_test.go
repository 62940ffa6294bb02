package clientlib

import (
	"fmt"
	"testing"

	"github.com/cofferhq/coffer"
)

// TestContactBook: the book a removal reads once lists the indexed
// contacts with what trust decisions need (and not the keys last seen,
// which would double it), and still finds a contact stored without its
// index entry.
func TestContactBook(t *testing.T) {
	c := &Client{ks: NewMemoryKeyStore()}
	ids := map[string]coffer.AccountID{}
	for i, h := range []string{"carol", "bob", "dave"} {
		id, err := GenerateIdentity(coffer.Handle(h))
		if err != nil {
			t.Fatal(err)
		}
		pub := id.Public()
		ct := &Contact{Handle: pub.Handle, AccountID: coffer.NewAccountID(), Seen: pub, State: Unverified}
		if i < 2 {
			ct.VerifiedIdentity, ct.State = &pub, Verified
		}
		ids[h] = ct.AccountID
		if err := c.ks.Put(contactKey(ct.Handle), ct.marshal()); err != nil {
			t.Fatal(err)
		}
	}
	// dave is stored but not indexed.
	if err := c.ks.Put(contactIndexKey, []byte("carol bob")); err != nil {
		t.Fatal(err)
	}
	book, err := c.loadContactBook()
	if err != nil {
		t.Fatal(err)
	}
	if len(book.list) != 2 || book.list[0].Handle != "bob" || book.list[1].Handle != "carol" {
		t.Fatalf("book lists %v, want bob and carol in order", handles(book.list))
	}
	for _, ct := range book.list {
		full, err := c.loadContact(ct.Handle)
		if err != nil {
			t.Fatal(err)
		}
		if ct.AccountID != ids[string(ct.Handle)] || ct.State != Verified || ct.VerifiedIdentity == nil ||
			string(ct.VerifiedIdentity.EncryptionKey) != string(full.VerifiedIdentity.EncryptionKey) ||
			string(ct.VerifiedIdentity.SigningKey) != string(full.VerifiedIdentity.SigningKey) {
			t.Fatalf("book entry of %s differs from the stored contact", ct.Handle)
		}
		if ct.Seen.EncryptionKey != nil || ct.Chain != nil {
			t.Fatalf("book entry of %s holds the keys last seen or a chain", ct.Handle)
		}
	}
	dave, err := book.contact("dave")
	if err != nil || dave == nil || dave.AccountID != ids["dave"] {
		t.Fatalf("book.contact(dave), stored without an index entry: %+v, %v", dave, err)
	}
	if x, err := book.contact("erin"); x != nil || err != nil {
		t.Fatalf("book.contact(erin), never stored: %+v, %v", x, err)
	}

	// The book answers for a handle exactly what loadContact does: by the
	// name the contact is stored under, even when the stored contact names
	// another handle.
	frank, err := GenerateIdentity("frank")
	if err != nil {
		t.Fatal(err)
	}
	fp := frank.Public()
	odd := &Contact{Handle: fp.Handle, AccountID: coffer.NewAccountID(), Seen: fp, VerifiedIdentity: &fp, State: Verified}
	if err := c.ks.Put(contactKey("erin"), odd.marshal()); err != nil {
		t.Fatal(err)
	}
	if err := c.ks.Put(contactIndexKey, []byte("carol bob erin")); err != nil {
		t.Fatal(err)
	}
	// Written behind the client's back: the stamp changes as it does
	// around every write of the client's own (the book is read once per
	// stamp).
	if err := c.changeContactStamp(); err != nil {
		t.Fatal(err)
	}
	if book, err = c.loadContactBook(); err != nil {
		t.Fatal(err)
	}
	for _, h := range []coffer.Handle{"erin", "frank", "bob"} {
		got, err := book.contact(h)
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.loadContact(h)
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (want == nil) || got != nil && got.AccountID != want.AccountID {
			t.Fatalf("book.contact(%s) = %+v, loadContact = %+v", h, got, want)
		}
	}

	// A corrupt stored contact fails the book, as it fails Contacts.
	if err := c.ks.Put(contactKey("bob"), []byte{9}); err != nil {
		t.Fatal(err)
	}
	if err := c.changeContactStamp(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.loadContactBook(); err == nil {
		t.Fatal("a corrupt contact was read into the book")
	}
}

func handles(cts []*Contact) []string {
	var out []string
	for _, ct := range cts {
		out = append(out, fmt.Sprint(ct.Handle))
	}
	return out
}

// TestContactBookStamp: the contact book is read again exactly when its
// stamp changed: not while it stands, and after a contact or the index is
// written, by this Client or by another on the same key store.
func TestContactBookStamp(t *testing.T) {
	ks := newCountingKeyStore()
	a, b := &Client{ks: ks}, &Client{ks: ks}
	bob, err := GenerateIdentity("bob")
	if err != nil {
		t.Fatal(err)
	}
	ct := &Contact{Handle: "bob", AccountID: coffer.NewAccountID(), Seen: bob.Public(), State: Unverified}
	if err := a.putContact(ct); err != nil {
		t.Fatal(err)
	}
	if err := a.indexContact("bob"); err != nil {
		t.Fatal(err)
	}
	reads := func() int {
		ks.mu.Lock()
		defer ks.mu.Unlock()
		return ks.gets[contactKey("bob")]
	}
	book := func(c *Client) *Contact {
		t.Helper()
		bk, err := c.loadContactBook()
		if err != nil {
			t.Fatal(err)
		}
		got, err := bk.contact("bob")
		if err != nil || got == nil {
			t.Fatalf("bob: %v, %v", got, err)
		}
		return got
	}
	if got := book(b); got.State != Unverified {
		t.Fatalf("bob is %v", got.State)
	}
	n := reads()
	if got := book(b); got.State != Unverified || reads() != n {
		t.Fatalf("an unchanged stamp read the book again (%d reads, then %d)", n, reads())
	}
	vi := bob.Public()
	ct.VerifiedIdentity, ct.State = &vi, Verified
	if err := a.putContact(ct); err != nil {
		t.Fatal(err)
	}
	if got := book(b); got.State != Verified || got.VerifiedIdentity == nil {
		t.Fatalf("after a verified bob, b's book holds %v", got.State)
	}
	// Contacts written before stamps existed (no stamp stored): the book
	// is read again.
	ks.Delete(contactStampKey)
	ct.State = Changed
	ks.MemoryKeyStore.Put(contactKey("bob"), ct.marshal())
	if got := book(b); got.State != Changed {
		t.Fatalf("without a stamp, b reads bob as %v", got.State)
	}
}

func TestHasField(t *testing.T) {
	for _, c := range []struct {
		list, w string
		want    bool
	}{
		{"carol bob", "bob", true},
		{"bob carol", "bob", true},
		{"bob", "bob", true},
		{"carol bob", "bo", false},
		{"bobby carol", "bob", false},
		{"abob bob", "bob", true},
		{"abob bobb", "bob", false},
		{"carol  bob\n", "bob", true},
		{"", "bob", false},
		{"carol bob", "", false},
	} {
		if got := hasField([]byte(c.list), c.w); got != c.want {
			t.Errorf("hasField(%q, %q) = %v, want %v", c.list, c.w, got, c.want)
		}
	}
}

// TestKeyConflictsRemembered: keyConflictsIn remembers member entries it
// found consistent with a book, and only with that book. A member whose
// keys contradict a verified contact (by handle, or by account id under
// another handle) is found every time, and a later book that verifies
// other keys for a remembered member finds it.
func TestKeyConflictsRemembered(t *testing.T) {
	me, err := GenerateIdentity("myself")
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{ks: NewMemoryKeyStore(), id: me, account: coffer.NewAccountID()}
	ident := func(h string) coffer.PublicIdentity {
		id, err := GenerateIdentity(coffer.Handle(h))
		if err != nil {
			t.Fatal(err)
		}
		return id.Public()
	}
	bob, carol, dave, impostor := ident("bob"), ident("carol"), ident("dave"), ident("carol")
	bobID, carolID, daveID := coffer.NewAccountID(), coffer.NewAccountID(), coffer.NewAccountID()
	member := func(id coffer.AccountID, p coffer.PublicIdentity) *coffer.Member {
		return &coffer.Member{ID: id, Handle: p.Handle, SigningKey: p.SigningKey, EncryptionKey: p.EncryptionKey}
	}
	s := &coffer.GroupState{Members: map[coffer.AccountID]*coffer.Member{
		bobID:   member(bobID, bob),
		carolID: member(carolID, impostor),        // other keys than the verified carol
		daveID:  {ID: daveID, Handle: "dave-too"}, // dave's account under another handle
	}}
	s.Members[daveID].SigningKey, s.Members[daveID].EncryptionKey = dave.SigningKey, dave.EncryptionKey
	book := func(cts ...*Contact) *contactBook {
		b := &contactBook{c: c, byHandle: map[coffer.Handle]*Contact{}}
		for _, ct := range cts {
			b.list = append(b.list, ct)
			b.byHandle[ct.Handle] = ct
		}
		return b
	}
	verified := func(id coffer.AccountID, p coffer.PublicIdentity) *Contact {
		return &Contact{Handle: p.Handle, AccountID: id, VerifiedIdentity: &p, State: Verified}
	}
	first := book(verified(bobID, bob), verified(carolID, carol), verified(daveID, dave))
	for range 2 { // the second pass runs on remembered entries
		got, err := c.keyConflictsIn(s, first)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Handle != "carol" || got[1].Handle != "dave-too" {
			t.Fatalf("conflicts %v, want carol and dave-too", got)
		}
	}
	if !c.books.consistent[s.Members[bobID]] || c.books.consistent[s.Members[carolID]] {
		t.Fatal("bob's entry is not remembered as consistent, or carol's is")
	}
	// A new book that verified other keys for bob finds bob.
	second := book(verified(bobID, ident("bob")))
	got, err := c.keyConflictsIn(s, second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Handle != "bob" {
		t.Fatalf("under a new book: conflicts %v, want bob", got)
	}
}
