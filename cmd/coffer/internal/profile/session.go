package profile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// sessionFile caches the access token between runs of the CLI (0600), so
// that each command does not spend a refresh token rotation: one refresh
// every 15 minutes instead of one per command.
const sessionFile = "session.json"

// Session is a cached access token of the profile's account on its server.
type Session struct {
	Server      string    `json:"server"`
	Account     string    `json:"account"`
	AccessToken string    `json:"access_token"`
	Expires     time.Time `json:"expires"`
}

// LoadSession returns the cached session for server and account, or nil
// when there is none, it is for another server or account, or it expired.
func (p *Profile) LoadSession(server, account string, now time.Time) *Session {
	b, err := os.ReadFile(filepath.Join(p.Dir, sessionFile))
	if err != nil {
		return nil
	}
	var s Session
	if json.Unmarshal(b, &s) != nil || s.Server != server || s.Account != account || s.AccessToken == "" || !now.Before(s.Expires) {
		return nil
	}
	return &s
}

// SaveSession caches s (0600), or removes the cache when s is nil.
func (p *Profile) SaveSession(s *Session) error {
	path := filepath.Join(p.Dir, sessionFile)
	if s == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(p.Dir, ".session-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
