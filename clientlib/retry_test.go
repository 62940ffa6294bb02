package clientlib

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// retryServer answers each request with the next status in statuses (then
// 200), recording what it received.
type retryServer struct {
	mu       sync.Mutex
	statuses []int
	header   http.Header
	bodies   []string
	auth     []string
}

func (s *retryServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies = append(s.bodies, string(b))
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	status := http.StatusOK
	if len(s.statuses) > 0 {
		status, s.statuses = s.statuses[0], s.statuses[1:]
	}
	for k, v := range s.header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

func newRetryClient(t *testing.T, srv *retryServer, token string) (*http.Client, *[]time.Duration, string) {
	t.Helper()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	var slept []time.Duration
	tr := &retryTransport{
		next: http.DefaultTransport, base: "",
		current: func() (string, bool) { return token, token != "" },
		sleep: func(_ context.Context, d time.Duration) error {
			slept = append(slept, d)
			return nil
		},
	}
	return &http.Client{Transport: tr}, &slept, hs.URL
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	srv := &retryServer{statuses: []int{429, 503}, header: http.Header{"Retry-After": {"2"}}}
	hc, slept, url := newRetryClient(t, srv, "")
	resp, err := hc.Post(url+"/v1/groups", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d after retries", resp.StatusCode)
	}
	if len(*slept) != 2 || (*slept)[0] < 2*time.Second || (*slept)[1] < 2*time.Second {
		t.Errorf("waits %v, want two of at least Retry-After (2s)", *slept)
	}
	for i, b := range srv.bodies {
		if b != `{"a":1}` {
			t.Errorf("attempt %d sent body %q", i, b)
		}
	}
}

func TestRetryIsBounded(t *testing.T) {
	t.Run("attempts", func(t *testing.T) {
		srv := &retryServer{statuses: []int{503, 503, 503, 503, 503, 503, 503, 503}}
		hc, slept, url := newRetryClient(t, srv, "")
		resp, err := hc.Get(url + "/v1/groups")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || len(srv.bodies) != maxRetries+1 {
			t.Errorf("status %d after %d attempts, want 503 after %d", resp.StatusCode, len(srv.bodies), maxRetries+1)
		}
		for i := 1; i < len(*slept); i++ {
			if (*slept)[i] > maxRetryWait {
				t.Errorf("wait %v beyond the bound", (*slept)[i])
			}
		}
	})
	t.Run("long Retry-After", func(t *testing.T) {
		srv := &retryServer{statuses: []int{429}, header: http.Header{"Retry-After": {"600"}}}
		hc, slept, url := newRetryClient(t, srv, "")
		resp, err := hc.Get(url + "/v1/groups")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 429 || len(*slept) != 0 {
			t.Errorf("status %d after waiting %v: a 10-minute Retry-After must fail at once", resp.StatusCode, *slept)
		}
	})
	t.Run("streamed body", func(t *testing.T) {
		srv := &retryServer{statuses: []int{503}}
		hc, _, url := newRetryClient(t, srv, "")
		pr, pw := io.Pipe()
		go func() { pw.Write([]byte("stream")); pw.Close() }()
		req, _ := http.NewRequest(http.MethodPut, url+"/v1/uploads/x", pr)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || len(srv.bodies) != 1 {
			t.Errorf("a body that cannot be replayed was retried: %d attempts", len(srv.bodies))
		}
	})
	t.Run("no retry on other errors", func(t *testing.T) {
		srv := &retryServer{statuses: []int{500, 400}}
		hc, _, url := newRetryClient(t, srv, "")
		resp, err := hc.Get(url + "/v1/groups")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 500 || len(srv.bodies) != 1 {
			t.Errorf("a 500 was retried")
		}
	})
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"3": 3 * time.Second, "0": 0, now.Add(10 * time.Second).Format(http.TimeFormat): 10 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat): 0,
	} {
		if got, ok := retryAfter(v, now); !ok || got != want {
			t.Errorf("retryAfter(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-1", "soon"} {
		if _, ok := retryAfter(v, now); ok {
			t.Errorf("retryAfter(%q) accepted", v)
		}
	}
}

// TestLogRequestsCarryToken: a signed-in client's log requests name its
// account, so they count against the account's budget, not its address's.
func TestLogRequestsCarryToken(t *testing.T) {
	srv := &retryServer{}
	hc, _, url := newRetryClient(t, srv, "tok")
	for _, p := range []string{"/v1/log/checkpoint", "/v1/log/proofs", "/v1/groups"} {
		resp, err := hc.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if srv.auth[0] != "Bearer tok" || srv.auth[1] != "Bearer tok" || srv.auth[2] != "" {
		t.Errorf("Authorization headers %q: want the token on log routes only", srv.auth)
	}
}
