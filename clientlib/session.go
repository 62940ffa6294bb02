package clientlib

import "time"

// AccessToken returns the session's access token and when this client
// stops using it (a little before the server's expiry), for an app that
// runs as short processes, such as a CLI, to keep between runs. ok is false
// when there is no valid token.
//
// The token is a bearer credential for its remaining lifetime (minutes):
// keep it where the key store's secrets are kept, never in a log.
func (c *Client) AccessToken() (token string, expires time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.access == "" || !time.Now().Before(c.accessExp) {
		return "", time.Time{}, false
	}
	return c.access, c.accessExp, true
}

// UseAccessToken resumes a session with a token saved from AccessToken, so
// that the next request spends no refresh. An expired token is ignored. A
// token the server refuses (revoked by a logout) is dropped, and the client
// refreshes as usual.
func (c *Client) UseAccessToken(token string, expires time.Time) {
	if token == "" || !time.Now().Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.access, c.accessExp = token, expires
}
