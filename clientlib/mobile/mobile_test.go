package mobile_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/clientlib/mobile"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// memStore is a KeyStore as an app writes it: Get answers nil for an
// absent name.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Put(name string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = append([]byte(nil), value...)
	return nil
}

func (s *memStore) Get(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name], nil
}

func (s *memStore) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

func MustServer(tb testing.TB) *cofferdtest.Server {
	tb.Helper()
	return cofferdtest.Start(tb, nil)
}

// MustClient registers handle on srv through the facade.
func MustClient(tb testing.TB, srv *cofferdtest.Server, handle string) (*mobile.Client, *memStore) {
	tb.Helper()
	ks := newMemStore()
	c, err := mobile.NewClient(srv.URL(), ks)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Register(handle); err != nil {
		tb.Fatalf("register %s: %v", handle, err)
	}
	return c, ks
}

// MustVerify has a verify b's safety number, as read out by b.
func MustVerify(tb testing.TB, a, b *mobile.Client) {
	tb.Helper()
	sn, err := b.SafetyNumber()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := a.Verify(b.Handle(), sn); err != nil {
		tb.Fatalf("verify %s: %v", b.Handle(), err)
	}
}

func MustGroup(tb testing.TB, owner *mobile.Client, members ...*mobile.Client) string {
	tb.Helper()
	g, err := owner.CreateGroup("project x", &mobile.GroupOptions{Description: "plans"})
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range members {
		MustVerify(tb, owner, m)
		if err := owner.AddMember(g, m.Handle(), mobile.RoleWriter); err != nil {
			tb.Fatal(err)
		}
	}
	return g
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := mobile.ErrorCode(err); got != code {
		tb.Fatalf("got error %v (code %q), want code %q", err, got, code)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "coffer:"+code+": ") {
		tb.Fatalf("error text %q does not start with coffer:%s: ", err, code)
	}
}

// progress records OnProgress calls.
type progress struct {
	calls, done, total atomic.Int64
	failAfter          int64 // fail the call after this many bytes, if > 0
}

func (p *progress) OnProgress(done, total int64) error {
	p.calls.Add(1)
	p.done.Store(done)
	p.total.Store(total)
	if p.failAfter > 0 && done >= p.failAfter {
		return errors.New("the user left the screen")
	}
	return nil
}

