package server_test

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/server"
)

// TestUnreadBodiesCutOff: a request whose handler answers without reading
// the body (no token, an unknown path, a method the route does not take, a
// GET that takes no body) still has a body net/http drains before it
// answers, to keep the connection. A client that trickles that body must be
// cut off like any other slow body, and needs no account to try.
func TestUnreadBodiesCutOff(t *testing.T) {
	const progressTimeout = 500 * time.Millisecond
	w := newResourceWorld(t, func(c *server.Config) {
		c.ProgressTimeout = progressTimeout
		c.JSONBodyTimeout = 800 * time.Millisecond
	})
	tmp := filepath.Dir(t.TempDir())
	u, err := url.Parse(w.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	groupPath := "/v1/groups/" + w.g.String()
	heads := []string{
		// No token: the auth check answers 401 first.
		fmt.Sprintf("POST %s/resources HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n", groupPath, u.Host),
		// A route the router does not know.
		fmt.Sprintf("POST /v1/nowhere HTTP/1.1\r\nHost: %s\r\nContent-Length: 10000\r\n\r\n", u.Host),
		// A GET with a body, authenticated.
		fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 10000\r\n\r\n", groupPath, u.Host, w.writer.token),
		// A method the route does not take.
		fmt.Sprintf("PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 10000\r\n\r\n", groupPath, u.Host),
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	socketsBefore, _ := serverFDs(t, port, tmp)
	for range 25 {
		for _, head := range heads {
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write([]byte(head)); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				<-stop
				conn.Close()
			})
			wg.Go(func() { // one byte every 50 ms: 10000 bytes take minutes
				for {
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			})
			wg.Go(func() {
				io.Copy(io.Discard, conn)
				conn.Close()
			})
		}
	}
	var sockets int
	for deadline := time.Now().Add(10 * time.Second); ; {
		if sockets, _ = serverFDs(t, port, tmp); sockets <= socketsBefore || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sockets > socketsBefore {
		t.Fatalf("clients trickling bodies nobody reads still hold %d server sockets (baseline %d)", sockets-socketsBefore, socketsBefore)
	}
}
