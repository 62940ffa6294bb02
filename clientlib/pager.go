package clientlib

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// Paged reads against a server that lies.
//
// A server that pages forever (a cursor that loops back, a fresh cursor with
// nothing behind it, the same items again under new cursors, pages larger
// than asked for) could keep a client busy and growing without end. Every
// paged read in this package runs its pages through a pager, which turns
// each of those into a *coffer.SecurityError and bounds the total number of
// items a read accepts.

// Default bounds on the items one paged read accepts (Options.MaxGroups,
// MaxResources, MaxCommits).
const (
	defaultMaxGroups    = 100_000
	defaultMaxResources = 1_000_000
	defaultMaxCommits   = 1 << 22
)

// pager checks the pages of one paged read. K identifies an item; an item
// seen on an earlier page (or twice on one) is refused.
type pager[K comparable] struct {
	what    string // "groups", "resources of group …": for errors
	max     int
	items   map[K]struct{}
	cursors map[string]struct{}
}

func newPager[K comparable](what string, max int) *pager[K] {
	return &pager[K]{what: what, max: max, items: map[K]struct{}{}, cursors: map[string]struct{}{}}
}

func (p *pager[K]) security(format string, args ...any) error {
	return coffer.Security("paging", fmt.Errorf("%s: %s", p.what, fmt.Sprintf(format, args...)))
}

// start records the cursor a read starts from, so that a server cannot
// page back to it.
func (p *pager[K]) start(cursor string) {
	if cursor != "" {
		p.cursors[cursor] = struct{}{}
	}
}

// page checks the size of a page that answered a request for at most
// limit items, before its items are looked at.
func (p *pager[K]) page(n, limit int) error {
	if n > limit {
		return p.security("asked for at most %d, the server sent %d", limit, n)
	}
	if len(p.items)+n > p.max {
		return coffer.Errorf(coffer.ELIMIT, "%s: more than %d items; raise the client's bound to read them all", p.what, p.max)
	}
	return nil
}

// item records one item of the current page.
func (p *pager[K]) item(id K) error {
	if _, dup := p.items[id]; dup {
		return p.security("%s is listed twice", describe(id))
	}
	if len(p.items) >= p.max {
		return coffer.Errorf(coffer.ELIMIT, "%s: more than %d items; raise the client's bound to read them all", p.what, p.max)
	}
	p.items[id] = struct{}{}
	return nil
}

// next checks the cursor that ends a page of n items and reports whether
// another page must be read. A cursor seen before loops; a cursor after an
// empty page leads nowhere.
func (p *pager[K]) next(cursor string, n int) (bool, error) {
	if cursor == "" {
		return false, nil
	}
	if n == 0 {
		return false, p.security("an empty page with a cursor to continue")
	}
	if _, seen := p.cursors[cursor]; seen {
		return false, p.security("the cursor %.32q was returned before: the listing loops", cursor)
	}
	p.cursors[cursor] = struct{}{}
	return true, nil
}

