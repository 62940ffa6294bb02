package server

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cofferhq/coffer"
)

// Drain starts a graceful stop. From now on the server answers new work
// with 503 unavailable (and Connection: close), which clients retry, and
// /readyz goes red so that a load balancer stops sending. Requests already
// being served run to their end, and so do uploads already started: the
// requests that continue one (/v1/uploads/{id}/...) are still served, since
// an upload is a content stream followed by a finalize. cofferd calls Drain
// on SIGTERM and shuts the listener once InFlight stays zero for a moment
// or -shutdown-timeout has passed (Quiet).
func (s *Server) Drain() { s.draining.Store(true) }

// Quiet reports whether no request is being served and none ended in the
// last d.
func (s *Server) Quiet(d time.Duration) bool {
	return s.inFlight.Load() == 0 && time.Since(time.Unix(0, s.lastDone.Load())) >= d
}

func (s *Server) refuseWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() && !strings.HasPrefix(r.URL.Path, "/v1/uploads/") {
			w.Header().Set("Connection", "close")
			Error(w, r, coffer.Errorf(coffer.EUNAVAILABLE, "the server is shutting down: retry"))
			return
		}
		s.inFlight.Add(1)
		defer func() {
			s.lastDone.Store(time.Now().UnixNano())
			s.inFlight.Add(-1)
		}()
		next.ServeHTTP(w, r)
	})
}

// MetricsHandler serves the server's Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}

// requestID keeps a caller's X-Request-Id (a proxy's or a client's), so one
// id follows a request across hops, if it is short and plain enough to log
// safely (a UUID or a hex id); otherwise it makes a fresh one.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 64 {
		ok := true
		for _, c := range given {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				ok = false
				break
			}
		}
		if ok {
			return given
		}
	}
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
