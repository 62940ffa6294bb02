package translog_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/translog"
)

func TestAccountLinkLeaf(t *testing.T) {
	a := accounttest.MustAccount(t, "https://coffer.example:443", "alice")
	sl := a.AddDevice(a.Device(0), accounttest.MustDevice(t))
	a.Push(sl)
	leaf := translog.AccountLinkLeaf(a.ID, 2, sl)
	l, err := translog.ParseLeaf(leaf)
	if err != nil || l.Kind != translog.KindAccountLink || l.Account != a.ID || l.Seq != 2 ||
		!bytes.Equal(l.Link.Body, sl.Body) || !bytes.Equal(l.Link.Signature, sl.Signature) || !bytes.Equal(l.Link.DeviceSignature, sl.DeviceSignature) {
		t.Fatalf("leaf does not parse back to its link: %v", err)
	}
	if !bytes.Equal(l.Marshal(), leaf) {
		t.Fatal("leaf does not re-encode to itself")
	}
	if _, err := l.ParseAccountLink(); err != nil {
		t.Fatal(err)
	}
	// Every truncation fails; so does a trailing byte.
	for n := len(leaf) - 1; n > len(leaf)-3400; n -= 97 {
		if _, err := translog.ParseLeaf(leaf[:n]); err == nil {
			t.Fatalf("a leaf cut to %d bytes parses", n)
		}
	}
	if _, err := translog.ParseLeaf(append(bytes.Clone(leaf), 0)); err == nil {
		t.Fatal("a leaf with a trailing byte parses")
	}
	// A leaf whose seq or account is not its link's is refused on use.
	for _, bad := range [][]byte{translog.AccountLinkLeaf(a.ID, 3, sl), translog.AccountLinkLeaf(coffer.NewAccountID(), 2, sl)} {
		l, err := translog.ParseLeaf(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.ParseAccountLink(); err == nil {
			t.Fatal("a leaf that misplaces its link is accepted")
		}
	}
}

// TestAccountChainMapEntry: each link sets the account-chain entry to its
// seq and hash, and only the next seq is accepted.
func TestAccountChainMapEntry(t *testing.T) {
	a := accounttest.MustAccount(t, "https://coffer.example:443", "alice")
	m := translog.NewMemoryMap()
	apply := func(i int64, leaf []byte) error {
		l, err := translog.ParseLeaf(leaf)
		if err != nil {
			t.Fatal(err)
		}
		return m.ApplyLeaf(i, leaf, l)
	}
	if err := apply(0, translog.AccountLinkLeaf(a.ID, 1, a.Links[0])); err != nil {
		t.Fatal(err)
	}
	sl := a.SetRecovery(a.Device(0))
	a.Push(sl)
	if err := apply(1, translog.AccountLinkLeaf(a.ID, 3, sl)); err == nil {
		t.Fatal("the map took link 3 after link 1")
	}
	if err := apply(1, translog.AccountLinkLeaf(a.ID, 2, sl)); err != nil {
		t.Fatal(err)
	}
	e, ok := m.Entry(translog.AccountChainKey(a.ID))
	if !ok || e.Counter != 2 || e.Hash != a.State.Head || e.LogIndex != 1 {
		t.Fatalf("entry %+v: want head 2 with the chain's head hash", e)
	}
	if _, ok := m.Entry(translog.AccountKey(a.ID)); ok {
		t.Fatal("a link set the account's identity entry")
	}
	b, err := translog.ParseMapEntry(e.Marshal())
	if err != nil || b != e {
		t.Fatalf("entry does not round-trip: %v", err)
	}
}
