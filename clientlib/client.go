// Package clientlib is Coffer's client library: the only place where keys
// are generated and used. It registers and logs in with the device's keys,
// keeps verified contacts, creates groups and wraps their keys for
// out-of-band-verified members, verifies every commit, wrap and resource the
// server returns, and streams resource content through encryption.
//
// The server is the adversary in every check here. Whatever it sends is
// verified against signatures, key commitments, the verified membership log
// or verified contacts before use; a failure is a *coffer.SecurityError and
// the operation stops.
package clientlib

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/freshflight"
	"github.com/cofferhq/coffer/internal/translog"
)

// Options configure a Client. The zero value is valid.
type Options struct {
	// RootCAs replaces the system roots for verifying the server, e.g. for
	// a private CA. Certificate verification itself can never be turned off.
	RootCAs *x509.CertPool
	// Certificates are client certificates for servers that require mTLS.
	Certificates []tls.Certificate
	// TrustOnFirstUse lets the client wrap keys for members whose keys it has
	// seen but not verified out of band. Apps must opt in deliberately: it
	// trades protection against a key-substituting server for convenience.
	TrustOnFirstUse bool
	// SuiteV2Groups makes a suite v2 account create suite v2 groups: their
	// ops name members' keys by hash and their commits and resource
	// headers carry hybrid (Ed25519 and ML-DSA-65) signatures. Groups
	// created either way keep their suite. Experimental: see
	// docs/PROTOCOL.md, "Suite v2 group commits", for what is not wired yet.
	SuiteV2Groups bool
	// Timeout bounds each non-streaming request (default 60s).
	Timeout time.Duration
	// LogKey is the note verifier key of the server's transparency log
	// (cofferd prints it; /v1/log/key serves it). When empty, the client
	// pins the key the server names on first use. Either way a checkpoint
	// signed by another key is a *coffer.SecurityError.
	LogKey string
	// LogWait bounds how long an operation waits for the log to include a
	// commit or identity it relies on, or for the witnesses to cosign a
	// checkpoint with a head it verified (default 10s).
	LogWait time.Duration
	// Witnesses are the cosignature/v1 verifier keys of the witnesses this
	// client trusts (coffer-audit witness serve prints its key). Before
	// relying on a group's head, for a write or a read, the client proves
	// it through the heads map of a checkpoint that at least Quorum of
	// them cosigned (see freshness.go).
	Witnesses []string
	// Quorum is how many of Witnesses must have cosigned a checkpoint
	// (default: all of them; 0 without witnesses, where only the log's own
	// signature and time vouch for the checkpoint).
	Quorum int
	// MaxStaleness is how old, as the quorum's cosignatures date it, a
	// checkpoint may be (default 5 minutes). It bounds how long a server
	// can hide a change (a removal, a rotation) from this client. An older
	// or short-quorum checkpoint blocks writes and reads with
	// ESTALECHECKPOINT, which may be retried.
	MaxStaleness time.Duration
	// MaxGroups, MaxResources and MaxCommits bound the items one paged
	// read accepts: Groups, List, and the commits of one Sync or History
	// (defaults 100,000, 1,000,000 and 4,194,304). A longer listing fails
	// with ELIMIT, so a server cannot keep a client paging forever.
	MaxGroups, MaxResources, MaxCommits int
	// SecretObserver is an AUDITING HOOK for coffer-audit canary, which
	// checks that no secret a client made ever reaches the server. When set,
	// it is called with a copy of every secret this client generates or
	// unwraps: identity key seeds, epoch keys, resource file keys. Apps must
	// never set it: whatever it does with the secrets is outside every
	// guarantee of this library.
	SecretObserver func(kind string, secret []byte)
}

