package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

func lookupAccounts(t *testing.T, ts *testServer, token string, ids ...coffer.AccountID) map[coffer.AccountID]api.Account {
	t.Helper()
	r := (&openAPIChecker{doc: MustOpenAPI(t)}).Exchange(t, ts, http.MethodPost, "/v1/accounts/lookup", "/v1/accounts/lookup", token, api.AccountsRequest{IDs: ids})
	r.Check(t, http.StatusOK, "")
	var resp api.AccountsResponse
	r.Decode(t, &resp)
	if resp.Accounts == nil {
		t.Fatalf("accounts is null, want a list: %s", r.Body)
	}
	out := map[coffer.AccountID]api.Account{}
	for _, a := range resp.Accounts {
		if _, dup := out[a.ID]; dup {
			t.Fatalf("account %s answered twice", a.ID)
		}
		out[a.ID] = a
	}
	return out
}

// TestAccountsLookup: POST /v1/accounts/lookup answers each existing
// account among the ids once, exactly as GET /v1/accounts/{id} does, and
// nothing for unknown ids.
func TestAccountsLookup(t *testing.T) {
	ts := MustServer(t)
	alice, tok := MustRegisterChain(t, ts, "alice")
	bob, _ := MustRegisterChain(t, ts, "bob")
	_, carol, _ := MustAccount(t, ts, "carol") // suite v1
	unknown := coffer.NewAccountID()

	got := lookupAccounts(t, ts, tok.AccessToken, alice.ID, unknown, bob.ID, carol.ID, alice.ID)
	if len(got) != 3 {
		t.Fatalf("%d accounts for alice, bob, carol, an unknown id and alice again; want 3", len(got))
	}
	for _, id := range []coffer.AccountID{alice.ID, bob.ID, carol.ID} {
		var one api.Account
		r := ts.Do(t, http.MethodGet, "/v1/accounts/"+id.String(), tok.AccessToken, nil)
		r.Check(t, http.StatusOK, "")
		r.Decode(t, &one)
		a, ok := got[id]
		if !ok || a.Handle != one.Handle || string(a.Identity) != string(one.Identity) || string(a.SelfSignature) != string(one.SelfSignature) ||
			a.ChainSeq != one.ChainSeq || !a.CreatedAt.Equal(one.CreatedAt) {
			t.Errorf("the lookup's answer for %s is not GET /v1/accounts/{id}'s", id)
		}
	}
	if got := lookupAccounts(t, ts, tok.AccessToken, unknown); len(got) != 0 {
		t.Fatalf("%d accounts for an unknown id", len(got))
	}
	many := make([]coffer.AccountID, coffer.MaxAccountsLookup)
	for i := range many {
		many[i] = coffer.NewAccountID()
	}
	many[700] = bob.ID
	if got := lookupAccounts(t, ts, tok.AccessToken, many...); len(got) != 1 || got[bob.ID].Handle != "bob" {
		t.Fatalf("%d accounts for 1000 ids of which one exists, want bob's", len(got))
	}

	id := `"` + alice.ID.String() + `"`
	list := func(n int, item string) string {
		return `{"ids":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       coffer.Code
	}{
		{"no ids", `{"ids":[]}`, 400, coffer.EINVALID},
		{"null ids", `{"ids":null}`, 400, coffer.EINVALID},
		{"missing ids", `{}`, 400, coffer.EINVALID},
		{"1001 ids", list(coffer.MaxAccountsLookup+1, id), 400, coffer.EINVALID},
		{"not a uuid", `{"ids":["alice"]}`, 400, coffer.EINVALID},
		{"an uppercase uuid", `{"ids":["` + strings.ToUpper(alice.ID.String()) + `"]}`, 400, coffer.EINVALID},
		{"a null id", `{"ids":[null]}`, 400, coffer.EINVALID},
		{"an id that is a number", `{"ids":[1]}`, 400, coffer.EINVALID},
		{"unknown field", `{"ids":[` + id + `],"more":1}`, 400, coffer.EINVALID},
		{"two values", `{"ids":[` + id + `]} {}`, 400, coffer.EINVALID},
		{"a body far over the limit", list(4000, id), 413, coffer.ETOOLARGE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.Do(t, http.MethodPost, "/v1/accounts/lookup", tok.AccessToken, tc.body).Check(t, tc.status, tc.code)
		})
	}
	t.Run("no token", func(t *testing.T) {
		ts.Do(t, http.MethodPost, "/v1/accounts/lookup", "", fmt.Sprintf(`{"ids":[%s]}`, id)).Check(t, 401, coffer.EUNAUTHORIZED)
	})
}
