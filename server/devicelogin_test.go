package server_test

import (
	"crypto/ed25519"
	"net/http"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
)

// TestDeviceLogin: a suite v2 account logs in only with the hybrid key of a
// device its chain lists now. Every other signature is refused, however
// valid: the user signing key (which a revoked device kept until the
// rotation, and which a copy of its key store still holds), a revoked
// device's key, a signature with one good half, a statement for another
// device, origin, account, label or suite.
func TestDeviceLogin(t *testing.T) {
	ts := MustServer(t)
	a, _ := MustRegisterChain(t, ts, "alice")
	laptop := a.Device(0)
	phone := accounttest.MustDevice(t)
	mustAppend(t, ts, a, a.AddDevice(laptop, phone))
	old := accounttest.MustDevice(t)
	mustAppend(t, ts, a, a.AddDevice(laptop, old))
	mustAppend(t, ts, a, a.Revoke(laptop, old))
	bob, _ := MustRegisterChain(t, ts, "bob")
	victor, _, _ := MustAccount(t, ts, "victor")

	challenge := func(t *testing.T, handle coffer.Handle) api.ChallengeResponse {
		t.Helper()
		r := ts.Do(t, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Handle: handle})
		r.Check(t, http.StatusOK, "")
		var ch api.ChallengeResponse
		r.Decode(t, &ch)
		return ch
	}
	req := func(ch api.ChallengeResponse, d *accounttest.Device) api.LoginRequest {
		return api.LoginRequest{AccountID: ch.AccountID, Origin: ts.URL, Challenge: ch.Challenge,
			DeviceID: &d.ID, Signature: d.SignLogin(ts.URL, ch.AccountID, ch.Challenge)}
	}
	post := func(t *testing.T, lr api.LoginRequest) *response {
		t.Helper()
		return ts.Do(t, http.MethodPost, "/v1/auth/login", "", lr)
	}
	flip := func(sig []byte, i int) []byte {
		out := append([]byte(nil), sig...)
		out[i] ^= 1
		return out
	}

	for _, d := range []*accounttest.Device{laptop, phone} {
		post(t, req(challenge(t, "alice"), d)).Check(t, http.StatusOK, "")
	}

	tests := []struct {
		name string
		req  func(ch api.ChallengeResponse) api.LoginRequest
	}{
		{"revoked device, valid signature", func(ch api.ChallengeResponse) api.LoginRequest { return req(ch, old) }},
		{"user signing key, v1 statement", func(ch api.ChallengeResponse) api.LoginRequest {
			return api.LoginRequest{AccountID: ch.AccountID, Origin: ts.URL, Challenge: ch.Challenge,
				Signature: coffer.Sign(a.SigningKey(), coffer.LabelLogin, coffer.LoginStatement(ts.URL, ch.AccountID, ch.Challenge))}
		}},
		{"user signing key, v1 statement, with a device id", func(ch api.ChallengeResponse) api.LoginRequest {
			return api.LoginRequest{AccountID: ch.AccountID, Origin: ts.URL, Challenge: ch.Challenge, DeviceID: &laptop.ID,
				Signature: coffer.Sign(a.SigningKey(), coffer.LabelLogin, coffer.LoginStatement(ts.URL, ch.AccountID, ch.Challenge))}
		}},
		{"user signing key over the device statement", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = ed25519.Sign(a.SigningKey(), coffer.SignedMessage(coffer.LabelDeviceLogin, coffer.DeviceLoginStatement(ts.URL, ch.AccountID, laptop.ID, ch.Challenge)))
			return r
		}},
		{"no device id, device signature", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.DeviceID = nil
			return r
		}},
		{"Ed25519 half bad", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = flip(r.Signature, 3)
			return r
		}},
		{"ML-DSA half bad", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = flip(r.Signature, ed25519.SignatureSize+100)
			return r
		}},
		{"ML-DSA half of another challenge", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			other := laptop.SignLogin(ts.URL, ch.AccountID, make([]byte, coffer.ChallengeSize))
			copy(r.Signature[ed25519.SignatureSize:], other[ed25519.SignatureSize:])
			return r
		}},
		{"Ed25519 half of another challenge", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			other := laptop.SignLogin(ts.URL, ch.AccountID, make([]byte, coffer.ChallengeSize))
			copy(r.Signature[:ed25519.SignatureSize], other[:ed25519.SignatureSize])
			return r
		}},
		{"Ed25519 half alone", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = r.Signature[:ed25519.SignatureSize]
			return r
		}},
		{"signed by the phone, sent as the laptop", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, phone)
			r.DeviceID = &laptop.ID
			return r
		}},
		{"the phone signs the laptop's statement", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = phone.Key.Sign(coffer.LabelDeviceLogin, coffer.DeviceLoginStatement(ts.URL, ch.AccountID, laptop.ID, ch.Challenge))
			return r
		}},
		{"the laptop signs a statement naming the phone", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = laptop.Key.Sign(coffer.LabelDeviceLogin, coffer.DeviceLoginStatement(ts.URL, ch.AccountID, phone.ID, ch.Challenge))
			return r
		}},
		{"a device of another account", func(ch api.ChallengeResponse) api.LoginRequest { return req(ch, bob.Device(0)) }},
		{"a device no chain lists", func(ch api.ChallengeResponse) api.LoginRequest { return req(ch, accounttest.MustDevice(t)) }},
		{"another origin in the statement", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = laptop.SignLogin("https://elsewhere.example:443", ch.AccountID, ch.Challenge)
			return r
		}},
		{"another account in the statement", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = laptop.SignLogin(ts.URL, bob.ID, ch.Challenge)
			return r
		}},
		{"another label", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = laptop.Key.Sign(coffer.LabelAccountLink, coffer.DeviceLoginStatement(ts.URL, ch.AccountID, laptop.ID, ch.Challenge))
			return r
		}},
		{"the suite v1 statement, hybrid-signed", func(ch api.ChallengeResponse) api.LoginRequest {
			r := req(ch, laptop)
			r.Signature = laptop.Key.Sign(coffer.LabelDeviceLogin, coffer.LoginStatement(ts.URL, ch.AccountID, ch.Challenge))
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := challenge(t, "alice")
			post(t, tt.req(ch)).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
			// The failed attempt burnt the challenge: the right signature
			// over it is refused now.
			post(t, req(ch, laptop)).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		})
	}

	t.Run("challenge reuse", func(t *testing.T) {
		lr := req(challenge(t, "alice"), phone)
		post(t, lr).Check(t, http.StatusOK, "")
		post(t, lr).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
	})

	t.Run("suite v1 account with a device id", func(t *testing.T) {
		ch := challenge(t, "victor")
		lr := victor.LoginRequest(ts.URL, ch)
		lr.DeviceID = &laptop.ID
		post(t, lr).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		// And without one, as always.
		post(t, victor.LoginRequest(ts.URL, challenge(t, "victor"))).Check(t, http.StatusOK, "")
	})

	t.Run("the device revoked after its session", func(t *testing.T) {
		mustAppend(t, ts, a, a.Revoke(laptop, phone))
		post(t, req(challenge(t, "alice"), phone)).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		post(t, req(challenge(t, "alice"), laptop)).Check(t, http.StatusOK, "")
	})
}
