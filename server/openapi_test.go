package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/server"
)

const openAPIFile = "../docs/openapi.yaml"

// MustOpenAPI loads docs/openapi.yaml and validates it as an OpenAPI
// document.
func MustOpenAPI(tb testing.TB) *openapi3.T {
	tb.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(openAPIFile)
	if err != nil {
		tb.Fatalf("load %s: %v", openAPIFile, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		tb.Fatalf("%s is not a valid OpenAPI document: %v", openAPIFile, err)
	}
	return doc
}

func TestOpenAPIValid(t *testing.T) {
	doc := MustOpenAPI(t)
	if doc.Components == nil || doc.Components.SecuritySchemes["bearerAuth"] == nil {
		t.Fatal("no bearerAuth security scheme")
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"].Value; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("bearerAuth is %s/%s, want http/bearer", s.Type, s.Scheme)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
			// Every error the server sends is a problem document.
			for status, ref := range op.Responses.Map() {
				if status < "400" && status != "default" {
					continue
				}
				if ref.Value.Content.Get("application/problem+json") == nil {
					t.Errorf("%s %s: response %s is not application/problem+json", method, path, status)
				}
			}
		}
	}
}

var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// normalizeRoute makes chi and OpenAPI paths comparable: chi's Route
// subrouters add a trailing "/", and parameter names may differ.
func normalizeRoute(method, path string) string {
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	return strings.ToUpper(method) + " " + pathParam.ReplaceAllString(path, "{}")
}

// TestOpenAPICoversRoutes keeps docs/openapi.yaml and the router in step:
// every route must be documented and every documented operation must exist.
func TestOpenAPICoversRoutes(t *testing.T) {
	doc := MustOpenAPI(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cfg := server.DefaultConfig()
	cfg.JWTKeys = []server.JWTKey{server.NewJWTKey(key)}
	s, err := server.New(cfg, server.Services{})
	if err != nil {
		t.Fatal(err)
	}

	routes := map[string]string{} // normalized → as chi has it
	err = chi.Walk(s.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes[normalizeRoute(method, route)] = method + " " + route
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 16 {
		t.Fatalf("walked only %d routes: %v", len(routes), routes)
	}
	documented := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[normalizeRoute(method, path)] = method + " " + path
		}
	}

	var undocumented, unrouted []string
	for k, r := range routes {
		if _, ok := documented[k]; !ok {
			undocumented = append(undocumented, r)
		}
	}
	for k, d := range documented {
		if _, ok := routes[k]; !ok {
			unrouted = append(unrouted, d)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unrouted)
	if len(undocumented) > 0 {
		t.Errorf("routes missing from %s:\n\t%s", openAPIFile, strings.Join(undocumented, "\n\t"))
	}
	if len(unrouted) > 0 {
		t.Errorf("operations in %s that the server does not route:\n\t%s", openAPIFile, strings.Join(unrouted, "\n\t"))
	}
}

// openAPIChecker validates real requests and responses against the
// operations of docs/openapi.yaml.
type openAPIChecker struct {
	doc *openapi3.T
}

func (c *openAPIChecker) operation(tb testing.TB, method, template string) *openapi3.Operation {
	tb.Helper()
	item := c.doc.Paths.Find(template)
	if item == nil {
		tb.Fatalf("%s is not documented", template)
	}
	op := item.GetOperation(method)
	if op == nil {
		tb.Fatalf("%s %s is not documented", method, template)
	}
	return op
}

// Exchange sends the request and checks the response's status, media type
// and body, and the body of an accepted request, against what the document
// says of the operation at template.
func (c *openAPIChecker) Exchange(tb testing.TB, ts *testServer, method, template, path, token string, body any) *response {
	tb.Helper()
	op := c.operation(tb, method, template)
	name := method + " " + template
	r := ts.Do(tb, method, path, token, body)
	// A request the server accepted must be one the document allows.
	if body != nil && r.Status < 300 {
		rb := op.RequestBody
		if rb == nil {
			tb.Fatalf("%s: sends a body, but none is documented", name)
		}
		mt := rb.Value.Content.Get("application/json")
		if mt == nil {
			tb.Fatalf("%s: no application/json request body documented", name)
		}
		if err := mt.Schema.Value.VisitJSON(jsonValue(tb, body), openapi3.VisitAsRequest()); err != nil {
			tb.Errorf("%s: the server accepted a request that does not match the documented schema: %v", name, err)
		}
	}

	ref := op.Responses.Status(r.Status)
	if ref == nil {
		ref = op.Responses.Default()
	}
	if ref == nil {
		tb.Errorf("%s: status %d is not documented", name, r.Status)
		return r
	}
	if r.Status == http.StatusNoContent {
		if len(r.Body) != 0 || len(ref.Value.Content) != 0 {
			tb.Errorf("%s: 204 with a body %q or documented content", name, r.Body)
		}
		return r
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		tb.Fatalf("%s: Content-Type %q: %v", name, r.Header.Get("Content-Type"), err)
	}
	mt := ref.Value.Content.Get(ct)
	if mt == nil {
		tb.Errorf("%s: status %d with %s is not documented", name, r.Status, ct)
		return r
	}
	if !strings.HasSuffix(ct, "json") {
		return r
	}
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		tb.Errorf("%s: status %d body %s does not match the documented schema: %v", name, r.Status, r.Body, err)
	}
	return r
}

