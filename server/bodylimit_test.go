package server_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/server"
)

func withBodyBudget(n int64) serverOption {
	return func(c *server.Config, _ *server.Services) { c.MaxInflightBodyBytes = n }
}

// bodyBytesInFlight reads coffer_request_body_bytes_in_flight.
func bodyBytesInFlight(t *testing.T, ts *testServer) string {
	t.Helper()
	body := ts.Do(t, http.MethodGet, "/metrics", "", nil).Body
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "coffer_request_body_bytes_in_flight "); ok {
			return v
		}
	}
	t.Fatal("no coffer_request_body_bytes_in_flight metric")
	return ""
}

// TestLargeBodiesBoundedInFlight: commit bodies wait for room in the body
// budget before they are read, so concurrent large commits cannot hold more
// memory than the budget.
func TestLargeBodiesBoundedInFlight(t *testing.T) {
	ts := MustServer(t, withBodyBudget(1000))
	_, _, tok := MustAccount(t, ts, "alice")

	// The first commit declares 1000 bytes, the whole budget, and sends
	// them slowly.
	pr, pw := io.Pipe()
	first, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/groups", pr)
	first.ContentLength = 1000
	first.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	first.Header.Set("Content-Type", "application/json")
	firstDone := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(first)
		if err != nil {
			firstDone <- 0
			return
		}
		resp.Body.Close()
		firstDone <- resp.StatusCode
	}()
	pw.Write([]byte("{"))
	for deadline := time.Now().Add(10 * time.Second); bodyBytesInFlight(t, ts) != "1000"; {
		if time.Now().After(deadline) {
			t.Fatal("the first commit never took its share of the budget")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The second must wait until the first is done.
	second, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/groups", bytes.NewReader(bytes.Repeat([]byte{' '}, 500)))
	second.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	second.Header.Set("Content-Type", "application/json")
	secondDone := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(second)
		if err != nil {
			secondDone <- 0
			return
		}
		resp.Body.Close()
		secondDone <- resp.StatusCode
	}()
	select {
	case code := <-secondDone:
		t.Fatalf("the second commit was served (%d) while the first held the whole budget", code)
	case <-time.After(300 * time.Millisecond):
	}
	if got := bodyBytesInFlight(t, ts); got != "1000" {
		t.Fatalf("body bytes in flight %s, want 1000 (the budget)", got)
	}
	pw.Write(bytes.Repeat([]byte{' '}, 998))
	pw.Write([]byte("}"))
	pw.Close()
	if code := <-firstDone; code == 0 {
		t.Fatal("the first commit failed to send")
	}
	select {
	case code := <-secondDone:
		if code == 0 || code == http.StatusServiceUnavailable {
			t.Fatalf("the second commit after the first: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second commit never got its turn")
	}
	if got := bodyBytesInFlight(t, ts); got != "0" {
		t.Errorf("body bytes in flight %s after both, want 0", got)
	}
}