// Client talks to one Coffer server on behalf of one identity.
type Client struct {
	logged     loggedChecks   // resource versions whose log checks passed
	memberKeys memberKeyCache // suite v2 member keys, checked against their hashes
	base       *url.URL
	origin     string
	hc         *http.Client
	ks         KeyStore
	opts       Options

	ksMu       sync.Mutex      // serialises read-modify-write of key store indexes
	stateMu    sync.Mutex      // serialises check-and-store of verified group states
	states     stateCache      // the newest verified state of each group, in memory (statetail.go)
	checked    checkedStates   // per group, the state whose every member passed the sync's checks (memberscope.go)
	recent     recentCommits   // per group, the commits the last sync verified (recentcommits.go)
	ctPrefetch ctPrefetches    // per group, the newest commit's path ciphertexts, asked for by the sync (ctprefetch.go)
	books      bookCache       // the contact book last read, with its stamp (contactbook.go)
	stateLoad  deviceStateLoad // the device state adopted at link or recovery (devicestate.go)
	refreshMu  sync.Mutex      // one session refresh at a time: reuse revokes the family
	// logMu serialises the check-and-store of the log checkpoint.
	logMu      sync.Mutex
	consistent provenPairs                            // checkpoint pairs proven consistent (log.go)
	cpFlights  freshflight.Group[translog.Checkpoint] // shared fetches of the latest checkpoint (cpflight.go)
	notes      openedNotes                            // checkpoint notes that verified (cpflight.go)

	witnesses []*translog.WitnessVerifier
	fresh     freshState // witnessed checkpoint and head proofs (freshness.go)

	resources resourceCache // verified views for resource reads (resources.go)
	pins      headerPins    // signed header of each verified version (headerpin.go)
	keys      keyCache
	tree      treeCache // tree groups' replayed keys (treegroups.go)

	mu        sync.Mutex // guards the session fields below
	id        *Identity
	acct      *accountSelf // suite v2: this device's account (account.go)
	account   coffer.AccountID
	access    string
	accessExp time.Time
	refresh   string

	// retired are the identities the account used before its current one,
	// newest first: they open wraps made before a self-update (updatekey.go).
	// Guarded by mu.
	retired []*Identity
}

// Key store names.
const (
	ksIdentity = "identity"
	ksAccount  = "account"
	ksRefresh  = "session/refresh"
)

// New returns a client for the server at serverURL (http or https), keeping
// its state in ks. An identity already in ks is loaded.
func New(serverURL string, ks KeyStore, opts *Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(serverURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, coffer.Errorf(coffer.EINVALID, "server URL %q must be http(s)://host[:port]", serverURL)
	}
	if ks == nil {
		return nil, coffer.Errorf(coffer.EINVALID, "a KeyStore is required")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.LogWait == 0 {
		o.LogWait = 10 * time.Second
	}
	o.Witnesses = append([]string(nil), o.Witnesses...)
	if len(o.Witnesses) == 0 && o.Quorum == 0 {
		// Those the account's devices use (devicestate.go), unless the
		// caller configured witnesses or a quorum: a quorum given without
		// witnesses stays an error below.
		ws, q, err := storedWitnesses(ks)
		if err != nil {
			return nil, err
		}
		if len(ws) > 0 {
			o.Witnesses, o.Quorum = ws, q
		}
	}
	witnesses, err := o.setupWitnesses()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      o.RootCAs,
		Certificates: o.Certificates,
	}
	tr.MaxIdleConnsPerHost = 64
	c := &Client{base: u, origin: originOf(u), hc: &http.Client{Transport: tr}, ks: ks, opts: o, witnesses: witnesses}
	c.hc.Transport = &retryTransport{next: tr, base: u.Path, current: c.currentAccessToken, sleep: sleepCtx}
	if b, err := ks.Get(ksIdentity); err == nil {
		if c.id, err = parsePrivateIdentity(b); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if b, err := ks.Get(ksAccount); err == nil {
		if c.account, err = coffer.ParseAccountID(string(b)); err != nil {
			return nil, fmt.Errorf("clientlib: stored account id is corrupt: %w", err)
		}
	}
	if b, err := ks.Get(ksRefresh); err == nil {
		c.refresh = string(b)
	}
	if err := c.loadAccount(); err != nil {
		return nil, err
	}
	return c, nil
}

// originOf is scheme://host:port with the default port made explicit, so
// that the statement a user signs names exactly one server.
func originOf(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return u.Scheme + "://" + host + ":" + port
}

// Identity returns the loaded identity, or nil before Register/Init.
func (c *Client) Identity() *Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// AccountID returns the registered account id (zero before Register).
func (c *Client) AccountID() coffer.AccountID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.account
}

