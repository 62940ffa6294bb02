package e2e_test

// Device-local state follows the account (issue 13, item 7): what one
// device verified reaches a device linked or recovered later, through a
// blob the server stores but cannot read, and a server that tampers with
// that blob or rolls a group back below a head the account verified is
// refused.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// TestDeviceStateFollowsAccount: alice's laptop verifies bob; her phone,
// linked afterwards, and her tablet, recovered from the words, see bob as
// verified without verifying him again, and can add him to a group.
func TestDeviceStateFollowsAccount(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	ctx := context.Background()
	laptop, rk := mustCreateAccount(t, srv.URL(), "alice", "laptop")
	bob, _ := mustCreateAccount(t, srv.URL(), "bob", "b")
	if _, err := laptop.Verify(ctx, "bob", bob.AccountSafetyNumber()); err != nil {
		t.Fatal(err)
	}
	g := mustGroup(t, laptop, "shared", nil)
	if _, err := laptop.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := laptop.SaveDeviceState(ctx); err != nil {
		t.Fatal(err)
	}
	// The server holds no plaintext of it: no handle of a contact in the
	// stored bytes.
	var ct []byte
	if err := mustDB(t, srv).QueryRow(ctx, `SELECT ciphertext FROM device_states WHERE account_id = $1`, laptop.AccountID()).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ct), "bob") || strings.Contains(string(ct), string(bob.AccountID().String())) {
		t.Fatal("the stored device state shows bob in the clear")
	}

	phone := mustLink(t, srv.URL(), laptop, "alice", "phone")
	rep, err := phone.DeviceStateLoaded()
	if err != nil || !rep.Found || len(rep.Verified) != 1 || rep.Verified[0] != "bob" || rep.Groups != 1 {
		t.Fatalf("the phone's device state load: %+v, %v", rep, err)
	}
	wantVerified := func(name string, c *clientlib.Client) {
		t.Helper()
		ct, err := c.Contact("bob")
		if err != nil || ct.State != clientlib.Verified || ct.AccountID != bob.AccountID() {
			t.Fatalf("%s's contact of bob: %+v, %v; want verified", name, ct, err)
		}
	}
	wantVerified("phone", phone)
	g2, err := phone.CreateGroup(ctx, "from the phone", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := phone.AddMember(ctx, g2, "bob", coffer.RoleReader); err != nil {
		t.Fatalf("the phone adds bob, whom the laptop verified: %v", err)
	}
	if _, err := bob.Sync(ctx, g2); err != nil {
		t.Fatalf("bob reads the phone's group: %v", err)
	}

	tablet := MustNewClient(t, srv.URL(), NewCanaryKeyStore())
	rk2, err := tablet.Recover(ctx, "alice", rk.Words(), "tablet")
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("recovery key", rk2[:])
	if rep, err := tablet.DeviceStateLoaded(); err != nil || !rep.Found {
		t.Fatalf("the tablet's device state load: %+v, %v", rep, err)
	}
	wantVerified("tablet", tablet)
	g3, err := tablet.CreateGroup(ctx, "from the tablet", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tablet.AddMember(ctx, g3, "bob", coffer.RoleReader); err != nil {
		t.Fatalf("the tablet adds bob: %v", err)
	}

	// A rotation re-encrypts the state under the new user key: a device
	// linked after it still reads it.
	generation := func() int64 {
		t.Helper()
		var gen int64
		if err := mustDB(t, srv).QueryRow(ctx, `SELECT ('x' || encode(substring(ciphertext from 1 for 8), 'hex'))::bit(64)::bigint FROM device_states WHERE account_id = $1`,
			laptop.AccountID()).Scan(&gen); err != nil {
			t.Fatal(err)
		}
		return gen
	}
	before := generation()
	if err := phone.RotateUserKey(ctx); err != nil {
		t.Fatal(err)
	}
	if after := generation(); after <= before {
		t.Fatalf("after a rotation the state is under user key generation %d, as before", after)
	}
	desk := mustLink(t, srv.URL(), phone, "alice", "desk")
	if _, err := desk.DeviceStateLoaded(); err != nil {
		t.Fatal(err)
	}
	wantVerified("desk", desk)

	// Without a stored state, a new account's device reports that it has
	// nothing to start from.
	carol, _ := mustCreateAccount(t, srv.URL(), "carol", "c1")
	carol2 := mustLink(t, srv.URL(), carol, "carol", "c2")
	if rep, err := carol2.DeviceStateLoaded(); err != nil || rep.Found {
		t.Fatalf("a device state load without a stored state: %+v, %v; want not found, no error", rep, err)
	}
}

// TestDeviceStateTampered: a server that serves another account's blob,
// an older version of the account's own, a blob relabeled with another
// version, or garbage, is refused with a security error, and the new
// device imports nothing.
func TestDeviceStateTampered(t *testing.T) {
	t.Parallel()
	srv, proxy := newProxiedServer(t)
	ctx := context.Background()
	url := proxy.URL
	laptop, _ := mustCreateAccount(t, url, "alice", "laptop")
	bob, _ := mustCreateAccount(t, url, "bob", "b")
	mallory, _ := mustCreateAccount(t, url, "mallory", "m")
	if _, err := laptop.Verify(ctx, "bob", bob.AccountSafetyNumber()); err != nil {
		t.Fatal(err)
	}
	// mallory's state pins bob too; moved to alice it must still be refused.
	if _, err := mallory.Verify(ctx, "bob", bob.AccountSafetyNumber()); err != nil {
		t.Fatal(err)
	}
	read := func(c *clientlib.Client) api.DeviceState {
		var st api.DeviceState
		if err := mustDB(t, srv).QueryRow(ctx, `SELECT version, ciphertext FROM device_states WHERE account_id = $1`, c.AccountID()).
			Scan(&st.Version, &st.Ciphertext); err != nil {
			t.Fatal(err)
		}
		return st
	}
	v1 := read(laptop)
	if _, err := laptop.Verify(ctx, "mallory", mallory.AccountSafetyNumber()); err != nil {
		t.Fatal(err)
	}
	v2 := read(laptop)
	if v2.Version != v1.Version+1 {
		t.Fatalf("versions %d then %d", v1.Version, v2.Version)
	}
	other := read(mallory)
	garbage := append([]byte(nil), v2.Ciphertext...)
	garbage[len(garbage)-1] ^= 1

	cases := map[string]api.DeviceState{
		"another account's state":              {Version: v2.Version, Ciphertext: other.Ciphertext},
		"another account's state, its version": other,
		"an older state relabeled as current":  {Version: v2.Version, Ciphertext: v1.Ciphertext},
		"a flipped bit":                        {Version: v2.Version, Ciphertext: garbage},
		"a truncated state":                    {Version: v2.Version, Ciphertext: v2.Ciphertext[:30]},
		"random bytes":                         {Version: v2.Version, Ciphertext: []byte(strings.Repeat("x", 200))},
		"content at version 0":                 {Version: 0, Ciphertext: v2.Ciphertext},
	}
	i := 0
	for name, served := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			body, _ := json.Marshal(served)
			proxy.set(func(path string, b []byte) []byte {
				if path == "/v1/account-state" {
					return body
				}
				return nil
			})
			defer proxy.set(nil)
			dev, err := linkLoadingState(t, url, laptop, "alice", fmt.Sprintf("device-%d", i))
			wantSecurityIn(t, name, err)
			if _, err2 := dev.DeviceStateLoaded(); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("DeviceStateLoaded: %v, want the link's error", err2)
			}
			var se *coffer.SecurityError
			if !errors.As(err, &se) || se.Check != "device-state" {
				t.Fatalf("%s: %v, want a device-state security error", name, err)
			}
			if _, err := dev.Contact("bob"); coffer.ErrorCode(err) != coffer.ENOTFOUND {
				t.Fatalf("%s: the new device imported bob (%v)", name, err)
			}
			// Nor does it write over the stored state it cannot read.
			if err := dev.SaveDeviceState(ctx); !coffer.IsSecurity(err) {
				t.Fatalf("%s: saving over it: %v", name, err)
			}
		})
	}

	// A device that read version N refuses an older version later, even
	// one that decrypts.
	fresh := mustLink(t, url, laptop, "alice", "fresh")
	if rep, err := fresh.DeviceStateLoaded(); err != nil || !rep.Found || rep.Version != v2.Version {
		t.Fatalf("the honest load: %+v, %v", rep, err)
	}
	body, _ := json.Marshal(v1)
	proxy.set(func(path string, b []byte) []byte {
		if path == "/v1/account-state" {
			return body
		}
		return nil
	})
	_, err := fresh.LoadDeviceState(ctx)
	proxy.set(nil)
	wantSecurityIn(t, "an older version", err)
}

