package mobile

import (
	"crypto/x509"
	"strings"
	"time"

	"github.com/cofferhq/coffer/clientlib"
)

// Options configure NewClientWithOptions. The zero value (`new Options()`)
// gives the defaults.
type Options struct {
	// TrustOnFirstUse lets the client wrap group keys for members whose keys
	// it has seen but that the user never verified. Opt in deliberately: it
	// gives up protection against a server that substitutes keys.
	TrustOnFirstUse bool
	// TimeoutMillis bounds each non-streaming request (default 60000).
	TimeoutMillis int64
	// LogWaitMillis bounds how long a call waits for the transparency log
	// to include what it relies on (default 10000).
	LogWaitMillis int64
	// LogKey is the server's transparency-log verifier key, to pin it in the
	// app; empty pins the key the server names on first use.
	LogKey string
	// Witnesses holds the cosignature/v1 verifier keys of the witnesses the
	// app trusts, one per line (gobind has no string lists). Writes and
	// reads then require the group's head in a checkpoint that Quorum of
	// them cosigned, no older than MaxStalenessMillis; otherwise they fail
	// with CodeStaleCheckpoint.
	Witnesses string
	// Quorum is how many of Witnesses must cosign (0: all of them).
	Quorum int
	// MaxStalenessMillis bounds the age of that checkpoint (default 300000,
	// five minutes).
	MaxStalenessMillis int64
	// RootCAsPEM, if set, replaces the system roots with these PEM
	// certificates (a private CA). Certificate checks cannot be disabled.
	RootCAsPEM []byte
}

// Client is one account on one server. It is safe for concurrent use.
// Create it with NewClient; the zero value is not usable.
type Client struct {
	c *clientlib.Client
}

// NewClient returns a client for serverURL (https://host[:port], or http
// for a development server) that keeps its keys and state in store. An
// identity already in the store is loaded: HasIdentity reports it, and the
// app can go straight to work (Login is automatic).
func NewClient(serverURL string, store KeyStore) (c *Client, err error) {
	defer guard(&err)
	return NewClientWithOptions(serverURL, store, nil)
}

// NewClientWithOptions is NewClient with options; opts may be nil.
func NewClientWithOptions(serverURL string, store KeyStore, opts *Options) (c *Client, err error) {
	defer guard(&err)
	if store == nil {
		return nil, newError(CodeInvalid, "a KeyStore is required")
	}
	// A suite v2 account (CreateAccount) makes suite v2 groups, as the
	// CLI's do; a suite v1 identity keeps making suite v1 groups.
	o := clientlib.Options{SuiteV2Groups: true}
	if opts != nil {
		o.TrustOnFirstUse = opts.TrustOnFirstUse
		o.LogKey = opts.LogKey
		if opts.TimeoutMillis < 0 {
			return nil, newError(CodeInvalid, "TimeoutMillis must not be negative")
		}
		o.Timeout = time.Duration(opts.TimeoutMillis) * time.Millisecond
		if opts.LogWaitMillis < 0 {
			return nil, newError(CodeInvalid, "LogWaitMillis must not be negative")
		}
		o.LogWait = time.Duration(opts.LogWaitMillis) * time.Millisecond
		for _, k := range strings.Split(opts.Witnesses, "\n") {
			if k = strings.TrimSpace(k); k != "" {
				o.Witnesses = append(o.Witnesses, k)
			}
		}
		if opts.Quorum < 0 || opts.MaxStalenessMillis < 0 {
			return nil, newError(CodeInvalid, "Quorum and MaxStalenessMillis must not be negative")
		}
		o.Quorum = opts.Quorum
		o.MaxStaleness = time.Duration(opts.MaxStalenessMillis) * time.Millisecond
		if len(opts.RootCAsPEM) > 0 {
			o.RootCAs = x509.NewCertPool()
			if !o.RootCAs.AppendCertsFromPEM(opts.RootCAsPEM) {
				return nil, newError(CodeInvalid, "RootCAsPEM holds no PEM certificate")
			}
		}
	}
	cl, err := clientlib.New(serverURL, keyStore{store}, &o)
	if err != nil {
		return nil, wrap(err, nil)
	}
	return &Client{c: cl}, nil
}

// lib returns the clientlib client, or an error for a zero Client.
func (c *Client) lib() (*clientlib.Client, error) {
	if c == nil || c.c == nil {
		return nil, newError(CodeInvalid, "the Client was not made by NewClient")
	}
	return c.c, nil
}

// HasIdentity reports whether the key store holds this device's identity,
// i.e. whether Register ran on this store before.
func (c *Client) HasIdentity() bool {
	defer guardQuiet()
	cl, err := c.lib()
	return err == nil && cl.Identity() != nil
}

// Handle returns the identity's handle, or "" before Register.
func (c *Client) Handle() string {
	defer guardQuiet()
	cl, err := c.lib()
	if err != nil || cl.Identity() == nil {
		return ""
	}
	return string(cl.Identity().Handle())
}

// AccountID returns the registered account id, or "" before Register.
func (c *Client) AccountID() string {
	defer guardQuiet()
	cl, err := c.lib()
	if err != nil || cl.AccountID().IsZero() {
		return ""
	}
	return cl.AccountID().String()
}

// Register creates this device's identity for handle (3 to 32 of a-z, 0-9,
// '.', '_', '-'), stores it in the KeyStore, registers it and logs in. The
// private keys never leave the device. CodeConflict: the handle is taken.
// If the store already holds an identity for handle (a retry after a
// network failure), it is reused.
func (c *Client) Register(handle string) (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	return wrap(cl.Register(bg(), handle), nil)
}

// Login proves possession of the identity's signing key and starts a
// session. Other calls log in by themselves when needed; call it to check
// the account works, e.g. at app start.
func (c *Client) Login() (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	return wrap(cl.Login(bg()), nil)
}

// Logout revokes the session on the server. The identity stays in the
// KeyStore; delete it there to forget the account on this device.
func (c *Client) Logout() (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	return wrap(cl.Logout(bg()), nil)
}

// SafetyNumber returns this identity's 60-digit safety number (12 groups
// of 5 digits), which contacts compare out of band before Verify.
func (c *Client) SafetyNumber() (s string, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return "", err
	}
	id := cl.Identity()
	if id == nil {
		return "", newError(CodeInvalid, "no identity yet: register first")
	}
	return id.SafetyNumber(), nil
}

// QRPayload returns the text to show as a QR code; a contact who scans it
// passes it to Verify.
func (c *Client) QRPayload() (s string, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return "", err
	}
	id := cl.Identity()
	if id == nil {
		return "", newError(CodeInvalid, "no identity yet: register first")
	}
	return id.QRPayload(), nil
}