// Register generates an identity for handle (unless the key store already
// has one for it), registers it with the server and logs in.
func (c *Client) Register(ctx context.Context, handle string) error {
	h, err := coffer.ParseHandle(handle)
	if err != nil {
		return err
	}
	c.mu.Lock()
	id := c.id
	c.mu.Unlock()
	if id != nil && id.Handle() != h {
		return coffer.Errorf(coffer.EINVALID, "this key store already holds the identity %q", id.Handle())
	}
	if id == nil {
		if id, err = GenerateIdentity(h); err != nil {
			return err
		}
		c.observeSecret("identity-signing-seed", id.signing.Seed())
		c.observeSecret("identity-encryption-seed", id.encSeed)
		// Persist before registering: if the network fails after the server
		// stored the account, the keys for it are not lost.
		if err := c.ks.Put(ksIdentity, id.marshalPrivate()); err != nil {
			return err
		}
		c.mu.Lock()
		c.id = id
		c.mu.Unlock()
	}
	var acct api.Account
	err = c.call(ctx, http.MethodPost, "/v1/accounts", false,
		api.RegisterRequest{Identity: id.Public().Marshal(), SelfSignature: id.SelfSignature()}, &acct)
	if err != nil {
		return err
	}
	if acct.Handle != h || !bytes.Equal(acct.Identity, id.Public().Marshal()) {
		return coffer.Security("register", errors.New("server echoed a different identity"))
	}
	if err := c.ks.Put(ksAccount, []byte(acct.ID.String())); err != nil {
		return err
	}
	c.mu.Lock()
	c.account = acct.ID
	c.mu.Unlock()
	if err := c.proveOwnIdentity(ctx, acct.ID, id); err != nil {
		return err
	}
	c.noteIdentity(api.Account{ID: acct.ID, Identity: id.Public().Marshal(), SelfSignature: id.SelfSignature()}, id.Public())
	return c.Login(ctx)
}

// Login proves possession of the signing key: the server sends a single-use
// challenge, and the client signs a statement binding the server's origin,
// the account and the challenge. A suite v2 device signs with its own
// hybrid device key, and the statement names the device too.
func (c *Client) Login(ctx context.Context) error {
	// A suite v2 device first takes in its account's new links: another
	// device may have rotated the user key, which ended every session and
	// retired the key this device would sign with.
	if err := c.refreshOwnAccount(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	id := c.id
	c.mu.Unlock()
	if id == nil {
		return coffer.Errorf(coffer.EINVALID, "no identity in the key store: register first")
	}
	var ch api.ChallengeResponse
	if err := c.call(ctx, http.MethodPost, "/v1/auth/challenge", false, api.ChallengeRequest{Handle: id.Handle()}, &ch); err != nil {
		return err
	}
	if len(ch.Challenge) != coffer.ChallengeSize {
		return coffer.Security("login", errors.New("challenge has the wrong size"))
	}
	c.mu.Lock()
	known := c.account
	c.mu.Unlock()
	if !known.IsZero() && ch.AccountID != known {
		// Signing a statement for another account would log this device
		// into an account of the server's choosing.
		return coffer.Security("login", fmt.Errorf("the server named account %s for this handle, this device is %s", ch.AccountID, known))
	}
	req := api.LoginRequest{AccountID: ch.AccountID, Origin: c.origin, Challenge: ch.Challenge}
	if dev := c.device(); dev != nil {
		// A suite v2 account logs in with this device's own hybrid key, so
		// the server can refuse a device the chain no longer lists.
		req.DeviceID = &dev.id
		req.Signature = dev.sign.Sign(coffer.LabelDeviceLogin, coffer.DeviceLoginStatement(c.origin, ch.AccountID, dev.id, ch.Challenge))
	} else {
		req.Signature = coffer.Sign(id.signing, coffer.LabelLogin, coffer.LoginStatement(c.origin, ch.AccountID, ch.Challenge))
	}
	var tok api.Tokens
	err := c.call(ctx, http.MethodPost, "/v1/auth/login", false, req, &tok)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.account.IsZero() {
		c.account = ch.AccountID
		c.mu.Unlock()
		if err := c.ks.Put(ksAccount, []byte(ch.AccountID.String())); err != nil {
			return err
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
	return c.setTokens(tok)
}

func (c *Client) setTokens(tok api.Tokens) error {
	if err := c.ks.Put(ksRefresh, []byte(tok.RefreshToken)); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.access = tok.AccessToken
	// Refresh a little early so a request never leaves with a token that
	// expires in flight.
	c.accessExp = time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second - 30*time.Second)
	c.refresh = tok.RefreshToken
	return nil
}

// Logout revokes the refresh token on the server and forgets the session.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	refresh := c.refresh
	c.refresh = ""
	c.mu.Unlock()
	_ = c.ks.Delete(ksRefresh)
	// The access token goes along (retry.go) so that the server revokes it
	// too; this client drops it either way.
	defer func() {
		c.mu.Lock()
		c.access = ""
		c.mu.Unlock()
	}()
	if refresh == "" {
		return nil
	}
	return c.call(ctx, http.MethodPost, "/v1/auth/logout", false, api.RefreshRequest{RefreshToken: refresh}, nil)
}

// accessToken returns a valid access token, refreshing it with the refresh
// token, or logging in again with the device key when that fails.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	access, exp := c.access, c.accessExp
	c.mu.Unlock()
	if access != "" && time.Now().Before(exp) {
		return access, nil
	}
	// Refresh tokens are single use and a second use revokes the whole
	// family as theft, so concurrent requests must not each refresh: the
	// first refreshes, the others find its fresh token.
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	c.mu.Lock()
	access, exp, refresh := c.access, c.accessExp, c.refresh
	c.mu.Unlock()
	if access != "" && time.Now().Before(exp) {
		return access, nil
	}
	if refresh != "" {
		var tok api.Tokens
		err := c.call(ctx, http.MethodPost, "/v1/auth/refresh", false, api.RefreshRequest{RefreshToken: refresh}, &tok)
		if err == nil {
			if err := c.setTokens(tok); err != nil {
				return "", err
			}
			return tok.AccessToken, nil
		}
		if coffer.ErrorCode(err) != coffer.EUNAUTHORIZED {
			return "", err
		}
	}
	if err := c.Login(ctx); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.access, nil
}