// TestDeviceStateChangedContact: the account the server shows for a pinned
// contact is a new genesis under the same handle; the new device stores
// it as changed and says so, and does not add it to a group.
func TestDeviceStateChangedContact(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	ctx := context.Background()
	laptop, _ := mustCreateAccount(t, srv.URL(), "alice", "laptop")
	bob, _ := mustCreateAccount(t, srv.URL(), "bob", "b")
	if _, err := laptop.Verify(ctx, "bob", bob.AccountSafetyNumber()); err != nil {
		t.Fatal(err)
	}
	mustExec(t, mustDB(t, srv), `UPDATE accounts SET handle = 'bob-old' WHERE id = $1`, bob.AccountID())
	mustCreateAccount(t, srv.URL(), "bob", "impostor")
	phone, err := linkLoadingState(t, srv.URL(), laptop, "alice", "phone")
	rep, err2 := phone.DeviceStateLoaded()
	if err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("DeviceStateLoaded: %v, want the link's error %v", err2, err)
	}
	if !coffer.IsSecurity(err) || !strings.Contains(err.Error(), string(coffer.EKEYCHANGED)) || rep == nil || len(rep.Changed) != 1 {
		t.Fatalf("loading a pin the server's account does not continue: %+v, %v; want a changed-contact security error", rep, err)
	}
	ct, err := phone.Contact("bob")
	if err != nil || ct.State != clientlib.Changed || ct.AccountID != bob.AccountID() {
		t.Fatalf("the phone's contact of bob: %+v, %v; want changed, pinned to the verified account", ct, err)
	}
	g, err := phone.CreateGroup(ctx, "g", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := phone.AddMember(ctx, g, "bob", coffer.RoleReader); !coffer.IsSecurity(err) {
		t.Fatalf("adding the impostor: %v, want a security error", err)
	}
}

