package clientlib

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryTransport retries requests the server refused for load: 429 (rate
// limited) and 503 (unavailable: draining, database down). It waits at
// least what Retry-After asks, with exponential backoff and jitter between
// attempts, and gives up after maxRetries or when the server asks for a
// wait longer than maxRetryWait: a client that waits minutes looks hung, so
// the error is better. Only requests whose body can be replayed are retried;
// a streamed upload is not (it has no GetBody).
//
// It also lets the public log routes count against the caller's account
// rather than its address: when the client holds a valid access token, it
// goes along on /v1/log/ requests. The server's per-address budget is for
// anonymous readers; a signed-in client syncing a large group needs its
// account's budget. It goes along on logout too, which revokes it.
type retryTransport struct {
	next    http.RoundTripper
	base    string                // the server's URL path prefix
	current func() (string, bool) // the access token, if valid now
	sleep   func(context.Context, time.Duration) error
}

const (
	maxRetries   = 4
	maxRetryWait = 30 * time.Second
	firstBackoff = 200 * time.Millisecond
)

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if (strings.HasPrefix(req.URL.Path, t.base+"/v1/log/") || req.URL.Path == t.base+"/v1/auth/logout") &&
		req.Header.Get("Authorization") == "" && t.current != nil {
		if tok, ok := t.current(); ok {
			req = req.Clone(req.Context())
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	for attempt := 0; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
			return resp, err
		}
		if attempt == maxRetries || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
			return resp, nil
		}
		wait := retryBackoff(attempt)
		if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok && ra > wait {
			wait = ra
		}
		if wait > maxRetryWait {
			return resp, nil
		}
		// The answer is dropped: the retry's answer replaces it.
		resp.Body.Close()
		if err := t.sleep(req.Context(), wait); err != nil {
			return nil, err
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// retryBackoff is 200 ms, 400 ms, 800 ms, ... with ±50% jitter, so that clients
// refused together do not return together.
func retryBackoff(attempt int) time.Duration {
	d := firstBackoff << attempt
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// retryAfter parses Retry-After: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// currentAccessToken returns the access token if it is still valid, without
// refreshing: the log routes work without one.
func (c *Client) currentAccessToken() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.access != "" && time.Now().Before(c.accessExp) {
		return c.access, true
	}
	return "", false
}
