package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testClock is the clock of a test server and its store. It starts at the
// real time and moves only when a test advances it, so expiry is tested
// without sleeping.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer collects a server's log; handlers write to it concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a real server.Server on a fresh, migrated database, served
// over HTTP on 127.0.0.1.
type testServer struct {
	// URL is http://127.0.0.1:PORT. It is also the only origin the server
	// accepts in a login statement, exactly as clientlib computes it.
	URL    string
	Clock  *testClock
	Pool   *pgxpool.Pool
	DB     *store.DB
	JWTKey server.JWTKey
	Log    *syncBuffer
	Server *server.Server
}

type serverOption func(*server.Config, *server.Services)

func withAuthRateLimit(n int) serverOption {
	return func(c *server.Config, _ *server.Services) { c.AuthRateLimit = n }
}

func withReady(f func(context.Context) error) serverOption {
	return func(_ *server.Config, s *server.Services) { s.Ready = f }
}

// MustServer starts a server whose clock is the test's, with a fresh
// Ed25519 access-token key and an auth rate limit high enough not to
// interfere unless a test lowers it.
func MustServer(tb testing.TB, opts ...serverOption) *testServer {
	tb.Helper()
	return mustServerOn(tb, pgtest.NewPool(tb), opts...)
}

// mustServerOn is MustServer over pool.
func mustServerOn(tb testing.TB, pool *pgxpool.Pool, opts ...serverOption) *testServer {
	tb.Helper()
	clock := &testClock{now: time.Now().UTC()}
	db := store.New(pool)
	db.Now = clock.Now
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	key := server.NewJWTKey(priv)
	logs := &syncBuffer{}

	// The listener exists before the server is built, so the server's
	// configured origin can be the address the clients will see.
	hs := httptest.NewUnstartedServer(nil)
	origin := "http://" + hs.Listener.Addr().String()

	cfg := server.DefaultConfig()
	cfg.Origins = []string{origin}
	cfg.JWTKeys = []server.JWTKey{key}
	cfg.AuthRateLimit = 1_000_000
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Now = clock.Now
	svc := server.Services{Accounts: db, Auth: db, Groups: db, Ready: db.Ping}
	for _, o := range opts {
		o(&cfg, &svc)
	}
	srv, err := server.New(cfg, svc)
	if err != nil {
		tb.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	// Registered after the pool's cleanup, so it runs first: no request is
	// in flight when the pool closes.
	tb.Cleanup(hs.Close)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("server log:\n%s", logs.String())
		}
	})
	if hs.URL != origin {
		tb.Fatalf("httptest URL %s differs from origin %s", hs.URL, origin)
	}
	return &testServer{URL: hs.URL, Clock: clock, Pool: pool, DB: db, JWTKey: key, Log: logs, Server: srv}
}

// response is a fully read HTTP response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// NewRequest builds a request to path. A body that is []byte or string is
// sent as is; anything else is encoded as JSON. A request with a body is
// labelled application/json.
func (ts *testServer) NewRequest(tb testing.TB, method, path string, body any) *http.Request {
	tb.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.URL+path, r)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// Send sends req and reads the whole response.
func (ts *testServer) Send(tb testing.TB, req *http.Request) *response {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Do sends a request with an optional bearer token.
func (ts *testServer) Do(tb testing.TB, method, path, token string, body any) *response {
	tb.Helper()
	req := ts.NewRequest(tb, method, path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return ts.Send(tb, req)
}

// Problem decodes an application/problem+json body.
func (r *response) Problem(tb testing.TB) api.Problem {
	tb.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("status %d with Content-Type %q, want application/problem+json; body %s", r.Status, ct, r.Body)
	}
	var p api.Problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		tb.Fatalf("problem body %q: %v", r.Body, err)
	}
	return p
}

