package profile

import (
	"encoding/json"
	"errors"
	"time"
)

// sessionKey is where the access token is cached between runs of the CLI,
// in the encrypted key store, so that each command does not spend a
// refresh token rotation: one refresh every 15 minutes instead of one per
// command.
const sessionKey = "cli/session"

// legacySessionFile is where older versions cached the access token, in
// plaintext; KeyStore removes it.
const legacySessionFile = "session.json"

// Session is a cached access token of the profile's account on its server.
type Session struct {
	Server      string    `json:"server"`
	Account     string    `json:"account"`
	AccessToken string    `json:"access_token"`
	Expires     time.Time `json:"expires"`
}

// errLocked: the session cache lives in the key store, which KeyStore
// must have opened first.
var errLocked = errors.New("profile: the key store is not open")

// LoadSession returns the cached session for server and account, or nil
// when there is none, it is for another server or account, it expired, or
// the key store is not open.
func (p *Profile) LoadSession(server, account string, now time.Time) *Session {
	if p.ks == nil {
		return nil
	}
	b, err := p.ks.Get(sessionKey)
	if err != nil {
		return nil
	}
	var s Session
	if json.Unmarshal(b, &s) != nil || s.Server != server || s.Account != account || s.AccessToken == "" || !now.Before(s.Expires) {
		return nil
	}
	return &s
}

// SaveSession caches s in the key store, or removes the cache when s is
// nil.
func (p *Profile) SaveSession(s *Session) error {
	if p.ks == nil {
		return errLocked
	}
	if s == nil {
		return p.ks.Delete(sessionKey)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return p.ks.Put(sessionKey, b)
}
