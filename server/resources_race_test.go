package server_test

import (
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/server"
)

// TestReadsRacingWriters: readers download a resource while a writer
// replaces, deletes and re-creates it as fast as it can. A read that a
// write superseded answers 404 or 412 (or the newer version), never 500,
// and the server never logs a missing blob, which would claim damage. (A
// deleted id is never created again, so each round uses a new id.)
func TestReadsRacingWriters(t *testing.T) {
	// Content in blobs and kept in rows (see server/inline.go).
	for _, tc := range []struct {
		name      string
		inlineMax int64
	}{{"blobs", -1}, {"rows", 0}} {
		t.Run(tc.name, func(t *testing.T) { testReadsRacingWriters(t, tc.inlineMax) })
	}
}

func testReadsRacingWriters(t *testing.T, inlineMax int64) {
	// Superseded blobs go at once, so that readers do meet missing blobs.
	w := newResourceWorld(t, func(c *server.Config) { c.SupersededBlobGrace, c.InlineContentMax = -1, inlineMax })
	var current atomic.Pointer[string]
	newID := func() coffer.ResourceID {
		id := coffer.NewResourceID()
		p := w.ts.URL + w.resourcePath(id) + "/content"
		current.Store(&p)
		return id
	}
	id := newID()

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
		req, _ := http.NewRequest("GET", *current.Load(), nil)
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
		if round > 0 {
			id = newID()
		}
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
		w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(id), w.deleteBody(t, w.writer, id, 5)), resourceT, 204)
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

// TestSupersededBlobGrace: the blob of a replaced or deleted version stays
// for the grace period, for downloads that opened it just before (an S3
// backend reads each range with a new request), and is deleted after it.
func TestSupersededBlobGrace(t *testing.T) {
	w := newResourceWorld(t, func(c *server.Config) {
		c.SupersededBlobGrace = 300 * time.Millisecond
		c.InlineContentMax = -1 // small content in blobs too
	})
	dir := filepath.Dir(t.TempDir()) // the blob store's directory is under it
	exists := func(key string) bool {
		found := false
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == key {
				found = true
			}
			return nil
		})
		return found
	}
	blobKey := func(id coffer.ResourceID) string {
		var key string
		if err := w.ts.Pool.QueryRow(t.Context(), `SELECT blob_key FROM resources WHERE group_id = $1 AND id = $2`, w.g, id).Scan(&key); err != nil {
			t.Fatal(err)
		}
		return key
	}
	id := w.mustResource(t, w.writer, []byte("version 1"))
	v1 := blobKey(id)
	var up api.Upload
	w.exchange(t, w.req(t, w.writer, "POST", w.resourcePath(id)+"/versions", nil, "If-Match", `"1"`), versionsT, 201).Decode(t, &up)
	w.put(t, w.writer, up, []byte("version 2"), 200)
	w.finalize(t, w.writer, up, finalizeRequest(w.writer, up, []byte("version 2"), nil), 201)
	v2 := blobKey(id)
	w.exchange(t, w.req(t, w.writer, "DELETE", w.resourcePath(id), w.deleteBody(t, w.writer, id, 2)), resourceT, 204)
	if !exists(v1) || !exists(v2) {
		t.Fatalf("superseded blobs deleted at once: version 1 %v, version 2 %v", exists(v1), exists(v2))
	}
	for deadline := time.Now().Add(10 * time.Second); exists(v1) || exists(v2); {
		if time.Now().After(deadline) {
			t.Fatalf("superseded blobs still there long after the grace: version 1 %v, version 2 %v", exists(v1), exists(v2))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