// Decode decodes a JSON body into v.
func (r *response) Decode(tb testing.TB, v any) {
	tb.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		tb.Fatalf("status %d with Content-Type %q, want application/json; body %s", r.Status, ct, r.Body)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("body %q: %v", r.Body, err)
	}
}

// Check fails unless the response has wantStatus and, for an error, is a
// problem with wantCode whose status field agrees.
func (r *response) Check(tb testing.TB, wantStatus int, wantCode coffer.Code) api.Problem {
	tb.Helper()
	if r.Status != wantStatus {
		tb.Fatalf("status %d, want %d; body %s", r.Status, wantStatus, r.Body)
	}
	if wantCode == "" {
		return api.Problem{}
	}
	p := r.Problem(tb)
	if p.Code != string(wantCode) || p.Status != wantStatus {
		tb.Fatalf("problem code %q status %d, want %q %d (detail %q)", p.Code, p.Status, wantCode, wantStatus, p.Detail)
	}
	if p.Type != "urn:coffer:problem:"+p.Code || p.Title == "" {
		tb.Errorf("problem type %q title %q: want urn:coffer:problem:%s and a title", p.Type, p.Title, p.Code)
	}
	return p
}

// testIdentity is an account's key pair made directly from crypto/ed25519
// and the suite's KEM, so that tests can sign anything, including what a
// well-behaved client never would.
type testIdentity struct {
	Key    ed25519.PrivateKey
	Public coffer.PublicIdentity
}

func MustIdentity(tb testing.TB, handle string) *testIdentity {
	tb.Helper()
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	dk, err := coffer.KEM().GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return &testIdentity{Key: sk, Public: coffer.PublicIdentity{
		Handle:        coffer.Handle(handle),
		SigningKey:    sk.Public().(ed25519.PublicKey),
		EncryptionKey: dk.PublicKey().Bytes(),
	}}
}

func (id *testIdentity) RegisterRequest() api.RegisterRequest {
	enc := id.Public.Marshal()
	return api.RegisterRequest{Identity: enc, SelfSignature: coffer.Sign(id.Key, coffer.LabelIdentity, enc)}
}

// LoginRequest signs the login statement for origin and challenge.
func (id *testIdentity) LoginRequest(origin string, ch api.ChallengeResponse) api.LoginRequest {
	stmt := coffer.LoginStatement(origin, ch.AccountID, ch.Challenge)
	return api.LoginRequest{AccountID: ch.AccountID, Origin: origin, Challenge: ch.Challenge,
		Signature: coffer.Sign(id.Key, coffer.LabelLogin, stmt)}
}

func MustRegister(tb testing.TB, ts *testServer, id *testIdentity) api.Account {
	tb.Helper()
	r := ts.Do(tb, http.MethodPost, "/v1/accounts", "", id.RegisterRequest())
	r.Check(tb, http.StatusCreated, "")
	var a api.Account
	r.Decode(tb, &a)
	return a
}

func MustChallenge(tb testing.TB, ts *testServer, id *testIdentity) api.ChallengeResponse {
	tb.Helper()
	r := ts.Do(tb, http.MethodPost, "/v1/auth/challenge", "", api.ChallengeRequest{Handle: id.Public.Handle})
	r.Check(tb, http.StatusOK, "")
	var ch api.ChallengeResponse
	r.Decode(tb, &ch)
	return ch
}

func MustLogin(tb testing.TB, ts *testServer, id *testIdentity) api.Tokens {
	tb.Helper()
	r := ts.Do(tb, http.MethodPost, "/v1/auth/login", "", id.LoginRequest(ts.URL, MustChallenge(tb, ts, id)))
	r.Check(tb, http.StatusOK, "")
	var tok api.Tokens
	r.Decode(tb, &tok)
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn != 900 {
		tb.Fatalf("tokens %+v: want both tokens, type Bearer, 900 s", tok)
	}
	return tok
}

