package cofferd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// metricsListener serves /metrics on -metrics-addr, apart from the API, so
// that it can stay on a private network while the API faces the internet.
type metricsListener struct {
	ln   net.Listener
	http *http.Server
	done chan struct{}
}

// listenMetrics takes the port at once, with the API's, before any setup.
func listenMetrics(addr string) (*metricsListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on -metrics-addr %s: %w", addr, err)
	}
	return &metricsListener{ln: ln}, nil
}

// MetricsURL is the URL of the separate metrics listener, or "".
func (m *Main) MetricsURL() string {
	if m.metrics == nil {
		return ""
	}
	return "http://" + m.metrics.ln.Addr().String() + "/metrics"
}

// metricsTimeout bounds each request on the metrics listener, and how long
// a connection may sit idle there.
var metricsTimeout = 30 * time.Second

func (l *metricsListener) serve(h http.Handler, logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	// Scrapes are small and quick: a connection that trickles a request
	// (or a body net/http drains), reads the answer slowly or sits idle is
	// closed, so nobody who reaches the port can hold its sockets.
	l.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: metricsTimeout, WriteTimeout: metricsTimeout, IdleTimeout: metricsTimeout}
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		if err := l.http.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("metrics listener stopped", "err", err)
		}
	}()
	logger.Info("serving metrics", "url", "http://"+l.ln.Addr().String()+"/metrics")
}

func (l *metricsListener) close() error {
	if l.http == nil {
		return l.ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.http.Shutdown(ctx)
	<-l.done
	return err
}
