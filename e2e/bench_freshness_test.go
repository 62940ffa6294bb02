package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferd"
)

// BenchmarkFreshnessShare measures, in one run, how much of a removal and of
// a small read is spent proving freshness and the log (issue 12's target:
// at most 10% on the removal and small-read paths with a fresh checkpoint
// cached). The client talks to cofferd through a proxy that times every
// request as the client sees it; the log's requests (checkpoint,
// consistency, inclusion and map proofs) are summed apart. That sum bounds
// freshness's share from above: it also holds the inclusion proof of an
// own commit, which the path had before freshness. A ratio from one run
// does not move with the machine's load as two timings from two runs do.
func BenchmarkFreshnessShare(b *testing.B) {
	ctx := context.Background()
	srv := MustServerWith(b, func(c *cofferd.Config) {
		c.AccountRateLimit, c.LogRateLimit = 10_000_000, 10_000_000
	})
	proxy, times := timingProxy(b, srv.URL())
	ks := NewCanaryKeyStore()
	opts := &clientlib.Options{TrustOnFirstUse: true}
	// Registered directly (the login statement names the server's
	// origin), then used through the proxy with the session it holds.
	if err := MustNewClientWith(b, srv.URL(), ks, opts).Register(ctx, "owner"); err != nil {
		b.Fatal(err)
	}
	owner := MustNewClientWith(b, proxy, ks, opts)
	const n = 1000
	handles := mustBulkAccounts(b, srv, "m", n)
	g := mustGroup(b, owner, "big", nil)
	if err := owner.AddMembers(ctx, g, handles, coffer.RoleReader); err != nil {
		b.Fatal(err)
	}
	next := 0
	b.Run(fmt.Sprintf("remove/members=%d", n), func(b *testing.B) {
		times.reset()
		for range b.N {
			if next == len(handles) {
				b.Skip("ran out of members to remove")
			}
			if err := owner.RemoveMember(ctx, g, handles[next]); err != nil {
				b.Fatal(err)
			}
			next++
		}
		times.report(b)
	})
	b.Run("small-read", func(b *testing.B) {
		data := randomContent(b, 1024)
		r := mustPut(b, owner, g, "small", data)
		mustReadResource(b, owner, g, r.ID) // the view and the version's log checks are cached
		buf := make([]byte, 4096)
		times.reset()
		b.ResetTimer()
		for range b.N {
			rr, err := owner.Get(ctx, g, r.ID)
			if err != nil {
				b.Fatal(err)
			}
			k, err := io.ReadFull(rr, buf[:len(data)])
			rr.Close()
			if err != nil || k != len(data) {
				b.Fatalf("read %d bytes: %v", k, err)
			}
		}
		times.report(b)
	})
}

// routeTimes sums the time of the requests a timing proxy forwarded, the
// log's apart.
type routeTimes struct {
	all, log            atomic.Int64 // nanoseconds
	requests, logNumber atomic.Int64
}

func (t *routeTimes) reset() {
	t.all.Store(0)
	t.log.Store(0)
	t.requests.Store(0)
	t.logNumber.Store(0)
}

// report prints, per operation, the log's requests and their time, and
// that time as a share of the operation's.
func (t *routeTimes) report(b *testing.B) {
	if b.N == 0 {
		return
	}
	op := b.Elapsed() / time.Duration(b.N)
	logTime := time.Duration(t.log.Load()) / time.Duration(b.N)
	b.ReportMetric(float64(t.all.Load())/1e6/float64(b.N), "requests-ms/op")
	b.ReportMetric(float64(t.requests.Load())/float64(b.N), "requests/op")
	b.ReportMetric(float64(t.logNumber.Load())/float64(b.N), "log-requests/op")
	b.ReportMetric(float64(logTime.Microseconds())/1000, "log-ms/op")
	b.ReportMetric(float64(logTime)/float64(op), "log-share")
	b.ReportMetric(0.10, "target-share")
}

// timingProxy forwards to target and times each request from its arrival
// to the end of its answer.
func timingProxy(tb testing.TB, target string) (string, *routeTimes) {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	t := &routeTimes{}
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rp.ServeHTTP(w, r)
		d := int64(time.Since(start))
		t.all.Add(d)
		t.requests.Add(1)
		if strings.HasPrefix(r.URL.Path, "/v1/log/") {
			t.log.Add(d)
			t.logNumber.Add(1)
		}
	}))
	tb.Cleanup(ps.Close)
	return ps.URL, t
}
