package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/server"
)

// serverFDs counts this process's open descriptors of the server: sockets
// whose local port is port (the listener and accepted connections, not the
// test's own client sockets) and files under dir (blobs being written or
// read).
func serverFDs(tb testing.TB, port int, dir string) (sockets, files int) {
	tb.Helper()
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			_, p, ok := strings.Cut(f[1], ":")
			if n, err := strconv.ParseInt(p, 16, 32); ok && err == nil && int(n) == port {
				inodes[f[9]] = true
			}
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if in, ok := strings.CutPrefix(target, "socket:["); ok && inodes[strings.TrimSuffix(in, "]")] {
			sockets++
		} else if strings.HasPrefix(target, dir) {
			files++
		}
	}
	return sockets, files
}

// TestSlowClientsCutOff opens hundreds of connections that trickle request
// bodies or stop reading downloads. The server cuts every one off within a
// bounded time (the progress and JSON body deadlines), and its sockets and
// blob files return to their baseline.
func TestSlowClientsCutOff(t *testing.T) {
	const (
		progressTimeout = 500 * time.Millisecond
		jsonTimeout     = 800 * time.Millisecond
	)
	w := newResourceWorld(t, func(c *server.Config) {
		c.ProgressTimeout = progressTimeout
		c.JSONBodyTimeout = jsonTimeout
	})
	tmp := filepath.Dir(t.TempDir()) // the blob store's directory is under it
	u, err := url.Parse(w.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	download := w.mustResource(t, w.writer, big)
	up := w.start(t, w.writer, coffer.NewResourceID())
	http0 := func(method, path, ctype string, length int) string {
		s := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n", method, path, u.Host, w.writer.token)
		if ctype != "" {
			s += fmt.Sprintf("Content-Type: %s\r\nContent-Length: %d\r\n", ctype, length)
		}
		return s + "\r\n"
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// dial opens a connection, sends head, then calls body until it fails
	// or the test stops.
	dial := func(rcvbuf int, head string, body func(net.Conn) error, read bool) net.Conn {
		d := net.Dialer{}
		if rcvbuf > 0 {
			d.Control = func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
				})
			}
		}
		conn, err := d.Dial("tcp", u.Host)
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
		if body != nil {
			wg.Go(func() {
				for body(conn) == nil {
					select {
					case <-stop:
						return
					default:
					}
				}
			})
		}
		if read {
			// Reads the answer, if any, and closes the connection once
			// the server ended it.
			wg.Go(func() {
				io.Copy(io.Discard, conn)
				conn.Close()
			})
		}
		return conn
	}
	pause := func(d time.Duration) error {
		select {
		case <-stop:
			return net.ErrClosed
		case <-time.After(d):
			return nil
		}
	}
	trickle := func(conn net.Conn) error {
		if _, err := conn.Write([]byte(" ")); err != nil {
			return err
		}
		return pause(50 * time.Millisecond)
	}
	// steady sends 64 KiB of JSON whitespace every 100 ms: five times what
	// the progress deadline asks, and still twice too slow for the JSON
	// deadline of a 1 MB body.
	var steadySent [20]atomic.Int64
	steady := func(sent *atomic.Int64) func(net.Conn) error {
		return func(conn net.Conn) error {
			n, err := conn.Write(bytes.Repeat([]byte(" "), 64<<10))
			if sent.Add(int64(n)); err != nil {
				return err
			}
			return pause(100 * time.Millisecond)
		}
	}

	socketsBefore, filesBefore := serverFDs(t, port, tmp)
	start := time.Now()
	groupPath := "/v1/groups/" + w.g.String()
	var stalled []net.Conn
	for range 100 {
		dial(0, http0("PUT", "/v1/uploads/"+up.ID.String()+"/content", "application/octet-stream", 1<<30), trickle, true)
		dial(0, http0("POST", groupPath+"/resources", "application/json", 10_000), trickle, true)
	}
	// The JSON bodies that keep a steady pace are cut off by the JSON
	// deadline; arriving whole, they would be answered "empty".
	for i := range steadySent {
		dial(0, http0("POST", groupPath+"/resources", "application/json", 1_000_000), steady(&steadySent[i]), true)
	}
	for range 40 {
		// A small receive buffer, never read: the download stalls once the
		// socket buffers are full.
		stalled = append(stalled, dial(4096, http0("GET", groupPath+"/resources/"+download.String()+"/content", "", 0), nil, false))
	}

	t.Logf("dialed in %v", time.Since(start))
	peak := 0 // only logged: how many are open at once depends on the machine
	var sockets, files int
	for deadline := time.Now().Add(15 * time.Second); ; {
		sockets, files = serverFDs(t, port, tmp)
		peak = max(peak, sockets)
		if sockets <= socketsBefore && files <= filesBefore || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("after %v: server sockets: %d before, peak %d, %d after; blob files open: %d before, %d after",
		time.Since(start), socketsBefore, peak, sockets, filesBefore, files)
	if sockets > socketsBefore || files > filesBefore {
		t.Fatalf("slow clients still hold %d server sockets and %d blob files (baseline %d and %d)",
			sockets-socketsBefore, files-filesBefore, socketsBefore, filesBefore)
	}
	// The steady JSON bodies were cut off long before their end.
	for i := range steadySent {
		if n := steadySent[i].Load(); n >= 1_000_000 {
			t.Errorf("a steady 1 MB JSON body was sent whole (%d bytes): the JSON deadline did not cut it off", n)
			break
		}
	}
	// Each stalled download was cut off: what is left to read is less
	// than the resource.
	for _, c := range stalled {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if n >= int64(len(big)) || os.IsTimeout(err) {
			t.Errorf("a stalled download was not cut off: %d bytes left to read, %v", n, err)
			break
		}
	}
	// No upload was recorded from a trickled body.
	if got, err := w.ts.DB.Upload(t.Context(), w.writer.acct.ID, up.ID); err != nil || got.BlobKey != "" {
		t.Errorf("upload after the tricklers: %+v, %v", got, err)
	}
}

// TestDeadlinesSpareHonestClients: the deadlines never cut off a client
// that keeps up. A keep-alive connection idle for longer than the progress
// timeout serves its next request, and uploads and downloads at full speed
// are untouched.
func TestDeadlinesSpareHonestClients(t *testing.T) {
	w := newResourceWorld(t, func(c *server.Config) {
		c.ProgressTimeout = 200 * time.Millisecond
		c.JSONBodyTimeout = 300 * time.Millisecond
	})
	data := bytes.Repeat([]byte("honest "), 300_000) // 2 MB
	id := w.mustResource(t, w.writer, data)
	reused := 0
	for i := range 3 {
		if i > 0 {
			time.Sleep(500 * time.Millisecond) // idle past every deadline
		}
		req := w.req(t, w.reader, "GET", w.resourcePath(id)+"/content", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) {
				if ci.Reused {
					reused++
				}
			},
		}))
		r := w.exchange(t, req, contentT, 200)
		if !bytes.Equal(r.Body, blobOf(data).blob) {
			t.Fatalf("download %d differs", i)
		}
		w.ex(t, w.reader, "GET", resourceT, w.resourcePath(id), nil, 200)
	}
	if reused == 0 {
		t.Error("no request reused a kept-alive connection: the idle case was not exercised")
	}
}