// MustAccount registers a fresh identity and logs it in.
func MustAccount(tb testing.TB, ts *testServer, handle string) (*testIdentity, api.Account, api.Tokens) {
	tb.Helper()
	id := MustIdentity(tb, handle)
	a := MustRegister(tb, ts, id)
	return id, a, MustLogin(tb, ts, id)
}

func TestRegister(t *testing.T) {
	ts := MustServer(t)

	t.Run("valid", func(t *testing.T) {
		id := MustIdentity(t, "alice")
		r := ts.Do(t, http.MethodPost, "/v1/accounts", "", id.RegisterRequest())
		r.Check(t, http.StatusCreated, "")
		var a api.Account
		r.Decode(t, &a)
		if a.ID.IsZero() || a.Handle != "alice" || !bytes.Equal(a.Identity, id.Public.Marshal()) || a.CreatedAt.IsZero() {
			t.Fatalf("account %+v does not echo the registered identity", a)
		}
		if err := id.Public.VerifySelfSignature(a.SelfSignature); err != nil {
			t.Fatal(err)
		}
	})

	taken := MustIdentity(t, "taken")
	MustRegister(t, ts, taken)

	// register returns a request for a fresh identity, changed by mutate
	// before it is encoded and self-signed: the signature is valid, so the
	// only defect is the one under test.
	register := func(handle string, mutate func(*coffer.PublicIdentity)) func(t *testing.T) any {
		return func(t *testing.T) any {
			id := MustIdentity(t, handle)
			if mutate != nil {
				mutate(&id.Public)
			}
			return id.RegisterRequest()
		}
	}
	// encoded returns a request whose identity encoding is changed by mangle
	// and then self-signed.
	encoded := func(handle string, mangle func([]byte) []byte) func(t *testing.T) any {
		return func(t *testing.T) any {
			id := MustIdentity(t, handle)
			enc := mangle(id.Public.Marshal())
			return api.RegisterRequest{Identity: enc, SelfSignature: coffer.Sign(id.Key, coffer.LabelIdentity, enc)}
		}
	}
	raw := func(s string) func(t *testing.T) any { return func(*testing.T) any { return s } }
	validJSON := func(t *testing.T) map[string]any {
		b, _ := json.Marshal(MustIdentity(t, "fieldtest").RegisterRequest())
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}

	tests := []struct {
		name        string
		body        func(t *testing.T) any
		contentType string // default application/json
		wantStatus  int
		wantCode    coffer.Code
		wantDetail  string // a substring of the problem detail
	}{
		{
			name: "self-signature by another key",
			body: func(t *testing.T) any {
				id, other := MustIdentity(t, "forged"), MustIdentity(t, "other")
				req := id.RegisterRequest()
				req.SelfSignature = coffer.Sign(other.Key, coffer.LabelIdentity, id.Public.Marshal())
				return req
			},
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "self-signature",
		},
		{
			name: "self-signature under another label",
			body: func(t *testing.T) any {
				id := MustIdentity(t, "crosslabel")
				req := id.RegisterRequest()
				req.SelfSignature = coffer.Sign(id.Key, coffer.LabelLogin, id.Public.Marshal())
				return req
			},
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "self-signature",
		},
		{
			name: "self-signature of the wrong size",
			body: func(t *testing.T) any {
				req := MustIdentity(t, "shortsig").RegisterRequest()
				req.SelfSignature = req.SelfSignature[:63]
				return req
			},
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "self_signature must be 64 bytes",
		},
		{
			name:       "signing key of 31 bytes",
			body:       register("shortsk", func(p *coffer.PublicIdentity) { p.SigningKey = p.SigningKey[:31] }),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "signing key must be 32 bytes",
		},
		{
			name: "signing key of 33 bytes",
			body: register("longsk", func(p *coffer.PublicIdentity) {
				p.SigningKey = append(append([]byte(nil), p.SigningKey...), 0)
			}),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "signing key must be 32 bytes",
		},
		{
			name:       "encryption key of 1215 bytes",
			body:       register("shortek", func(p *coffer.PublicIdentity) { p.EncryptionKey = p.EncryptionKey[:1215] }),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "encryption key must be 1216 bytes",
		},
		{
			name: "encryption key of an X25519 size",
			body: register("x25519ek", func(p *coffer.PublicIdentity) {
				p.EncryptionKey = p.EncryptionKey[len(p.EncryptionKey)-32:]
			}),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "encryption key must be 1216 bytes",
		},
		{
			// Every 12-bit ML-KEM coefficient reads 4095, above q = 3329.
			name: "encryption key that is not an X-Wing key",
			body: register("badek", func(p *coffer.PublicIdentity) {
				p.EncryptionKey = bytes.Repeat([]byte{0xff}, coffer.EncryptionKeySize)
			}),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "not a valid MLKEM768-X25519",
		},
		{
			name:       "handle with capitals",
			body:       register("Mallory", nil),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "handle",
		},
		{
			name:       "handle too short",
			body:       register("ab", nil),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "handle",
		},
		{
			name:       "handle with a slash",
			body:       register("a/../b", nil),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "handle",
		},
		{
			name:       "unsupported identity version",
			body:       encoded("version2", func(b []byte) []byte { b[0] = 2; return b }),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "version",
		},
		{
			name:       "trailing byte after the identity",
			body:       encoded("trailing", func(b []byte) []byte { return append(b, 0) }),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "malformed public identity",
		},
		{
			name: "missing identity",
			body: func(t *testing.T) any {
				m := validJSON(t)
				delete(m, "identity")
				return m
			},
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "malformed public identity",
		},
		{
			name: "duplicate handle",
			body: func(t *testing.T) any {
				// Same handle, new keys: the handle is what is unique.
				return MustIdentity(t, "taken").RegisterRequest()
			},
			wantStatus: 409, wantCode: coffer.ECONFLICT, wantDetail: "already taken",
		},
		{
			name: "body over 1 MiB",
			body: func(t *testing.T) any {
				return `{"identity":"` + strings.Repeat("A", 1<<20) + `"}`
			},
			wantStatus: 413, wantCode: coffer.ETOOLARGE, wantDetail: "larger than 1048576 bytes",
		},
		{
			name:       "malformed JSON",
			body:       raw(`{"identity": "AQ==", `),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "malformed JSON",
		},
		{
			name:       "JSON syntax error",
			body:       raw(`{"identity" "AQ=="}`),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "malformed JSON at byte",
		},
		{
			name:       "empty body",
			body:       raw(``),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "empty",
		},
		{
			name: "two JSON values",
			body: func(t *testing.T) any {
				b, _ := json.Marshal(MustIdentity(t, "twice").RegisterRequest())
				return string(b) + string(b)
			},
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "single JSON value",
		},
		{
			name: "unknown field",
			body: func(t *testing.T) any {
				m := validJSON(t)
				m["is_admin"] = true
				return m
			},
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: `unknown field "is_admin"`,
		},
		{
			name: "bad base64",
			body: func(t *testing.T) any {
				m := validJSON(t)
				m["identity"] = "not*base64"
				return m
			},
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "invalid base64",
		},
		{
			name: "base64url instead of standard base64",
			body: func(t *testing.T) any {
				m := validJSON(t)
				m["self_signature"] = "-_-_"
				return m
			},
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: "standard padded base64",
		},
		{
			name:       "number for a byte field",
			body:       raw(`{"identity": 12}`),
			wantStatus: 400, wantCode: coffer.EINVALID, wantDetail: `"identity" must be of JSON type string (base64)`,
		},
		{
			name: "wrong Content-Type",
			body: func(t *testing.T) any {
				return MustIdentity(t, "textplain").RegisterRequest()
			},
			contentType: "text/plain",
			wantStatus:  400, wantCode: coffer.EINVALID, wantDetail: "Content-Type must be application/json",
		},
		{
			name: "form Content-Type",
			body: func(t *testing.T) any {
				return "identity=AQ%3D%3D"
			},
			contentType: "application/x-www-form-urlencoded",
			wantStatus:  400, wantCode: coffer.EINVALID, wantDetail: "Content-Type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ts.NewRequest(t, http.MethodPost, "/v1/accounts", tt.body(t))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			p := ts.Send(t, req).Check(t, tt.wantStatus, tt.wantCode)
			if !strings.Contains(p.Detail, tt.wantDetail) {
				t.Errorf("detail %q, want it to contain %q", p.Detail, tt.wantDetail)
			}
			if len(p.Detail) > 300 {
				t.Errorf("detail is %d bytes long; it should not echo the body", len(p.Detail))
			}
		})
	}

	// None of the rejected requests left an account behind.
	var n int
	if err := ts.Pool.QueryRow(context.Background(), `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d accounts stored, want 2 (alice and taken)", n)
	}
}

func TestLookup(t *testing.T) {
	ts := MustServer(t)
	alice := MustIdentity(t, "alice")
	acct := MustRegister(t, ts, alice)
	_, _, bob := MustAccount(t, ts, "bob")

	tests := []struct {
		name       string
		path       string
		token      string
		wantStatus int
		wantCode   coffer.Code
	}{
		{"by id", "/v1/accounts/" + acct.ID.String(), bob.AccessToken, 200, ""},
		{"by handle", "/v1/handles/alice", bob.AccessToken, 200, ""},
		{"by id without a token", "/v1/accounts/" + acct.ID.String(), "", 401, coffer.EUNAUTHORIZED},
		{"by handle without a token", "/v1/handles/alice", "", 401, coffer.EUNAUTHORIZED},
		{"unknown id", "/v1/accounts/" + coffer.NewAccountID().String(), bob.AccessToken, 404, coffer.ENOTFOUND},
		{"unknown handle", "/v1/handles/carol", bob.AccessToken, 404, coffer.ENOTFOUND},
		{"malformed id", "/v1/accounts/not-a-uuid", bob.AccessToken, 400, coffer.EINVALID},
		{"uppercase id", "/v1/accounts/" + strings.ToUpper(acct.ID.String()), bob.AccessToken, 400, coffer.EINVALID},
		{"malformed handle", "/v1/handles/A", bob.AccessToken, 400, coffer.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.Do(t, http.MethodGet, tt.path, tt.token, nil)
			r.Check(t, tt.wantStatus, tt.wantCode)
			if tt.wantStatus != 200 {
				return
			}
			// Public data only: exactly these fields, nothing else.
			var m map[string]json.RawMessage
			r.Decode(t, &m)
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if want := []string{"chain_seq", "created_at", "handle", "id", "identity", "self_signature"}; !slices.Equal(keys, want) {
				t.Errorf("fields %v, want exactly %v", keys, want)
			}
			var a api.Account
			r.Decode(t, &a)
			if a.ID != acct.ID || a.Handle != "alice" || !bytes.Equal(a.Identity, alice.Public.Marshal()) ||
				// The database keeps microseconds; the registration response
				// echoed the server's clock.
				!a.CreatedAt.Equal(acct.CreatedAt.Truncate(time.Microsecond)) {
				t.Errorf("got %+v, want %+v", a, acct)
			}
			if err := alice.Public.VerifySelfSignature(a.SelfSignature); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestNonMembersSeeNotFound checks that group objects of a group someone
// else created are 404, never 403, for an authenticated non-member, exactly
// as for a group that does not exist (OWASP API1).
func TestNonMembersSeeNotFound(t *testing.T) {
	ts := MustServer(t)
	// The group is made with hand-made requests: this server runs no
	// transparency log, and clientlib proves its own writes in one.
	w := &resourceWorld{ts: ts}
	ownerID, ownerAcct, ownerTok := MustAccount(t, ts, "owner")
	owner := member{ownerID, ownerAcct, ownerTok.AccessToken}
	g := w.mustGroup(t, []member{owner}, []coffer.Role{coffer.RoleOwner})
	headOf := func() api.Group {
		t.Helper()
		r := ts.Do(t, http.MethodGet, "/v1/groups/"+g.String(), owner.token, nil)
		r.Check(t, 200, "")
		var gr api.Group
		r.Decode(t, &gr)
		return gr
	}
	if gr := headOf(); gr.HeadSeq != 1 || gr.Role != coffer.RoleOwner {
		t.Fatalf("the owner cannot read its own group: %+v", gr)
	}

	outsider, outsiderAcct, tok := MustAccount(t, ts, "outsider")
	// A validly signed commit by the outsider that tries to join the group.
	join := coffer.SignCommit(&coffer.Commit{
		Group: g, Seq: 2, Epoch: 1, Author: outsiderAcct.ID, Time: time.Now().UnixMilli(),
		ShareHistory: true,
		Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: outsiderAcct.ID, Handle: "outsider", Role: coffer.RoleOwner,
			SigningKey: outsider.Public.SigningKey, EncryptionKey: outsider.Public.EncryptionKey}},
	}, outsider.Key)
	joinReq := api.CommitRequest{Commit: api.SignedCommit{Body: join.Body, Signature: join.Signature}, Wraps: []api.Wrap{}}

	missing := coffer.NewGroupID()
	for _, tt := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v1/groups/%s", nil},
		{http.MethodGet, "/v1/groups/%s/commits", nil},
		{http.MethodGet, "/v1/groups/%s/commits?after=0&limit=10", nil},
		{http.MethodGet, "/v1/groups/%s/keys", nil},
		{http.MethodPost, "/v1/groups/%s/commits", joinReq},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			theirs := ts.Do(t, tt.method, strings.Replace(tt.path, "%s", g.String(), 1), tok.AccessToken, tt.body)
			p := theirs.Check(t, http.StatusNotFound, coffer.ENOTFOUND)
			if tt.method == http.MethodPost {
				return // the commit names g, so it cannot be replayed at another id
			}
			// Indistinguishable from a group that does not exist.
			none := ts.Do(t, tt.method, strings.Replace(tt.path, "%s", missing.String(), 1), tok.AccessToken, nil)
			if q := none.Check(t, http.StatusNotFound, coffer.ENOTFOUND); q != p {
				t.Errorf("non-member sees %+v, a missing group gives %+v", p, q)
			}
		})
	}

	// Nor does the group appear in the outsider's list.
	r := ts.Do(t, http.MethodGet, "/v1/groups", tok.AccessToken, nil)
	r.Check(t, 200, "")
	var list api.GroupList
	r.Decode(t, &list)
	if len(list.Groups) != 0 {
		t.Errorf("outsider lists %d groups, want none", len(list.Groups))
	}
	// And the rejected join left the group as it was.
	if gr := headOf(); gr.HeadSeq != 1 {
		t.Errorf("after the outsider's attempts the group is %+v; want seq 1", gr)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	notReady := errors.New("database is gone: host=db.internal password=hunter2")
	ts := MustServer(t)
	down := MustServer(t, withReady(func(context.Context) error { return notReady }))

	tests := []struct {
		name       string
		ts         *testServer
		method     string
		path       string
		wantStatus int
		wantCode   coffer.Code
	}{
		{"healthz", ts, http.MethodGet, "/healthz", 200, ""},
		{"readyz", ts, http.MethodGet, "/readyz", 200, ""},
		{"healthz while not ready", down, http.MethodGet, "/healthz", 200, ""},
		{"readyz while not ready", down, http.MethodGet, "/readyz", 503, coffer.EUNAVAILABLE},
		{"metrics", ts, http.MethodGet, "/metrics", 200, ""},
		{"unknown path", ts, http.MethodGet, "/v2/everything", 404, coffer.ENOTFOUND},
		{"wrong method", ts, http.MethodDelete, "/v1/accounts", 405, coffer.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.ts.Do(t, tt.method, tt.path, "", nil)
			p := r.Check(t, tt.wantStatus, tt.wantCode)
			if strings.Contains(string(r.Body), "hunter2") || strings.Contains(p.Detail, "db.internal") {
				t.Errorf("the readiness error leaked into the response: %s", r.Body)
			}
			if r.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id header")
			}
		})
	}

	// The metrics count requests by route pattern, never by the values in
	// the path, which may name accounts and groups.
	_, acct, tok := MustAccount(t, ts, "metered")
	ts.Do(t, http.MethodGet, "/v1/accounts/"+acct.ID.String(), tok.AccessToken, nil).Check(t, 200, "")
	r := ts.Do(t, http.MethodGet, "/metrics", "", nil)
	r.Check(t, 200, "")
	body := string(r.Body)
	for _, want := range []string{
		"# TYPE coffer_http_requests_total counter",
		`coffer_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`coffer_http_requests_total{method="GET",route="/v1/accounts/{accountID}",status="200"} 1`,
		`coffer_http_requests_total{method="POST",route="/v1/auth/login",status="200"} 1`,
		"coffer_http_request_duration_seconds_bucket",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, acct.ID.String()) {
		t.Error("/metrics names an account id")
	}
}

