package cofferd

import "time"

// SetMetricsTimeoutForTest shortens the metrics listener's timeouts and
// returns what restores them.
func SetMetricsTimeoutForTest(d time.Duration) (restore func()) {
	old := metricsTimeout
	metricsTimeout = d
	return func() { metricsTimeout = old }
}
