package server_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

func TestDeviceState(t *testing.T) {
	ts := MustServer(t)
	_, tok := MustRegisterChain(t, ts, "alice")
	_, bobTok := MustRegisterChain(t, ts, "bob")
	_, _, v1Tok := MustAccount(t, ts, "carol")
	const path = "/v1/account-state"
	get := func(token string) api.DeviceState {
		t.Helper()
		r := ts.Do(t, http.MethodGet, path, token, nil)
		r.Check(t, http.StatusOK, "")
		var st api.DeviceState
		r.Decode(t, &st)
		return st
	}
	put := func(token string, v uint64, ct []byte) *response {
		return ts.Do(t, http.MethodPut, path, token, api.DeviceState{Version: v, Ciphertext: ct})
	}

	if st := get(tok.AccessToken); st.Version != 0 || st.Ciphertext != nil {
		t.Fatalf("before any write: %+v, want version 0 and no ciphertext", st)
	}
	put(tok.AccessToken, 1, []byte("one")).Check(t, http.StatusOK, "")
	if st := get(tok.AccessToken); st.Version != 1 || !bytes.Equal(st.Ciphertext, []byte("one")) {
		t.Fatalf("after the first write: %+v", st)
	}
	// Compare-and-swap: a writer that did not see version 1 loses, and
	// learns the current version.
	for _, v := range []uint64{1, 3, 1 << 40} {
		if p := put(tok.AccessToken, v, []byte("stale")).Check(t, http.StatusConflict, coffer.ECONFLICT); p.HeadSeq != 1 {
			t.Fatalf("409 for version %d names head %d, want 1", v, p.HeadSeq)
		}
	}
	put(tok.AccessToken, 2, []byte("two")).Check(t, http.StatusOK, "")
	if st := get(tok.AccessToken); st.Version != 2 || !bytes.Equal(st.Ciphertext, []byte("two")) {
		t.Fatalf("after the second write: %+v", st)
	}
	// Each account sees and writes only its own.
	if st := get(bobTok.AccessToken); st.Version != 0 {
		t.Fatalf("bob sees alice's state: %+v", st)
	}
	put(bobTok.AccessToken, 1, []byte("bob")).Check(t, http.StatusOK, "")
	if st := get(tok.AccessToken); !bytes.Equal(st.Ciphertext, []byte("two")) {
		t.Fatalf("bob's write reached alice's state: %+v", st)
	}

	t.Run("refusals", func(t *testing.T) {
		ts.Do(t, http.MethodGet, path, "", nil).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		put("", 3, []byte("x")).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		ts.Do(t, http.MethodGet, path, v1Tok.AccessToken, nil).Check(t, http.StatusForbidden, coffer.EFORBIDDEN)
		put(v1Tok.AccessToken, 1, []byte("x")).Check(t, http.StatusForbidden, coffer.EFORBIDDEN)
		put(tok.AccessToken, 0, []byte("x")).Check(t, http.StatusBadRequest, coffer.EINVALID)
		put(tok.AccessToken, 3, nil).Check(t, http.StatusBadRequest, coffer.EINVALID)
		put(tok.AccessToken, 3, make([]byte, coffer.MaxDeviceStateSize+1)).Check(t, http.StatusRequestEntityTooLarge, coffer.ETOOLARGE)
		put(tok.AccessToken, 3, make([]byte, 2*coffer.MaxDeviceStateSize)).Check(t, http.StatusRequestEntityTooLarge, coffer.ETOOLARGE)
		if st := get(tok.AccessToken); st.Version != 2 {
			t.Fatalf("a refused write changed the state: version %d", st.Version)
		}
		// The limit itself is accepted.
		put(tok.AccessToken, 3, make([]byte, coffer.MaxDeviceStateSize)).Check(t, http.StatusOK, "")
	})
}
