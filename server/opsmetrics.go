package server

import (
	"errors"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cofferhq/coffer"
)

// opsMetrics are the server's operational metrics beyond per-route
// request counts (metrics.go): what an operator alerts on. Every label has a
// small fixed set of values. docs/OPERATIONS.md lists them with alerts.
type opsMetrics struct {
	rateLimitedTotal  *prometheus.CounterVec
	bodyBytesInFlight prometheus.Gauge
	authFailures      *prometheus.CounterVec
	verifierRejects   *prometheus.CounterVec
	uploadsInFlight   prometheus.Gauge
	uploadBytes       prometheus.Counter
}

// Auth failure reasons: a fixed set, so the label stays bounded.
const (
	authMissingToken   = "missing_token"
	authInvalidToken   = "invalid_token"
	authOrigin         = "origin"
	authUnknownAccount = "unknown_account"
	authChallenge      = "challenge"
	authSignature      = "signature"
	authRefresh        = "refresh"
)

func newOpsMetrics(reg prometheus.Registerer) *opsMetrics {
	m := &opsMetrics{
		rateLimitedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_rate_limited_total", Help: "Requests refused by a rate limit, by limit (auth, log, api).",
		}, []string{"limit"}),
	}
	m.bodyBytesInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "coffer_request_body_bytes_in_flight", Help: "Bytes of large request bodies (commits) held in memory now, bounded by the body budget.",
	})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coffer_auth_failures_total", Help: "Refused authentications, by reason (missing_token, invalid_token, origin, unknown_account, challenge, signature, refresh).",
	}, []string{"reason"})
	m.verifierRejects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coffer_verifier_rejections_total", Help: "Writes the server's verifier refused, by the rule that failed.",
	}, []string{"rule"})
	m.uploadsInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "coffer_uploads_in_flight", Help: "Resource content uploads streaming now.",
	})
	m.uploadBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coffer_upload_bytes_total", Help: "Resource content bytes received.",
	})
	reg.MustRegister(m.rateLimitedTotal, m.bodyBytesInFlight, m.authFailures, m.verifierRejects, m.uploadsInFlight, m.uploadBytes)
	for _, r := range []string{authMissingToken, authInvalidToken, authOrigin, authUnknownAccount, authChallenge, authSignature, authRefresh} {
		m.authFailures.WithLabelValues(r) // present at 0, so rate() works from the start
	}
	return m
}

func (m *opsMetrics) rateLimited(scope string) { m.rateLimitedTotal.WithLabelValues(scope).Inc() }

func (m *opsMetrics) authFailed(reason string) { m.authFailures.WithLabelValues(reason).Inc() }

// countUpload tracks a content upload: in flight while its body streams,
// and its bytes as they arrive.
func (m *opsMetrics) countUpload(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.uploadsInFlight.Inc()
		defer m.uploadsInFlight.Dec()
		r.Body = &countingBody{ReadCloser: r.Body, c: m.uploadBytes}
		next.ServeHTTP(w, r)
	})
}

type countingBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(float64(n))
	return n, err
}

// serverKey carries the *Server in a request's context, for Error.
type serverKey struct{}

// countRejection counts a verifier rule failure behind err, if any.
func countRejection(r *http.Request, err error) {
	var ce *coffer.Error
	if !errors.As(err, &ce) || ce.Rule == "" {
		return
	}
	if s, ok := r.Context().Value(serverKey{}).(*Server); ok {
		s.ops.verifierRejects.WithLabelValues(ce.Rule).Inc()
	}
}
