package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
)

// storedMemberKeys returns account's member_keys rows, by generation.
func storedMemberKeys(t *testing.T, ts *testServer, account coffer.AccountID) []coffer.StoredMemberKeys {
	t.Helper()
	rows, err := ts.Pool.Query(context.Background(), `SELECT hash, account_id, generation, keys FROM member_keys
		WHERE account_id = $1 ORDER BY generation`, account)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []coffer.StoredMemberKeys
	for rows.Next() {
		var (
			k   coffer.StoredMemberKeys
			h   []byte
			gen int64
		)
		if err := rows.Scan(&h, &k.Account, &gen, &k.Encoding); err != nil {
			t.Fatal(err)
		}
		copy(k.Hash[:], h)
		k.Generation = uint64(gen)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkStoredMemberKeys requires the rows of a to be exactly want, one
// generation each, under their hashes.
func checkStoredMemberKeys(t *testing.T, ts *testServer, a *accounttest.Account, want []*coffer.MemberKeys) {
	t.Helper()
	got := storedMemberKeys(t, ts, a.ID)
	if len(got) != len(want) {
		t.Fatalf("%d member_keys rows for %s, want %d", len(got), a.State.Handle, len(want))
	}
	for i, k := range want {
		enc := k.Marshal()
		g := got[i]
		if g.Hash != k.Hash() || !bytes.Equal(g.Encoding, enc) || g.Account != a.ID || g.Generation != k.Generation {
			t.Fatalf("member_keys row %d of %s: generation %d, hash %x; want the state's keys at generation %d, hash %x",
				i, a.State.Handle, g.Generation, g.Hash[:8], k.Generation, k.Hash())
		}
	}
}

// TestMemberKeysStored: every link that sets a user key (genesis,
// revoke-device, rotate-user-key) stores the state's member keys, and no
// other link does; old generations stay.
func TestMemberKeysStored(t *testing.T) {
	ts := MustServer(t)
	alice, _ := MustRegisterChain(t, ts, "alice")
	want := []*coffer.MemberKeys{alice.MemberKeys()}
	checkStoredMemberKeys(t, ts, alice, want)

	laptop := accounttest.MustDevice(t)
	mustAppend(t, ts, alice, alice.AddDevice(alice.Device(0), laptop))
	checkStoredMemberKeys(t, ts, alice, want)

	mustAppend(t, ts, alice, alice.Rotate(alice.Device(0)))
	want = append(want, alice.MemberKeys())
	checkStoredMemberKeys(t, ts, alice, want)

	mustAppend(t, ts, alice, alice.Revoke(alice.Device(0), laptop))
	want = append(want, alice.MemberKeys())
	checkStoredMemberKeys(t, ts, alice, want)

	mustAppend(t, ts, alice, alice.SetRecovery(alice.Device(0)))
	checkStoredMemberKeys(t, ts, alice, want)
	if want[2].Generation != 3 {
		t.Fatalf("generation %d after two rotations, want 3", want[2].Generation)
	}

	// A refused rotation stores nothing.
	sl := alice.Rotate(alice.Device(0))
	r := ts.Do(t, http.MethodPost, appendPath(alice), "", appendRequest(sl, make([]byte, coffer.SignatureSize)))
	r.Check(t, http.StatusBadRequest, coffer.EINVALID)
	checkStoredMemberKeys(t, ts, alice, want)

	// A suite v1 account has none.
	_, v1, _ := MustAccount(t, ts, "bob")
	if rows := storedMemberKeys(t, ts, v1.ID); len(rows) != 0 {
		t.Fatalf("a suite v1 account has %d member_keys rows", len(rows))
	}
}

func lookupMemberKeys(t *testing.T, ts *testServer, token string, hashes ...[32]byte) [][]byte {
	t.Helper()
	req := api.MemberKeysRequest{Hashes: make([][]byte, len(hashes))}
	for i := range hashes {
		req.Hashes[i] = hashes[i][:]
	}
	r := (&openAPIChecker{doc: MustOpenAPI(t)}).Exchange(t, ts, http.MethodPost, "/v1/member-keys", "/v1/member-keys", token, req)
	r.Check(t, http.StatusOK, "")
	var resp api.MemberKeysResponse
	r.Decode(t, &resp)
	if resp.Keys == nil {
		t.Fatalf("keys is null, want a list: %s", r.Body)
	}
	return resp.Keys
}

// TestMemberKeysLookup: POST /v1/member-keys answers the stored encodings
// among the hashes asked for, every generation, and nothing for hashes it
// does not hold.
func TestMemberKeysLookup(t *testing.T) {
	ts := MustServer(t)
	alice, _ := MustRegisterChain(t, ts, "alice")
	gen1 := alice.MemberKeys()
	mustAppend(t, ts, alice, alice.Rotate(alice.Device(0)))
	gen2 := alice.MemberKeys()
	bob, tok := MustRegisterChain(t, ts, "bob")

	var unknown [32]byte
	rand.Read(unknown[:])
	got := lookupMemberKeys(t, ts, tok.AccessToken, gen1.Hash(), unknown, gen2.Hash(), bob.MemberKeys().Hash(), gen1.Hash())
	want := [][]byte{gen1.Marshal(), gen2.Marshal(), bob.MemberKeys().Marshal()}
	cmp := func(a, b []byte) int { return bytes.Compare(a, b) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("got %d encodings, want alice's two generations and bob's keys once each", len(got))
	}
	for _, enc := range got {
		if _, err := coffer.ParseMemberKeys(enc); err != nil {
			t.Fatalf("a served encoding does not parse: %v", err)
		}
	}
	if got := lookupMemberKeys(t, ts, tok.AccessToken, unknown); len(got) != 0 {
		t.Fatalf("%d keys for an unknown hash", len(got))
	}
	// The most hashes a lookup takes.
	many := make([][32]byte, coffer.MaxMemberKeysLookup)
	for i := range many {
		rand.Read(many[i][:])
	}
	many[500] = gen2.Hash()
	if got := lookupMemberKeys(t, ts, tok.AccessToken, many...); len(got) != 1 || !bytes.Equal(got[0], gen2.Marshal()) {
		t.Fatalf("%d keys for 1000 hashes of which one is stored, want that one", len(got))
	}

	// Bad requests: each a problem before any lookup.
	h1 := gen1.Hash()
	b64 := func(b []byte) string { return `"` + base64.StdEncoding.EncodeToString(b) + `"` }
	list := func(n int, item string) string {
		return `{"hashes":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       coffer.Code
	}{
		{"no hashes", `{"hashes":[]}`, 400, coffer.EINVALID},
		{"null hashes", `{"hashes":null}`, 400, coffer.EINVALID},
		{"missing hashes", `{}`, 400, coffer.EINVALID},
		{"1001 hashes", list(coffer.MaxMemberKeysLookup+1, b64(h1[:])), 400, coffer.EINVALID},
		{"a 31-byte hash", list(2, b64(h1[:31])), 400, coffer.EINVALID},
		{"a 33-byte hash", `{"hashes":[` + b64(h1[:]) + `,` + b64(append(h1[:], 0)) + `]}`, 400, coffer.EINVALID},
		{"an empty hash", `{"hashes":[""]}`, 400, coffer.EINVALID},
		{"a null hash", `{"hashes":[null]}`, 400, coffer.EINVALID},
		{"a hash that is a number", `{"hashes":[1]}`, 400, coffer.EINVALID},
		{"not base64", `{"hashes":["!!!"]}`, 400, coffer.EINVALID},
		{"unknown field", `{"hashes":[` + b64(h1[:]) + `],"more":1}`, 400, coffer.EINVALID},
		{"two values", `{"hashes":[` + b64(h1[:]) + `]} {}`, 400, coffer.EINVALID},
		{"a body far over the limit", list(4000, b64(h1[:])), 413, coffer.ETOOLARGE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.Do(t, http.MethodPost, "/v1/member-keys", tok.AccessToken, tc.body).Check(t, tc.status, tc.code)
		})
	}
	t.Run("no token", func(t *testing.T) {
		ts.Do(t, http.MethodPost, "/v1/member-keys", "", fmt.Sprintf(`{"hashes":[%s]}`, b64(h1[:]))).Check(t, 401, coffer.EUNAUTHORIZED)
	})
}