func jsonValue(tb testing.TB, body any) any {
	tb.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			tb.Fatal(err)
		}
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

// genesisRequest is what a client sends to create a group: a signed genesis
// adding the author as owner, a wrap of the first epoch key and encrypted
// metadata.
func genesisRequest(tb testing.TB, id *testIdentity, me coffer.AccountID) (coffer.GroupID, api.CommitRequest) {
	tb.Helper()
	g := coffer.NewGroupID()
	k := groupkey.NewEpochKey()
	sc := coffer.SignCommit(&coffer.Commit{
		Group: g, Seq: 1, Epoch: 1, Author: me, Time: time.Now().UnixMilli(), ShareHistory: true,
		KeyCommitment: groupkey.Commitment(k, g, 1),
		Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: me, Handle: id.Public.Handle, Role: coffer.RoleOwner,
			SigningKey: id.Public.SigningKey, EncryptionKey: id.Public.EncryptionKey}},
	}, id.Key)
	wrap, err := groupkey.Wrap(id.Public.EncryptionKey, g, 1, me, k)
	if err != nil {
		tb.Fatal(err)
	}
	return g, api.CommitRequest{
		Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature},
		Wraps:  []api.Wrap{{Member: me, Epoch: 1, Wrap: wrap}},
		Meta:   groupkey.SealMetadata(k, g, 1, coffer.LabelGroupMeta, nil, []byte(`{"name":"docs"}`)),
	}
}

