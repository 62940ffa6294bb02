package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// readCountingKeyStore counts the reads of each name.
type readCountingKeyStore struct {
	*CanaryKeyStore
	mu    sync.Mutex
	reads map[string]int
}

func (k *readCountingKeyStore) Get(name string) ([]byte, error) {
	k.mu.Lock()
	k.reads[name]++
	k.mu.Unlock()
	return k.CanaryKeyStore.Get(name)
}

func (k *readCountingKeyStore) take() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	r := k.reads
	k.reads = map[string]int{}
	return r
}

// TestRemovalReadsKeyStoreOnce: a removal reads each contact and the
// group's stored state as few times as its checks need. For a group of
// 10,000 members the key store is the client's largest cost: each extra
// pass over the contact book parsed 10,000 identities, and each extra read
// of the state decoded 14 MB. The removal's result is checked as well, and
// a fresh client on the same key store (which must load the stored
// snapshot and tail) sees it.
func TestRemovalReadsKeyStoreOnce(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	ks := &readCountingKeyStore{CanaryKeyStore: NewCanaryKeyStore(), reads: map[string]int{}}
	alice, err := clientlib.New(srv.URL(), ks, &clientlib.Options{SecretObserver: func(kind string, secret []byte) {
		if len(secret) >= minSecretLen {
			RecordSecret(kind, secret)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Register(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	g := mustGroup(t, alice, "many", nil)
	var members []*clientlib.Client
	for i := range 5 {
		m := MustClient(t, srv, fmt.Sprintf("member%d", i))
		mustAdd(t, alice, m, g, coffer.RoleReader)
		members = append(members, m)
	}
	before := mustEpoch(t, alice, g)
	ks.take()
	if err := alice.RemoveMember(ctx, g, "member0"); err != nil {
		t.Fatal(err)
	}
	reads := ks.take()
	for name, n := range reads {
		if strings.HasPrefix(name, "contacts/") && n > 1 {
			t.Errorf("the removal read %s %d times, want at most once", name, n)
		}
	}
	// The contact book read for the sync before is used again while its
	// stamp stands (clientlib/contactbook.go): the removal reads the stamp,
	// and the contacts only if a write changed it.
	if reads["contact-book-stamp"] == 0 {
		t.Error("the removal did not read the contact book's stamp: it cannot know its book is current")
	}
	// The client holds the state it verified last in memory: the removal
	// reads only the small tail record, which holds the stored head, to
	// check that memory and storage agree and to append its commit. The
	// snapshot (14 MB at 10,000 members) is not read at all.
	if n := reads["group/"+g.String()+"/state"] + reads["group/"+g.String()+"/state.1"]; n != 0 {
		t.Errorf("the removal read the group's stored snapshot %d times, want none", n)
	}
	if n := reads["group/"+g.String()+"/tail"]; n == 0 || n > 3 {
		t.Errorf("the removal read the group's stored tail %d times, want 1 to 3", n)
	}

	if e := mustEpoch(t, alice, g); e != before+1 {
		t.Fatalf("after the removal alice is at epoch %d, want %d", e, before+1)
	}
	fresh, err := clientlib.New(srv.URL(), ks, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := mustEpoch(t, fresh, g); e != before+1 {
		t.Fatalf("a fresh client on alice's key store is at epoch %d, want %d", e, before+1)
	}
	if reads := ks.take(); reads["group/"+g.String()+"/state"]+reads["group/"+g.String()+"/state.1"] == 0 {
		t.Error("a fresh client did not read the stored snapshot: it cannot have verified the stored state")
	}
	for i, m := range members {
		e, err := m.CurrentEpoch(ctx, g)
		switch {
		case i == 0 && err == nil:
			t.Fatalf("the removed member still reads the group, at epoch %d", e)
		case i > 0 && (err != nil || e != before+1):
			t.Fatalf("member%d: epoch %d, %v; want %d", i, e, err, before+1)
		}
	}
}