// bound returns v, or def when v is not positive.
func bound(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// commitPageSize is how many commits one request asks for (the server's cap).
const commitPageSize = 1000

// commitPager starts a read of want commits of g, refusing more than
// Options.MaxCommits before a request is made.
func (c *Client) commitPager(g coffer.GroupID, want uint64) (*pager[[32]byte], error) {
	max := bound(c.opts.MaxCommits, defaultMaxCommits)
	if want > uint64(max) {
		return nil, coffer.Errorf(coffer.ELIMIT, "group %s: the server reports %d commits to read, more than this client's bound of %d", g, want, max)
	}
	return newPager[[32]byte]("commits of group "+g.String(), max), nil
}

// commitPage reads the page of g's commits after seq. A commit is known
// by its hash: the same commit served on two pages is refused. It asks for
// the compact encoding (api.CommitPageType) and takes JSON too.
func (c *Client) commitPage(ctx context.Context, p *pager[[32]byte], g coffer.GroupID, after uint64) ([]coffer.SignedCommit, error) {
	var commits []coffer.SignedCommit
	path := "/v1/groups/" + g.String() + "/commits?limit=" + strconv.Itoa(commitPageSize) + "&after=" + strconv.FormatUint(after, 10)
	err := c.do(ctx, http.MethodGet, path, true, nil, api.CommitPageType+", application/json;q=0.5", func(resp *http.Response) (err error) {
		commits, err = readCommitPage(resp)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := p.page(len(commits), commitPageSize); err != nil {
		return nil, err
	}
	for _, sc := range commits {
		if err := p.item(sc.Hash()); err != nil {
			return nil, err
		}
	}
	return commits, nil
}

// readCommitPage decodes a page of commits in either encoding. A page
// larger than commitPageSize is left to the pager to refuse.
func readCommitPage(resp *http.Response) ([]coffer.SignedCommit, error) {
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != api.CommitPageType {
		var page api.CommitList
		if err := readResponse(resp, &page); err != nil {
			return nil, err
		}
		commits := make([]coffer.SignedCommit, len(page.Commits))
		for i, pc := range page.Commits {
			commits[i] = coffer.SignedCommit{Body: pc.Body, Signature: pc.Signature}
		}
		return commits, nil
	}
	defer resp.Body.Close()
	data, err := readBounded(resp, maxResponse)
	if err != nil {
		return nil, err
	}
	commits, err := api.ParseCommitPage(data, commitPageSize+1)
	if err != nil {
		return nil, coffer.Errorf(coffer.EUNAVAILABLE, "malformed response from server: %v", err)
	}
	return commits, nil
}

// readBounded reads a response body of at most max bytes, in one
// allocation when the server states its length.
func readBounded(resp *http.Response, max int64) ([]byte, error) {
	if resp.ContentLength > max {
		return nil, coffer.Errorf(coffer.EUNAVAILABLE, "response from server is %d bytes, over the limit of %d", resp.ContentLength, max)
	}
	if resp.ContentLength >= 0 {
		data := make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(resp.Body, data); err != nil {
			return nil, coffer.Errorf(coffer.EUNAVAILABLE, "reading response from server: %v", err)
		}
		return data, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, coffer.Errorf(coffer.EUNAVAILABLE, "reading response from server: %v", err)
	}
	if int64(len(data)) > max {
		return nil, coffer.Errorf(coffer.EUNAVAILABLE, "response from server is over the limit of %d bytes", max)
	}
	return data, nil
}

// describe names an item in an error: hashes in hex, ids as they print.
func describe(id any) string {
	if h, ok := id.([32]byte); ok {
		return fmt.Sprintf("the item %x", h[:6])
	}
	return fmt.Sprint(id)
}

// groupPageSize is how many groups one request asks for (the server's cap).
const groupPageSize = 1000

// groupIDs lists the ids of the caller's groups, every page checked.
func (c *Client) groupIDs(ctx context.Context) ([]coffer.GroupID, error) {
	p := newPager[coffer.GroupID]("the list of groups", bound(c.opts.MaxGroups, defaultMaxGroups))
	var out []coffer.GroupID
	cursor := ""
	for {
		var list api.GroupList
		path := "/v1/groups?limit=" + strconv.Itoa(groupPageSize)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := c.call(ctx, http.MethodGet, path, true, nil, &list); err != nil {
			return nil, err
		}
		if err := p.page(len(list.Groups), groupPageSize); err != nil {
			return nil, err
		}
		for _, g := range list.Groups {
			if err := p.item(g.ID); err != nil {
				return nil, err
			}
			out = append(out, g.ID)
		}
		more, err := p.next(list.NextCursor, len(list.Groups))
		if err != nil {
			return nil, err
		}
		if !more {
			return out, nil
		}
		cursor = list.NextCursor
	}
}
