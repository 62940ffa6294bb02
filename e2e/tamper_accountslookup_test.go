package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// TestTamperAccountsLookup: a member proving the identities of a group's
// members asks for their accounts in batches (POST /v1/accounts/lookup).
// A server that answers an account it was not asked for, one account
// twice, another account's identity under the id asked for, or a broken
// self-signature fails the sync with a security error. One that withholds
// an account leaves that member unlogged: the sync completes, and every
// write to the group is refused until the member is proven or removed.
func TestTamperAccountsLookup(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	ctx := context.Background()
	alice := mustV2Client(t, srv.URL(), "alice")
	carol := mustV2Client(t, srv.URL(), "carol")
	dave := mustV2Client(t, srv.URL(), "dave") // never a member
	g, err := alice.CreateGroup(ctx, "lookup", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, g, "carol", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	carolID, aliceID := carol.AccountID(), alice.AccountID()
	find := func(accts []api.Account, id coffer.AccountID) int {
		for i, a := range accts {
			if a.ID == id {
				return i
			}
		}
		t.Fatalf("the honest answer lacks account %s", id)
		return -1
	}
	for i, tc := range []struct {
		name     string
		edit     func(accts []api.Account) []api.Account
		security bool // else: carol is unlogged, and writes are refused
	}{
		{"an account not asked for", func(accts []api.Account) []api.Account {
			extra := accts[find(accts, carolID)]
			extra.ID = dave.AccountID()
			return append(accts, extra)
		}, true},
		{"an account twice", func(accts []api.Account) []api.Account {
			return append(accts, accts[find(accts, carolID)])
		}, true},
		{"another account's identity", func(accts []api.Account) []api.Account {
			c, a := find(accts, carolID), find(accts, aliceID)
			accts[c].Handle, accts[c].Identity, accts[c].SelfSignature = accts[a].Handle, accts[a].Identity, accts[a].SelfSignature
			return accts
		}, true},
		{"a flipped self-signature", func(accts []api.Account) []api.Account {
			c := find(accts, carolID)
			accts[c].SelfSignature = bytes.Clone(accts[c].SelfSignature)
			accts[c].SelfSignature[7] ^= 1
			return accts
		}, true},
		{"a withheld account", func(accts []api.Account) []api.Account {
			c := find(accts, carolID)
			return append(accts[:c], accts[c+1:]...)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A writer of its own for each attack, whose first sync goes
			// through the lying server.
			handle := "bob" + string(rune('a'+i))
			ks := NewCanaryKeyStore()
			direct := MustNewClientWith(t, srv.URL(), ks, &clientlib.Options{SuiteV2Groups: true, TrustOnFirstUse: true})
			if _, err := direct.CreateAccount(ctx, handle, "phone"); err != nil {
				t.Fatal(err)
			}
			if err := alice.AddMember(ctx, g, handle, coffer.RoleWriter); err != nil {
				t.Fatal(err)
			}
			var edited atomic.Int32
			proxyURL := lyingProxy(t, srv, func(r *http.Request, body []byte) []byte {
				if r.Method != http.MethodPost || r.URL.Path != "/v1/accounts/lookup" {
					return body
				}
				var resp api.AccountsResponse
				if err := json.Unmarshal(body, &resp); err != nil {
					t.Errorf("the honest lookup answer does not decode: %v", err)
					return body
				}
				resp.Accounts = tc.edit(resp.Accounts)
				edited.Add(1)
				b, _ := json.Marshal(resp)
				return b
			})
			bob := MustNewClientWith(t, proxyURL, ks, &clientlib.Options{SuiteV2Groups: true, TrustOnFirstUse: true})
			_, err := bob.Sync(ctx, g)
			if edited.Load() == 0 {
				t.Fatal("the proxy saw no accounts lookup")
			}
			if tc.security {
				wantSecurity(t, err)
				if !strings.Contains(err.Error(), "lookup") {
					t.Errorf("the error does not name the lookup: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("a sync with an account withheld: %v", err)
			}
			_, err = bob.Put(ctx, g, strings.NewReader("from "+handle), clientlib.Meta{Name: handle})
			wantSecurity(t, err)
			wantCode(t, errors.Unwrap(err), coffer.EKEYCHANGED)
		})
	}
}