// TestDeviceStateRollback: the server is restored to a backup older than
// a group head alice's laptop verified (the log with it, so that the log
// is consistent for a device that never saw more), but serves the current
// device state; the device alice recovers afterwards refuses the group.
func TestDeviceStateRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := newRestorableServer(t)
	url := rs.srv.URL()
	laptop, rk := mustCreateAccount(t, url, "alice", "laptop")
	bob, _ := mustCreateAccount(t, url, "bob", "b")
	if _, err := laptop.Verify(ctx, "bob", bob.AccountSafetyNumber()); err != nil {
		t.Fatal(err)
	}
	g := mustGroup(t, laptop, "rolled back", nil)
	backup := rs.snapshot()
	if err := laptop.AddMember(ctx, g, "bob", coffer.RoleReader); err != nil { // seq 2
		t.Fatal(err)
	}
	if res, err := laptop.Sync(ctx, g); err != nil || res.State.Seq != 2 {
		t.Fatalf("laptop sync: %v", err)
	}
	if err := laptop.SaveDeviceState(ctx); err != nil {
		t.Fatal(err)
	}
	var (
		version uint64
		ct      []byte
	)
	if err := mustDB(t, rs.srv).QueryRow(ctx, `SELECT version, ciphertext FROM device_states WHERE account_id = $1`, laptop.AccountID()).Scan(&version, &ct); err != nil {
		t.Fatal(err)
	}
	rs.restore(backup)
	db := mustDB(t, rs.srv)
	mustExec(t, db, `DELETE FROM device_states WHERE account_id = $1`, laptop.AccountID())
	mustExec(t, db, `INSERT INTO device_states (account_id, version, ciphertext, updated_at) VALUES ($1, $2, $3, now())`, laptop.AccountID(), int64(version), ct)

	tablet := MustNewClient(t, url, NewCanaryKeyStore())
	rk2, err := tablet.Recover(ctx, "alice", rk.Words(), "tablet")
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("recovery key", rk2[:])
	if rep, err := tablet.DeviceStateLoaded(); err != nil || rep.Groups != 1 {
		t.Fatalf("the tablet's device state load: %+v, %v", rep, err)
	}
	_, err = tablet.Sync(ctx, g)
	var se *coffer.SecurityError
	if !errors.As(err, &se) || se.Check != "rollback" || !strings.Contains(err.Error(), g.String()) {
		t.Fatalf("the tablet syncs the rolled back group: %v; want a rollback security error", err)
	}
}

// linkLoadingState links a new device as mustLink does, and returns it
// with the error that ended the link: the device state load's.
func linkLoadingState(t *testing.T, url string, approver *clientlib.Client, handle, device string) (*clientlib.Client, error) {
	t.Helper()
	ctx := context.Background()
	c := MustNewClient(t, url, NewCanaryKeyStore())
	pl, err := c.StartDeviceLink(ctx, handle, device)
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("pairing code", []byte(pl.Code()))
	if _, err := approver.ApproveDeviceLink(ctx, pl.Code()); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = pl.Wait(wctx, 50*time.Millisecond)
	if !c.IsAccountV2() {
		t.Fatalf("the device is not linked: %v", err)
	}
	return c, err
}
