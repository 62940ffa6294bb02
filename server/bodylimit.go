package server

import (
	"net/http"

	"golang.org/x/sync/semaphore"
)

// Large request bodies (commits, up to MaxCommitBody, which carry one wrap
// per member) are read whole into memory, decoded and verified. Without a
// bound, sixteen concurrent 32 MiB commits hold over a gigabyte. bodyBudget
// is a semaphore on the bytes such requests may hold at once
// (Config.MaxInflightBodyBytes): a request takes its declared length (or
// the cap, when it does not declare one) before its body is read, and gives
// it back when its answer is written. Requests over the budget wait their
// turn, up to their own deadline; small JSON requests are not counted.

// boundBody holds max bytes of the budget (or the request's declared length,
// if smaller) while next serves the request.
func (s *Server) boundBody(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := max
			if r.ContentLength >= 0 && r.ContentLength < max {
				n = r.ContentLength
			}
			n = min(n, s.cfg.MaxInflightBodyBytes)
			if err := s.bodyBudget.Acquire(r.Context(), n); err != nil {
				Error(w, r, err)
				return
			}
			s.ops.bodyBytesInFlight.Add(float64(n))
			defer func() {
				s.ops.bodyBytesInFlight.Sub(float64(n))
				s.bodyBudget.Release(n)
			}()
			next.ServeHTTP(w, r)
		})
	}
}

func newBodyBudget(n int64) *semaphore.Weighted { return semaphore.NewWeighted(n) }
