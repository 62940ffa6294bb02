package witness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/api"
)

// leafClient fetches log leaves from cofferd's public log endpoint. The log
// is the adversary: a page is checked for its start and count, and bodies
// are bounded before they are read.
type leafClient struct {
	base string
	hc   *http.Client
}

const (
	leavesPage     = 256
	maxLeavesBody  = 64 << 20
	fetchAttempts  = 3
	fetchRetryWait = 200 * time.Millisecond
)

func newLeafClient(base string, hc *http.Client) (*leafClient, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("witness: the log URL %q must be an http(s) URL", base)
	}
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	return &leafClient{base: u.String(), hc: hc}, nil
}

// errLeavesUnavailable is a failure to get leaves that says nothing about
// the checkpoint: the caller may push again later.
var errLeavesUnavailable = errors.New("witness: the log's leaves are unavailable")

// fetch returns the next leaves from start, at least one and none at or
// beyond end.
func (c *leafClient) fetch(ctx context.Context, start, end int64) ([][]byte, error) {
	limit := min(int64(leavesPage), end-start)
	var last error
	for attempt := 0; attempt < fetchAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(fetchRetryWait):
			}
		}
		page, tooBig, err := c.get(ctx, start, limit)
		if tooBig && limit > 1 {
			limit = max(1, limit/4)
			attempt--
			continue
		}
		if err != nil {
			last = err
			continue
		}
		if int64(len(page.Leaves)) > limit {
			// More than asked for: the log trying to make the witness hold
			// more than it agreed to.
			return nil, refuse(RuleLeaves, "asked the log for at most %d leaves from %d, it sent %d", limit, start, len(page.Leaves))
		}
		if page.Start != start || len(page.Leaves) == 0 {
			return nil, refuse(RuleLeaves, "the log does not serve the leaves of its own checkpoint (from leaf %d)", start)
		}
		return page.Leaves, nil
	}
	return nil, fmt.Errorf("%w: %v", errLeavesUnavailable, last)
}

func (c *leafClient) get(ctx context.Context, start, limit int64) (*api.LogLeaves, bool, error) {
	u := c.base + "/v1/log/leaves?start=" + strconv.FormatInt(start, 10) + "&limit=" + strconv.FormatInt(limit, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("GET /v1/log/leaves: %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxLeavesBody+1))
	if err != nil {
		return nil, false, err
	}
	if len(b) > maxLeavesBody {
		return nil, true, fmt.Errorf("GET /v1/log/leaves: a page of more than %d bytes", maxLeavesBody)
	}
	var page api.LogLeaves
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, false, fmt.Errorf("GET /v1/log/leaves: malformed page: %w", err)
	}
	return &page, false, nil
}
