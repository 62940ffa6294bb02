package groupkey_test

import (
	"crypto/hpke"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// wrapEachFixture is n recipients over three key pairs, keys pre-parsed
// for all but every fifth, so both paths of the sealing goroutines run.
func wrapEachFixture(t *testing.T, n int) ([]groupkey.Recipient, []hpke.PrivateKey) {
	t.Helper()
	var privs [3]hpke.PrivateKey
	var pubs [3][]byte
	var parsed [3]hpke.PublicKey
	for i := range privs {
		privs[i], pubs[i] = MustKeyPair(t)
		pk, err := coffer.KEM().NewPublicKey(pubs[i])
		if err != nil {
			t.Fatal(err)
		}
		parsed[i] = pk
	}
	rs := make([]groupkey.Recipient, n)
	ps := make([]hpke.PrivateKey, n)
	for i := range rs {
		rs[i] = groupkey.Recipient{Member: coffer.NewAccountID(), EncryptionKey: pubs[i%3]}
		if i%5 != 0 {
			rs[i].Key = parsed[i%3]
		}
		ps[i] = privs[i%3]
	}
	return rs, ps
}

// TestWrapEach: more recipients than the window; every wrap is emitted once,
// in input order, and opens for its own member only.
func TestWrapEach(t *testing.T) {
	rs, privs := wrapEachFixture(t, 700)
	k, g := groupkey.NewEpochKey(), coffer.NewGroupID()
	next := 0
	err := groupkey.WrapEach(rs, g, 9, k, func(i int, wrap []byte) error {
		if i != next {
			t.Fatalf("emitted %d, want %d", i, next)
		}
		next++
		if got, err := groupkey.Unwrap(privs[i], g, 9, rs[i].Member, wrap); err != nil || got != k {
			t.Errorf("wrap %d does not open for its member: %v", i, err)
		}
		if _, err := groupkey.Unwrap(privs[i], g, 9, rs[(i+3)%len(rs)].Member, wrap); err == nil {
			t.Errorf("wrap %d opens for another member", i)
		}
		return nil
	})
	if err != nil || next != len(rs) {
		t.Fatalf("WrapEach: %v after %d of %d", err, next, len(rs))
	}
	if err := groupkey.WrapEach(nil, g, 9, k, func(int, []byte) error { t.Fatal("emit for no recipients"); return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestWrapEachStops: a bad key stops the stream at that recipient, after
// every earlier wrap was emitted; an error from emit stops it at once and
// is returned as is. No sealing goroutine outlives the call.
func TestWrapEachStops(t *testing.T) {
	before := runtime.NumGoroutine()
	rs, _ := wrapEachFixture(t, 600)
	k, g := groupkey.NewEpochKey(), coffer.NewGroupID()

	bad := append([]groupkey.Recipient(nil), rs...)
	bad[450].Key, bad[450].EncryptionKey = nil, bad[450].EncryptionKey[:17]
	emitted := 0
	err := groupkey.WrapEach(bad, g, 2, k, func(i int, _ []byte) error { emitted++; return nil })
	if err == nil || !strings.Contains(err.Error(), bad[450].Member.String()) || emitted != 450 {
		t.Errorf("bad key at 450: emitted %d, error %v", emitted, err)
	}

	stop := errors.New("consumer went away")
	emitted = 0
	err = groupkey.WrapEach(rs, g, 2, k, func(i int, _ []byte) error {
		emitted++
		if i == 300 {
			return stop
		}
		return nil
	})
	if err != stop || emitted != 301 {
		t.Errorf("emit error at 300: emitted %d, error %v", emitted, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after WrapEach returned, %d before", n, before)
	}
}
