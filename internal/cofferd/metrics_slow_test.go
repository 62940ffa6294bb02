package cofferd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
)

// TestMetricsListenerClosesSlowClients: whoever reaches -metrics-addr
// cannot hold its connections: one that trickles a body nobody reads (which
// net/http drains before answering) and one that sits idle after a scrape
// are both closed by the server.
func TestMetricsListenerClosesSlowClients(t *testing.T) {
	defer cofferd.SetMetricsTimeoutForTest(300 * time.Millisecond)()
	dbURL := pgtest.NewURL(t)
	d := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := cofferd.NewMain()
	m.Stderr = io.Discard
	m.Listener = ln
	m.Config = cofferd.Config{
		Addr: ln.Addr().String(), Origins: "http://" + ln.Addr().String(), DatabaseURL: dbURL,
		JWTKeyFiles: cofferdtest.WriteKey(t, d, "jwt.key"), LogKeyFile: cofferdtest.WriteKey(t, d, "log.key"), LogOrigin: "coffer.test",
		DataDir: d, BlobDir: filepath.Join(d, "blobs"), LogLevel: "info", MetricsAddr: "127.0.0.1:0",
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	u, err := url.Parse(m.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}

	// closed reports whether the server ends conn within a few seconds.
	closed := func(conn net.Conn) bool {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, conn)
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}

	trickler, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer trickler.Close()
	fmt.Fprintf(trickler, "POST /metrics HTTP/1.1\r\nHost: %s\r\nContent-Length: 10000\r\n\r\n", u.Host)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			if _, err := trickler.Write([]byte(" ")); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	if !closed(trickler) {
		t.Errorf("a connection trickling a body to the metrics listener is still open")
	}

	idle, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /metrics HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
	if !closed(idle) {
		t.Errorf("an idle keep-alive connection to the metrics listener is still open")
	}
}
