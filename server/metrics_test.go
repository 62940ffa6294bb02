package server_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// metricSeries returns the coffer_http series of a /metrics body (name and
// labels, without values) and the byte size of their lines.
func metricSeries(tb testing.TB, ts *testServer) (series []string, size int) {
	tb.Helper()
	r := ts.Do(tb, http.MethodGet, "/metrics", "", nil)
	r.Check(tb, 200, "")
	for _, line := range strings.Split(string(r.Body), "\n") {
		if !strings.HasPrefix(line, "coffer_http_") {
			continue
		}
		size += len(line)
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			line = line[:i]
		}
		series = append(series, line)
	}
	sort.Strings(series)
	return series, size
}

// TestMetricsLabelsBounded sends thousands of invented methods and paths:
// the set of series in /metrics stays the one a single such request made,
// so /metrics keeps its size (only counter digits grow).
func TestMetricsLabelsBounded(t *testing.T) {
	ts := MustServer(t)
	send := func(method, path string) {
		req, err := http.NewRequest(method, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := ts.Send(t, req)
		if r.Status >= 500 {
			t.Fatalf("%s %s: status %d", method, path, r.Status)
		}
	}
	// One of each kind first, so that every series the flood can touch
	// already exists.
	send("FLOOD0", "/healthz")
	send("FLOOD0", "/nowhere/0")
	send(http.MethodGet, "/nowhere/0")
	send(http.MethodGet, "/v1/accounts/0")
	send(http.MethodPost, "/v1/nowhere/0")
	metricSeries(t, ts) // its own series exists from now on
	before, sizeBefore := metricSeries(t, ts)

	for i := 1; i <= 1500; i++ {
		send(fmt.Sprintf("FLOOD%d", i), "/healthz")
		send(fmt.Sprintf("FLOOD%d", i), fmt.Sprintf("/nowhere/%d", i))
		send(http.MethodGet, fmt.Sprintf("/nowhere/%d", i))
		send(http.MethodGet, fmt.Sprintf("/v1/accounts/%d", i))
		send(http.MethodPost, fmt.Sprintf("/v1/nowhere/%d", i))
	}
	after, sizeAfter := metricSeries(t, ts)
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("the flood made new series: %d before, %d after", len(before), len(after))
		old := make(map[string]bool, len(before))
		for _, s := range before {
			old[s] = true
		}
		for _, s := range after {
			if !old[s] {
				t.Errorf("new series: %s", s)
				break
			}
		}
	}
	// Counters gain digits (1 -> 1501), histograms sums and counts too; a
	// new series would add far more than this slack.
	if sizeAfter > sizeBefore+8*len(before) {
		t.Errorf("the coffer_http lines of /metrics grew from %d to %d bytes", sizeBefore, sizeAfter)
	}
	for _, s := range after {
		if strings.Contains(s, `method="FLOOD`) {
			t.Fatalf("a client-chosen method became a label: %s", s)
		}
	}
}