// TestInternalErrorsDoNotLeak breaks the database under a running server:
// every handler that reaches it answers 500 "internal error", and the cause
// is only in the server log, under the request id the client saw.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	ts := MustServer(t)
	_, _, tok := MustAccount(t, ts, "early")
	ts.Pool.Close()

	tests := []struct {
		name   string
		method string
		path   string
		token  string
		body   func(t *testing.T) any
	}{
		{"register", http.MethodPost, "/v1/accounts", "", func(t *testing.T) any { return MustIdentity(t, "late").RegisterRequest() }},
		{"challenge", http.MethodPost, "/v1/auth/challenge", "", func(*testing.T) any { return api.ChallengeRequest{Handle: "early"} }},
		{"refresh", http.MethodPost, "/v1/auth/refresh", "", func(*testing.T) any { return api.RefreshRequest{RefreshToken: tok.RefreshToken} }},
		{"list groups", http.MethodGet, "/v1/groups", tok.AccessToken, func(*testing.T) any { return nil }},
		{"lookup", http.MethodGet, "/v1/handles/early", tok.AccessToken, func(*testing.T) any { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.Do(t, tt.method, tt.path, tt.token, tt.body(t))
			p := r.Check(t, http.StatusInternalServerError, coffer.EINTERNAL)
			if p.Detail != "internal error" || p.Rule != "" {
				t.Errorf("detail %q rule %q, want only \"internal error\"", p.Detail, p.Rule)
			}
			for _, leak := range []string{"pool", "closed", "pgx", "sql", "postgres"} {
				if strings.Contains(strings.ToLower(string(r.Body)), leak) {
					t.Errorf("response %s mentions %q", r.Body, leak)
				}
			}
			rid := r.Header.Get("X-Request-Id")
			if rid == "" {
				t.Fatal("no X-Request-Id")
			}
			var logged bool
			for _, line := range strings.Split(ts.Log.String(), "\n") {
				if strings.Contains(line, "request_id="+rid) && strings.Contains(line, `msg="internal error"`) &&
					strings.Contains(line, "closed pool") {
					logged = true
				}
			}
			if !logged {
				t.Errorf("no internal error with request_id=%s and its cause in the server log", rid)
			}
		})
	}
	ts.Do(t, http.MethodGet, "/readyz", "", nil).Check(t, http.StatusServiceUnavailable, coffer.EUNAVAILABLE)
}