// TestOpenAPIResponses drives a real server through every documented
// operation and checks each request and response against the document, so
// the schemas cannot drift from internal/api.
func TestOpenAPIResponses(t *testing.T) {
	c := &openAPIChecker{doc: MustOpenAPI(t)}
	ts := MustServer(t)
	ex := func(method, template, path, token string, body any, wantStatus int) *response {
		t.Helper()
		r := c.Exchange(t, ts, method, template, path, token, body)
		if r.Status != wantStatus {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, wantStatus, r.Body)
		}
		return r
	}

	ex("GET", "/healthz", "/healthz", "", nil, 200)
	ex("GET", "/readyz", "/readyz", "", nil, 200)
	ex("GET", "/metrics", "/metrics", "", nil, 200)

	alice := MustIdentity(t, "alice")
	var acct api.Account
	ex("POST", "/v1/accounts", "/v1/accounts", "", alice.RegisterRequest(), 201).Decode(t, &acct)
	ex("POST", "/v1/accounts", "/v1/accounts", "", alice.RegisterRequest(), 409)
	ex("POST", "/v1/accounts", "/v1/accounts", "", `{"identity":"AQ=="}`, 400)

	var ch api.ChallengeResponse
	ex("POST", "/v1/auth/challenge", "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "alice"}, 200).Decode(t, &ch)
	ex("POST", "/v1/auth/challenge", "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "nobody"}, 404)
	bad := alice.LoginRequest("https://elsewhere.example:443", ch)
	ex("POST", "/v1/auth/login", "/v1/auth/login", "", bad, 401)
	ex("POST", "/v1/auth/challenge", "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "alice"}, 200).Decode(t, &ch)
	var tok api.Tokens
	ex("POST", "/v1/auth/login", "/v1/auth/login", "", alice.LoginRequest(ts.URL, ch), 200).Decode(t, &tok)
	ex("POST", "/v1/auth/refresh", "/v1/auth/refresh", "", api.RefreshRequest{RefreshToken: tok.RefreshToken}, 200).Decode(t, &tok)
	ex("POST", "/v1/auth/refresh", "/v1/auth/refresh", "", api.RefreshRequest{RefreshToken: "used"}, 401)
	access := tok.AccessToken

	ex("GET", "/v1/accounts/{accountID}", "/v1/accounts/"+acct.ID.String(), access, nil, 200)
	ex("GET", "/v1/accounts/{accountID}", "/v1/accounts/"+acct.ID.String(), "", nil, 401)
	ex("GET", "/v1/accounts/{accountID}", "/v1/accounts/"+coffer.NewAccountID().String(), access, nil, 404)
	ex("GET", "/v1/accounts/{accountID}", "/v1/accounts/x", access, nil, 400)
	ex("GET", "/v1/handles/{handle}", "/v1/handles/alice", access, nil, 200)

	var groups []coffer.GroupID
	for range 2 {
		g, req := genesisRequest(t, alice, acct.ID)
		ex("POST", "/v1/groups", "/v1/groups", access, req, 201)
		groups = append(groups, g)
	}
	_, forged := genesisRequest(t, alice, acct.ID)
	forged.Commit.Signature = coffer.Sign(MustIdentity(t, "mallory").Key, coffer.LabelCommit, forged.Commit.Body)
	ex("POST", "/v1/groups", "/v1/groups", access, forged, 400)

	var page api.GroupList
	ex("GET", "/v1/groups", "/v1/groups?limit=1", access, nil, 200).Decode(t, &page)
	if page.NextCursor == "" {
		t.Fatal("no next_cursor on a full page")
	}
	ex("GET", "/v1/groups", "/v1/groups?limit=1&cursor="+page.NextCursor, access, nil, 200)
	ex("GET", "/v1/groups", "/v1/groups?limit=0", access, nil, 400)

	g := groups[0]
	ex("GET", "/v1/groups/{groupID}", "/v1/groups/"+g.String(), access, nil, 200)
	ex("GET", "/v1/groups/{groupID}", "/v1/groups/"+coffer.NewGroupID().String(), access, nil, 404)
	var commits api.CommitList
	ex("GET", "/v1/groups/{groupID}/commits", "/v1/groups/"+g.String()+"/commits?after=0", access, nil, 200).Decode(t, &commits)
	ex("GET", "/v1/groups/{groupID}/keys", "/v1/groups/"+g.String()+"/keys", access, nil, 200)

	// A commit that does not follow the head: 409 with head_seq.
	genesis, err := coffer.ParseCommit(commits.Commits[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	ahead := *genesis
	ahead.Seq, ahead.Ops = 3, []coffer.Op{{Kind: coffer.OpRotate}}
	sc := coffer.SignCommit(&ahead, alice.Key)
	r := ex("POST", "/v1/groups/{groupID}/commits", "/v1/groups/"+g.String()+"/commits", access,
		api.CommitRequest{Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature}}, 409)
	if p := r.Problem(t); p.HeadSeq != 1 {
		t.Errorf("409 with head_seq %d, want 1", p.HeadSeq)
	}

	ex("POST", "/v1/auth/logout", "/v1/auth/logout", "", api.RefreshRequest{RefreshToken: tok.RefreshToken}, 204)
	ex("POST", "/v1/auth/logout", "/v1/auth/logout", "", api.RefreshRequest{RefreshToken: tok.RefreshToken}, 401)

	down := MustServer(t, withReady(func(context.Context) error { return fmt.Errorf("down") }))
	if r := c.Exchange(t, down, "GET", "/readyz", "/readyz", "", nil); r.Status != 503 {
		t.Errorf("readyz of a server that is not ready: %d", r.Status)
	}
	limited := MustServer(t, withAuthRateLimit(1))
	c.Exchange(t, limited, "POST", "/v1/auth/challenge", "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "alice"})
	if r := c.Exchange(t, limited, "POST", "/v1/auth/challenge", "/v1/auth/challenge", "", api.ChallengeRequest{Handle: "alice"}); r.Status != 429 {
		t.Errorf("second challenge with a limit of 1: %d", r.Status)
	}
}
