package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// opsMetrics are the server's operational metrics beyond per-route
// request counts (metrics.go): what an operator alerts on. Every label has a
// small fixed set of values. docs/OPERATIONS.md lists them with alerts.
type opsMetrics struct {
	rateLimitedTotal *prometheus.CounterVec
}

func newOpsMetrics(reg prometheus.Registerer) *opsMetrics {
	m := &opsMetrics{
		rateLimitedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_rate_limited_total", Help: "Requests refused by a rate limit, by limit (auth, log, api).",
		}, []string{"limit"}),
	}
	reg.MustRegister(m.rateLimitedTotal)
	return m
}

func (m *opsMetrics) rateLimited(scope string) { m.rateLimitedTotal.WithLabelValues(scope).Inc() }
