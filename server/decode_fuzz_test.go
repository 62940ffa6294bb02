package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// decodeTargets are the request bodies handlers decode, by fuzz selector.
var decodeTargets = []func() any{
	func() any { return new(api.RegisterRequest) },
	func() any { return new(api.ChallengeRequest) },
	func() any { return new(api.LoginRequest) },
	func() any { return new(api.RefreshRequest) },
	func() any { return new(api.CommitRequest) },
	// Suite v2 accounts.
	func() any { return new(api.AppendLinkRequest) },
	func() any { return new(api.CreatePairingRequest) },
	func() any { return new(api.PairingApproval) },
	func() any { return new(api.MemberKeysRequest) },
}

// FuzzDecode feeds arbitrary bodies and Content-Types to the strict JSON
// decoder every handler uses. It must never panic, and every failure must be
// a *coffer.Error with code invalid or too_large, whose message is safe to
// send: it comes from the decoder, never from a raw Go error string.
func FuzzDecode(f *testing.F) {
	valid, _ := json.Marshal(api.LoginRequest{
		AccountID: coffer.NewAccountID(), Origin: "http://127.0.0.1:8080",
		Challenge: bytes.Repeat([]byte{1}, 32), Signature: bytes.Repeat([]byte{2}, 64),
	})
	commit, _ := json.Marshal(api.CommitRequest{
		Commit: api.SignedCommit{Body: []byte{1, 2, 3}, Signature: []byte{4}},
		Wraps:  []api.Wrap{{Member: coffer.NewAccountID(), Epoch: 1, Wrap: []byte{5}}},
		Links:  []api.HistoryLink{{Epoch: 1, Link: []byte{6}}},
	})
	for _, seed := range []struct {
		body   string
		ct     string
		target uint8
		limit  uint16
	}{
		{string(valid), "application/json", 2, 4096},
		{string(valid), "application/json; charset=utf-8", 2, 64},
		{string(commit), "application/json", 4, 4096},
		{`{"identity":"AQ==","self_signature":"AQ=="}`, "", 0, 4096},
		{`{"identity":"-_8=","self_signature":null}`, "application/json", 0, 4096},
		{`{"identity":1}`, "application/json", 0, 4096},
		{`{"handle":"alice"} {}`, "application/json", 1, 4096},
		{`{"handle":"alice"}]`, "application/json", 1, 4096},
		{`{"account_id":"00000000-0000-0000-0000-00000000000G"}`, "application/json", 2, 4096},
		{`{"commit":{"body":"AQ=="},"wraps":[{"epoch":-1}]}`, "application/json", 4, 4096},
		{`{"commit":{"body":"AQ=="},"wraps":[{"epoch":1e400}]}`, "application/json", 4, 4096},
		{`{"refresh_token":"` + strings.Repeat("a", 100) + `"}`, "application/json", 3, 50},
		{`{"x":1}`, "text/plain", 3, 4096},
		{`{"x":1}`, "application/json;;", 3, 4096},
		{"", "application/json", 0, 4096},
		{"\xff\xfe", "application/json", 0, 4096},
		{`{"handle":"\ud800"}`, "application/json", 1, 4096},
		{`[`, "application/json", 0, 4096},
		{`null`, "application/json", 0, 4096},
		{`{"link":{"body":"AQ==","signature":"Ag=="},"self_signature":"Aw=="}`, "application/json", 5, 4096},
		{`{"id":"00","handle":"alice","device":{"id":"x","name":"","signing_key":null},"mac":"AQ=="}`, "application/json", 6, 4096},
		{`{"link":{"body":"AQ=="},"mac":[1]}`, "application/json", 7, 4096},
		{`{"hashes":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",null,""]}`, "application/json", 8, 4096},
	} {
		f.Add([]byte(seed.body), seed.ct, seed.target, seed.limit)
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType string, target uint8, limit uint16) {
		r := httptest.NewRequest(http.MethodPost, "/v1/test", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		w := httptest.NewRecorder()
		v := decodeTargets[int(target)%len(decodeTargets)]()
		err := decode(w, r, int64(limit)+1, v)
		if err == nil {
			// What was accepted must be one JSON value of at most limit bytes.
			if len(bytes.TrimSpace(body)) > int(limit)+1 {
				t.Fatalf("accepted a %d-byte body over the limit of %d", len(body), int(limit)+1)
			}
			if !json.Valid(body) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			return
		}
		var ce *coffer.Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %T %v is not a *coffer.Error", err, err)
		}
		if ce.Code != coffer.EINVALID && ce.Code != coffer.ETOOLARGE {
			t.Fatalf("code %q (%v), want invalid or too_large", ce.Code, err)
		}
		if ce.Message == "" || strings.HasPrefix(ce.Message, "json:") {
			t.Fatalf("message %q is empty or a raw decoder error", ce.Message)
		}
		// Error must turn it into a 4xx problem, never a 500.
		rec := httptest.NewRecorder()
		Error(rec, r, err)
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for %v", rec.Code, err)
		}
	})
}