// call sends a JSON request and decodes a JSON response into out (if not
// nil). With auth, it attaches an access token and, on a 401, refreshes the
// session once and retries.
func (c *Client) call(ctx context.Context, method, path string, auth bool, in, out any) error {
	var newBody func() io.Reader
	if in != nil {
		body, err := json.Marshal(in)
		if err != nil {
			return err
		}
		newBody = func() io.Reader { return bytes.NewReader(body) }
	}
	return c.do(ctx, method, path, auth, newBody, "application/json", func(resp *http.Response) error {
		return readResponse(resp, out)
	})
}

// do is call with the body and the response left to the caller: newBody,
// when not nil, makes the JSON request body (once more for the retry after
// a 401, so a body streamed while it is produced can be produced again),
// accept is the Accept header, and read consumes the response.
func (c *Client) do(ctx context.Context, method, path string, auth bool, newBody func() io.Reader, accept string, read func(*http.Response) error) error {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		var body io.Reader = http.NoBody
		if newBody != nil {
			body = newBody()
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
		if err != nil {
			cancel()
			return err
		}
		if newBody != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", accept)
		if auth {
			tok, err := c.accessToken(ctx)
			if err != nil {
				cancel()
				return err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			cancel()
			return coffer.Errorf(coffer.EUNAVAILABLE, "cannot reach the server: %v", err)
		}
		err = read(resp)
		cancel()
		if auth && attempt == 0 && coffer.ErrorCode(err) == coffer.EUNAUTHORIZED {
			c.mu.Lock()
			c.access = ""
			c.mu.Unlock()
			continue
		}
		return err
	}
}

// maxResponse caps JSON responses; a lying server cannot exhaust memory.
const maxResponse = 64 << 20

func readResponse(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return problemError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return nil
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxResponse))
	if err := dec.Decode(out); err != nil {
		return coffer.Errorf(coffer.EUNAVAILABLE, "malformed response from server: %v", err)
	}
	return nil
}

// problemError turns an application/problem+json body back into the
// *coffer.Error the server produced.
func problemError(resp *http.Response) error {
	var p api.Problem
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err := json.Unmarshal(b, &p); err != nil || p.Code == "" {
		return coffer.Errorf(coffer.EUNAVAILABLE, "server answered %s", resp.Status)
	}
	e := &coffer.Error{Code: coffer.Code(p.Code), Message: p.Detail, Rule: p.Rule}
	if p.HeadSeq != 0 {
		return &conflictError{err: e, head: p.HeadSeq}
	}
	return e
}

