package server

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cofferhq/coffer"
)

// Drain makes the server answer every new request with 503 unavailable
// (and Connection: close), while requests already being served run to
// their end. cofferd calls it on SIGTERM, before http.Server.Shutdown:
// Shutdown closes the listeners, but a request can still arrive on a
// connection that was already open, and it must be refused in a way that
// clients retry elsewhere rather than fail.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) refuseWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
			Error(w, r, coffer.Errorf(coffer.EUNAVAILABLE, "the server is shutting down: retry"))
			return
		}
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
