package audit_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"testing"

	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/cofferdtest"
)

// TestWitnessRefusesOversizedLeafPage: a page of log leaves larger than
// the witness asked for is a finding, before any of it is used: a server
// must not make a witness hold more than it agreed to.
func TestWitnessRefusesOversizedLeafPage(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	story(t, srv)
	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/v1/log/leaves" || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		var page api.LogLeaves
		if err := json.Unmarshal(b, &page); err == nil && len(page.Leaves) > 0 {
			for len(page.Leaves) <= 1000 {
				page.Leaves = append(page.Leaves, page.Leaves[0])
			}
			b, _ = json.Marshal(page)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	ts := httptest.NewServer(rp)
	t.Cleanup(ts.Close)
	r := mustWitness(t, ts.URL, t.TempDir(), srv.LogKey())
	wantFinding(t, r, "witness", "asked for at most 1000 leaves")
}