type conflictError struct {
	err  *coffer.Error
	head uint64
}

func (e *conflictError) Error() string { return e.err.Error() }
func (e *conflictError) Unwrap() error { return e.err }

// Account is another account's public data, with its self-signature checked.
type Account struct {
	ID       coffer.AccountID
	Identity coffer.PublicIdentity
	// Chain is a suite v2 account's chain as this device verified it, from
	// the state it verified before (contactchain.go); nil for suite v1.
	Chain *coffer.AccountState
}

// Lookup fetches an account by handle. The self-signature and the handle
// are checked, but the keys are only as trustworthy as the server until
// they are verified out of band (see Contacts).
func (c *Client) Lookup(ctx context.Context, handle string) (*Account, error) {
	h, err := coffer.ParseHandle(handle)
	if err != nil {
		return nil, err
	}
	var a api.Account
	if err := c.call(ctx, http.MethodGet, "/v1/handles/"+url.PathEscape(string(h)), true, nil, &a); err != nil {
		return nil, err
	}
	acct, err := checkAccount(a, &h, nil)
	if err != nil {
		return nil, err
	}
	if err := c.followChain(ctx, a, acct); err != nil {
		return nil, err
	}
	if err := c.proveIdentityLogged(ctx, a); err != nil {
		return nil, err
	}
	c.noteIdentity(a, acct.Identity)
	return acct, nil
}

// LookupID fetches an account by id, with the same checks as Lookup.
func (c *Client) LookupID(ctx context.Context, id coffer.AccountID) (*Account, error) {
	var a api.Account
	if err := c.call(ctx, http.MethodGet, "/v1/accounts/"+id.String(), true, nil, &a); err != nil {
		return nil, err
	}
	acct, err := checkAccount(a, nil, &id)
	if err != nil {
		return nil, err
	}
	if err := c.followChain(ctx, a, acct); err != nil {
		return nil, err
	}
	if err := c.proveIdentityLogged(ctx, a); err != nil {
		return nil, err
	}
	c.noteIdentity(a, acct.Identity)
	return acct, nil
}

func checkAccount(a api.Account, wantHandle *coffer.Handle, wantID *coffer.AccountID) (*Account, error) {
	pub, err := coffer.ParsePublicIdentity(a.Identity)
	if err != nil {
		return nil, coffer.Security("lookup", fmt.Errorf("identity does not parse: %w", err))
	}
	return checkParsedAccount(a, pub, wantHandle, wantID)
}

// checkMemberAccount is checkAccount for the account of group member m.
// When the served identity is exactly m's handle and keys, which the
// verified chain (or m's member keys) already checked, it is decoded
// without expanding its X-Wing key again: a new member of a
// 100,000-member group expanded every member's key a second time here.
func checkMemberAccount(a api.Account, m *coffer.Member) (*Account, error) {
	mine := coffer.PublicIdentity{Handle: m.Handle, SigningKey: m.SigningKey, EncryptionKey: m.EncryptionKey}
	if !bytes.Equal(a.Identity, mine.Marshal()) {
		return checkAccount(a, &m.Handle, &m.ID)
	}
	pub, err := coffer.ParseStoredPublicIdentity(a.Identity)
	if err != nil {
		return nil, coffer.Security("lookup", fmt.Errorf("identity does not parse: %w", err))
	}
	return checkParsedAccount(a, pub, &m.Handle, &m.ID)
}

func checkParsedAccount(a api.Account, pub coffer.PublicIdentity, wantHandle *coffer.Handle, wantID *coffer.AccountID) (*Account, error) {
	if err := pub.VerifySelfSignature(a.SelfSignature); err != nil {
		return nil, coffer.Security("lookup", err)
	}
	if wantHandle != nil && pub.Handle != *wantHandle {
		return nil, coffer.Security("lookup", fmt.Errorf("asked for %q, got %q", *wantHandle, pub.Handle))
	}
	if wantID != nil && a.ID != *wantID {
		return nil, coffer.Security("lookup", fmt.Errorf("asked for account %s, got %s", *wantID, a.ID))
	}
	return &Account{ID: a.ID, Identity: pub}, nil
}
