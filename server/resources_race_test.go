package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// TestReadsRacingWriters: readers download a resource while a writer
// replaces, deletes and re-creates it as fast as it can. A read that a
// write superseded answers 404 or 412 (or the newer version), never 500,
// and the server never logs a missing blob, which would claim damage.
func TestReadsRacingWriters(t *testing.T) {
	w := newResourceWorld(t, nil)
	id := coffer.NewResourceID()
	path := w.ts.URL + w.resourcePath(id) + "/content"

	var (
		stop     atomic.Bool
		mu       sync.Mutex
		statuses = map[int]int{}
		bad      []string
		wg       sync.WaitGroup
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	read := func(ifMatch string) (etag string) {
		req, _ := http.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+w.reader.token)
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		resp, err := client.Do(req)
		if err != nil {
			mu.Lock()
			bad = append(bad, err.Error())
			mu.Unlock()
			return ""
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		statuses[resp.StatusCode]++
		switch resp.StatusCode {
		case 200:
			v := strings.Trim(resp.Header.Get("ETag"), `"`)
			if !strings.HasPrefix(string(body), "version "+v+" ") {
				bad = append(bad, fmt.Sprintf("ETag %s with content %q", resp.Header.Get("ETag"), body))
			}
			return resp.Header.Get("ETag")
		case 404, 412:
		default:
			bad = append(bad, fmt.Sprintf("status %d: %s", resp.StatusCode, body))
		}
		return ""
	}
	for range 4 {
		wg.Go(func() {
			etag := ""
			for !stop.Load() {
				// Alternate plain reads with reads pinned to the version
				// last seen, as a client that verified its header does.
				if e := read(""); e != "" {
					etag = e
				}
				read(etag)
			}
		})
	}

	for round := range 12 {
		up := w.start(t, w.writer, id)
		data := []byte(fmt.Sprintf("version 1 of round %d", round))
		w.put(t, w.writer, up, data, 200)
		w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, data, nil), 201)
		for v := uint64(2); v <= 5; v++ {
			var next api.Upload
			w.exchange(t, w.req(t, w.writer, "POST", w.resourcePath(id)+"/versions", nil, "If-Match", fmt.Sprintf(`"%d"`, v-1)),
				versionsT, 201).Decode(t, &next)
			data := []byte(fmt.Sprintf("version %d of round %d", v, round))
			w.put(t, w.writer, next, data, 200)
			w.finalize(t, w.writer, next, finalizeRequest(w.writer, next, data, nil), 201)
		}
		w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(id), nil), resourceT, 204)
	}
	stop.Store(true)
	wg.Wait()

	t.Logf("reader statuses: %v", statuses)
	for _, b := range bad {
		t.Error(b)
	}
	if statuses[200] == 0 {
		t.Error("no read succeeded: the race was not exercised")
	}
	log := w.ts.Log.String()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "missing") || strings.Contains(line, "level=ERROR") {
			t.Errorf("server log: %s", line)
		}
	}
}