func TestStory(t *testing.T) {
	srv := MustServer(t)
	alice, aliceKS := MustClient(t, srv, "alice")
	bob, _ := MustClient(t, srv, "bob")

	if !alice.HasIdentity() || alice.Handle() != "alice" || alice.AccountID() == "" {
		t.Fatalf("alice: identity %v, handle %q, account %q", alice.HasIdentity(), alice.Handle(), alice.AccountID())
	}
	qr, err := alice.QRPayload()
	if err != nil || !strings.HasPrefix(qr, "coffer:v1:alice:") {
		t.Fatalf("QR payload %q, %v", qr, err)
	}
	if _, err := bob.Verify("alice", "12345 12345 12345 12345 12345 12345 12345 12345 12345 12345 12345 12345"); err == nil {
		t.Fatal("a wrong safety number verified")
	} else {
		wantCode(t, err, mobile.CodeInvalid)
	}
	// Bob scans Alice's QR code; Alice types Bob's safety number.
	ct, err := bob.Verify("alice", qr)
	if err != nil || ct.State != mobile.StateVerified || ct.AccountID != alice.AccountID() {
		t.Fatalf("bob verifies alice: %+v, %v", ct, err)
	}
	g := MustGroup(t, alice, bob)

	contacts, err := alice.Contacts()
	if err != nil || contacts.Len() != 1 {
		t.Fatalf("alice's contacts: %v, %v", contacts, err)
	}
	if ct, _ := contacts.Get(0); ct.Handle != "bob" || ct.State != mobile.StateVerified || ct.VerifiedSafetyNumber != ct.SafetyNumber {
		t.Fatalf("alice's contact: %+v", ct)
	}
	_, err = contacts.Get(1)
	wantCode(t, err, mobile.CodeInvalid)

	groups, err := bob.Groups()
	if err != nil || groups.Len() != 1 {
		t.Fatalf("bob's groups: %v, %v", groups, err)
	}
	if gr, _ := groups.Get(0); gr.ID != g || gr.Name != "project x" || gr.Description != "plans" || gr.Role != mobile.RoleWriter {
		t.Fatalf("bob's group: %+v", gr)
	}
	members, err := bob.Members(g)
	if err != nil || members.Len() != 2 {
		t.Fatalf("members: %v, %v", members, err)
	}
	js, err := members.JSON()
	if err != nil || !bytes.Contains(js, []byte(`"handle":"alice"`)) || !bytes.Contains(js, []byte(`"trust":"verified"`)) {
		t.Fatalf("members JSON: %s, %v", js, err)
	}

	data := randomBytes(300 << 10)
	var putP progress
	res, err := alice.PutBytes(g, data, &mobile.Meta{Name: "report.bin", ContentType: "application/octet-stream", AppJSON: `{"pages":3}`}, &putP, mobile.NewCancel())
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != int64(len(data)) || res.Version != 1 || res.AuthorHandle != "alice" || res.AppJSON != `{"pages":3}` {
		t.Fatalf("put: %+v", res)
	}
	if putP.calls.Load() < 2 || putP.done.Load() != int64(len(data)) || putP.total.Load() != int64(len(data)) {
		t.Fatalf("put progress: %d calls, %d of %d", putP.calls.Load(), putP.done.Load(), putP.total.Load())
	}
	var getP progress
	got, err := bob.GetBytes(g, res.ID, &getP, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's get: %d bytes, %v", len(got), err)
	}
	if getP.done.Load() != int64(len(data)) || getP.total.Load() != int64(len(data)) {
		t.Fatalf("get progress: %d of %d", getP.done.Load(), getP.total.Load())
	}
	// Verified range reads: a seek into the middle, to the end, and cut at
	// the end.
	for _, rg := range [][2]int64{{100_000, 70_000}, {250_000, -1}, {300<<10 - 10, 1000}, {0, 0}} {
		got, err := bob.GetRange(g, res.ID, rg[0], rg[1], nil, nil)
		end := int64(len(data))
		if rg[1] >= 0 {
			end = min(end, rg[0]+rg[1])
		}
		if err != nil || !bytes.Equal(got, data[rg[0]:end]) {
			t.Fatalf("bob's range %d+%d: %d bytes, %v", rg[0], rg[1], len(got), err)
		}
	}
	_, err = bob.GetRange(g, res.ID, int64(len(data))+1, 10, nil, nil)
	wantCode(t, err, mobile.CodeInvalid)
	_, err = bob.GetRange(g, res.ID, 0, mobile.MaxGetBytes+1, nil, nil)
	wantCode(t, err, mobile.CodeTooLarge)

	// Files both ways.
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.bin"), filepath.Join(dir, "out.bin")
	if err := os.WriteFile(in, data[:100_000], 0o600); err != nil {
		t.Fatal(err)
	}
	fres, err := bob.PutFile(g, in, &mobile.Meta{Name: "in.bin"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.GetFile(g, fres.ID, out, nil, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, data[:100_000]) {
		t.Fatal("GetFile wrote different bytes")
	}
	_, err = bob.PutFile(g, filepath.Join(dir, "missing"), &mobile.Meta{Name: "x"}, nil, nil)
	wantCode(t, err, mobile.CodeIO)

	rep, err := alice.ReplaceBytes(g, res.ID, 1, []byte("v2"), &mobile.Meta{Name: "report.bin"}, nil, nil)
	if err != nil || rep.Version != 2 {
		t.Fatalf("replace: %+v, %v", rep, err)
	}
	_, err = alice.ReplaceBytes(g, res.ID, 1, []byte("v3"), &mobile.Meta{Name: "report.bin"}, nil, nil)
	wantCode(t, err, mobile.CodePrecondition)
	list, err := bob.List(g)
	if err != nil || list.Len() != 2 {
		t.Fatalf("list: %v, %v", list, err)
	}
	if h, err := bob.Head(g, res.ID); err != nil || h.Version != 2 || h.Size != 2 {
		t.Fatalf("head: %+v, %v", h, err)
	}

	if err := alice.RemoveMember(g, "bob"); err != nil {
		t.Fatal(err)
	}
	_, err = bob.GetBytes(g, res.ID, nil, nil)
	wantCode(t, err, mobile.CodeNotFound)
	if gr, err := alice.Group(g); err != nil || gr.Epoch != 2 {
		t.Fatalf("after removal: %+v, %v", gr, err)
	}
	if err := alice.Rotate(g); err != nil {
		t.Fatal(err)
	}

	// The server swaps in alice's epoch-2 wrap for epoch 3: it is a
	// genuine wrap for her, but bound to another epoch.
	tamperWrap(t, srv.DatabaseURL, g, alice.AccountID(), 2, 3)
	fresh, err := mobile.NewClient(srv.URL(), aliceKS) // no cached keys
	if err != nil {
		t.Fatal(err)
	}
	_, err = fresh.Group(g)
	wantCode(t, err, mobile.CodeSecurity)
	t.Logf("detected: %v", err)
}

// tamperWrap overwrites member's wrap of epoch to with their wrap of epoch
// from, as a malicious server would.
func tamperWrap(tb testing.TB, dbURL, group, member string, from, to int) {
	tb.Helper()
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close(ctx)
	tag, err := db.Exec(ctx, `UPDATE wrapped_keys w SET wrap = o.wrap FROM wrapped_keys o
		WHERE w.group_id = $1 AND o.group_id = $1 AND w.member_id = $2 AND o.member_id = $2
		AND o.epoch = $3 AND w.epoch = $4`, group, member, from, to)
	if err != nil || tag.RowsAffected() != 1 {
		tb.Fatalf("tamper: %v, %d rows", err, tag.RowsAffected())
	}
}

func TestCancel(t *testing.T) {
	srv := MustServer(t)
	alice, _ := MustClient(t, srv, "alice")
	g := MustGroup(t, alice)
	data := randomBytes(4 << 20)

	cancelled := mobile.NewCancel()
	cancelled.Cancel()
	if !cancelled.IsCanceled() {
		t.Fatal("IsCanceled is false after Cancel")
	}
	_, err := alice.PutBytes(g, data, &mobile.Meta{Name: "x"}, nil, cancelled)
	wantCode(t, err, mobile.CodeCanceled)

	// Cancel while the upload runs, from a thread other than the caller's,
	// the way a UI does.
	var zero mobile.Cancel // the zero value, as `new Cancel()` makes it
	p := &cancelOnProgress{c: &zero, after: 256 << 10}
	_, err = alice.PutBytes(g, data, &mobile.Meta{Name: "x"}, p, &zero)
	wantCode(t, err, mobile.CodeCanceled)
	if p.max.Load() >= int64(len(data)) {
		t.Fatalf("the upload ran to the end (%d bytes) after Cancel", p.max.Load())
	}

	// A failing Progress cancels too.
	_, err = alice.PutBytes(g, data, &mobile.Meta{Name: "x"}, &progress{failAfter: 128 << 10}, nil)
	wantCode(t, err, mobile.CodeCanceled)
	if !strings.Contains(err.Error(), "the user left the screen") {
		t.Fatalf("the cause is lost: %v", err)
	}

	res, err := alice.PutBytes(g, data, &mobile.Meta{Name: "x"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.GetBytes(g, res.ID, &progress{failAfter: 128 << 10}, nil)
	wantCode(t, err, mobile.CodeCanceled)

	// An interrupted GetFile leaves the destination alone.
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mobile.NewCancel()
	_, err = alice.GetFile(g, res.ID, out, &cancelOnProgress{c: c, after: 128 << 10}, c)
	wantCode(t, err, mobile.CodeCanceled)
	if b, _ := os.ReadFile(out); string(b) != "old" {
		t.Fatalf("an interrupted GetFile changed the file: %d bytes", len(b))
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

type cancelOnProgress struct {
	c     *mobile.Cancel
	after int64
	max   atomic.Int64
}

func (p *cancelOnProgress) OnProgress(done, total int64) error {
	p.max.Store(max(p.max.Load(), done))
	if done >= p.after {
		p.c.Cancel()
	}
	return nil
}

// One Client, used from many threads at once.
func TestConcurrentUse(t *testing.T) {
	srv := MustServer(t)
	alice, _ := MustClient(t, srv, "alice")
	bob, _ := MustClient(t, srv, "bob")
	g := MustGroup(t, alice, bob)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randomBytes(64<<10 + i)
			res, err := alice.PutBytes(g, data, &mobile.Meta{Name: "f"}, nil, nil)
			if err != nil {
				errs <- err
				return
			}
			got, err := bob.GetBytes(g, res.ID, nil, nil)
			if err != nil {
				errs <- err
			} else if !bytes.Equal(got, data) {
				errs <- errors.New("different bytes")
			}
			if _, err := alice.Members(g); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
