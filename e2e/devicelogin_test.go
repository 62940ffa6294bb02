package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// TestAccountDeviceLogin: the devices of a suite v2 account log in through
// clientlib with their own hybrid keys. After a revocation, what leaked
// from the account opens no session: neither the revoked device's seed,
// nor the current user key (from which the user signing key, the account's
// group identity, derives), nor both together.
func TestAccountDeviceLogin(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	ctx := context.Background()
	var (
		mu      sync.Mutex
		secrets = map[string][][]byte{}
	)
	newClient := func() *clientlib.Client {
		t.Helper()
		ks := NewCanaryKeyStore()
		c, err := clientlib.New(srv.URL(), ks, &clientlib.Options{SecretObserver: func(kind string, s []byte) {
			if len(s) >= minSecretLen {
				RecordSecret(kind, s)
			}
			mu.Lock()
			secrets[kind] = append(secrets[kind], bytes.Clone(s))
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		clientStores.Store(c, ks)
		return c
	}
	last := func(kind string) []byte {
		mu.Lock()
		defer mu.Unlock()
		s := secrets[kind]
		if len(s) == 0 {
			t.Fatalf("no %s observed", kind)
		}
		return s[len(s)-1]
	}

	laptop := newClient()
	rk, err := laptop.CreateAccount(ctx, "alice", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("recovery key", rk[:])
	laptopSeed := last("device-seed")
	phone := newClient()
	pl, err := phone.StartDeviceLink(ctx, "alice", "phone")
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("pairing code", []byte(pl.Code()))
	if _, err := laptop.ApproveDeviceLink(ctx, pl.Code()); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := pl.Wait(wctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*clientlib.Client{"laptop": laptop, "phone": phone} {
		if err := c.Login(ctx); err != nil {
			t.Fatalf("the %s logs in: %v", name, err)
		}
	}
	ds, err := laptop.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var laptopID coffer.DeviceID
	for _, d := range ds {
		if d.Name == "laptop" {
			laptopID = d.ID
		}
	}

	if err := phone.RevokeDevice(ctx, "laptop"); err != nil {
		t.Fatal(err)
	}
	if err := laptop.Login(ctx); coffer.ErrorCode(err) != coffer.EUNAUTHORIZED {
		t.Fatalf("the revoked laptop logs in: %v", err)
	}
	if err := phone.Login(ctx); err != nil {
		t.Fatalf("the phone logs in after the revocation: %v", err)
	}

	// What an attacker holds after the revocation: the laptop's seed, and
	// (leaked later) the current user key's seed.
	laptopKey, _, err := coffer.DeviceKeysFromSeed(laptopSeed)
	if err != nil {
		t.Fatal(err)
	}
	userSigning, err := coffer.UserSigningKeyFromSeed(last("user-key-seed"))
	if err != nil {
		t.Fatal(err)
	}
	origin := srv.URL()
	attempts := map[string]func(ch api.ChallengeResponse) api.LoginRequest{
		"the revoked laptop's key": func(ch api.ChallengeResponse) api.LoginRequest {
			return api.LoginRequest{AccountID: ch.AccountID, Origin: origin, Challenge: ch.Challenge, DeviceID: &laptopID,
				Signature: laptopKey.Sign(coffer.LabelDeviceLogin, coffer.DeviceLoginStatement(origin, ch.AccountID, laptopID, ch.Challenge))}
		},
		"the current user signing key": func(ch api.ChallengeResponse) api.LoginRequest {
			return api.LoginRequest{AccountID: ch.AccountID, Origin: origin, Challenge: ch.Challenge,
				Signature: coffer.Sign(userSigning.Ed25519PrivateKey(), coffer.LabelLogin, coffer.LoginStatement(origin, ch.AccountID, ch.Challenge))}
		},
	}
	for name, build := range attempts {
		var ch api.ChallengeResponse
		if status := postJSON(t, origin+"/v1/auth/challenge", api.ChallengeRequest{Handle: "alice"}, &ch); status != http.StatusOK {
			t.Fatalf("challenge: %d", status)
		}
		if status := postJSON(t, origin+"/v1/auth/login", build(ch), nil); status != http.StatusUnauthorized {
			t.Errorf("%s logs in: status %d, want 401", name, status)
		}
	}
}

// postJSON posts v and decodes a 200 answer into out; it returns the status.
func postJSON(t *testing.T, url string, v, out any) int {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}
