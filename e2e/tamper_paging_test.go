package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// These tests play a server that pages forever or pages falsely: every
// paged read of clientlib (the groups list, a group's resources, a group's
// commits) must end, and refuse loops, repeats and empty pages that claim
// more as *coffer.SecurityError.

// pageFaker makes the page a lying server answers for cursor, from every
// item the honest server lists (in its order).
type pageFaker func(cursor string, real []json.RawMessage) (items []json.RawMessage, next string)

// commitFaker makes the commits page a lying server answers for after,
// from every commit of the group.
type commitFaker func(after uint64, real []json.RawMessage) []json.RawMessage

// pagingProxy answers the listing requests a faker is set for from the
// honest server's full listing, and forwards everything else.
type pagingProxy struct {
	target            *url.URL
	groups, resources pageFaker
	commits           commitFaker
}

func (p *pagingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // v1 groups [g [resources|commits]]
	var key string
	var fake pageFaker
	switch {
	case r.Method != http.MethodGet:
	case len(parts) == 2 && parts[1] == "groups" && p.groups != nil:
		key, fake = "groups", p.groups
	case len(parts) == 4 && parts[3] == "resources" && p.resources != nil:
		key, fake = "resources", p.resources
	case len(parts) == 4 && parts[3] == "commits" && p.commits != nil:
		key = "commits"
	}
	if key == "" {
		rp.ServeHTTP(w, r)
		return
	}
	real, err := p.fullListing(r, key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out := map[string]any{}
	if key == "commits" {
		after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		out[key] = p.commits(after, real)
	} else {
		items, next := fake(r.URL.Query().Get("cursor"), real)
		if items == nil {
			items = []json.RawMessage{}
		}
		out[key], out["next_cursor"] = items, next
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// fullListing is the honest server's first page (everything, in these
// small fixtures) of the listing r asks for, as the caller.
func (p *pagingProxy) fullListing(r *http.Request, key string) ([]json.RawMessage, error) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawQuery = "limit=1000"
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("honest listing: %s", resp.Status)
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var items []json.RawMessage
	return items, json.Unmarshal(body[key], &items)
}

// viaPagingProxy returns a client on ks (and options) whose listings the
// proxy p fakes.
func viaPagingProxy(t *testing.T, srv *Server, ks clientlib.KeyStore, p *pagingProxy, opts *clientlib.Options) *clientlib.Client {
	t.Helper()
	p.target, _ = url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(p.target)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.ServeHTTP(w, r, rp) }))
	t.Cleanup(ps.Close)
	c, err := clientlib.New(ps.URL, ks, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cursorPages splits the real listing into pages of one item, each named
// by a cursor "c<i>", and lets next choose the cursor after page i.
func cursorPages(next func(i, n int) string) pageFaker {
	return func(cursor string, real []json.RawMessage) ([]json.RawMessage, string) {
		i := 0
		if cursor != "" {
			i, _ = strconv.Atoi(strings.TrimPrefix(cursor, "c"))
		}
		if i >= len(real) {
			return nil, ""
		}
		return real[i : i+1], next(i, len(real))
	}
}

func fakeGroup() json.RawMessage {
	b, _ := json.Marshal(map[string]any{"id": coffer.NewGroupID(), "head_seq": 1, "epoch": 1})
	return b
}

func TestTamperPaging(t *testing.T) {
	srv := MustServer(t)
	alice, aliceKS := newClient(t, srv, "alice", nil)
	var groups []coffer.GroupID
	for i := range 3 {
		groups = append(groups, mustGroup(t, alice, fmt.Sprintf("g%d", i), nil))
	}
	g := groups[0]
	for i := range 3 {
		mustPut(t, alice, g, fmt.Sprintf("r%d", i), randomContent(t, 10))
	}
	for range 2 {
		if err := alice.Rotate(context.Background(), g); err != nil {
			t.Fatal(err)
		}
	}
	// From here on only clients on alice's key store through proxies run,
	// one after another, each refreshing the one session in it.
	forget := func(t *testing.T) { // a device that never verified g
		t.Helper()
		for _, name := range groupStateNames(g) {
			if err := aliceKS.Delete(name); err != nil {
				t.Fatal(err)
			}
		}
	}

	// An honest paging of one item per page passes: the fakes below differ
	// from it only in the attack.
	t.Run("honest", func(t *testing.T) {
		c := viaPagingProxy(t, srv, aliceKS, &pagingProxy{
			groups:    cursorPages(func(i, n int) string { return nextOrEnd(i, n) }),
			resources: cursorPages(func(i, n int) string { return nextOrEnd(i, n) }),
			commits:   func(after uint64, real []json.RawMessage) []json.RawMessage { return real[min(int(after), len(real)):] },
		}, nil)
		ctx := context.Background()
		gs, err := c.Groups(ctx)
		if err != nil || len(gs) != 3 {
			t.Fatalf("honest one-per-page groups: %d, %v", len(gs), err)
		}
		rs, err := c.List(ctx, g)
		if err != nil || len(rs) != 3 {
			t.Fatalf("honest one-per-page resources: %d, %v", len(rs), err)
		}
		forget(t)
		if h, err := c.History(ctx, g); err != nil || len(h) != 3 {
			t.Fatalf("honest one-per-page history: %d, %v", len(h), err)
		}
	})

	// Attacks on a cursor-paged listing, the same for groups and resources.
	cursorAttacks := map[string]pageFaker{
		// c0 → c1 → c2 → c1 → …: the cursor loops back.
		"loop": cursorPages(func(i, n int) string { return "c" + strconv.Itoa(max(1, (i+1)%n)) }),
		// The first page is empty but promises more.
		"empty-page-with-cursor": func(cursor string, real []json.RawMessage) ([]json.RawMessage, string) {
			if cursor == "" {
				return nil, "c0"
			}
			return real, ""
		},
		// An empty page with a cursor later in the listing.
		"empty-page-later": func(cursor string, real []json.RawMessage) ([]json.RawMessage, string) {
			switch cursor {
			case "":
				return real[:1], "more"
			case "more":
				return nil, "evenmore"
			}
			return nil, ""
		},
		// The same item again on the next page, under a fresh cursor.
		"repeat-across-pages": func(cursor string, real []json.RawMessage) ([]json.RawMessage, string) {
			if cursor == "" {
				return real[:2], "p2"
			}
			return real[1:2], ""
		},
		// Twice on one page.
		"repeat-on-page": func(cursor string, real []json.RawMessage) ([]json.RawMessage, string) {
			return append(real[:1:1], real[0]), ""
		},
		// A page larger than the client asked for.
		"huge-page": func(cursor string, real []json.RawMessage) ([]json.RawMessage, string) {
			out := make([]json.RawMessage, 1001)
			for i := range out {
				out[i] = real[i%len(real)]
			}
			return out, ""
		},
		// The listing starts over under a new cursor: every item again.
		"restart": func(cursor string, real []json.RawMessage) ([]json.RawMessage, string) {
			return real, "again" + cursor
		},
	}
	for name, fake := range cursorAttacks {
		t.Run("groups/"+name, func(t *testing.T) {
			c := viaPagingProxy(t, srv, aliceKS, &pagingProxy{groups: fake}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := c.Groups(ctx)
			wantSecurity(t, err)
		})
		t.Run("resources/"+name, func(t *testing.T) {
			c := viaPagingProxy(t, srv, aliceKS, &pagingProxy{resources: fake}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := c.List(ctx, g)
			wantSecurity(t, err)
		})
	}

	// A loop whose every page holds new (made-up) group ids: only the
	// cursor gives it away.
	t.Run("groups/loop-fresh-ids", func(t *testing.T) {
		c := viaPagingProxy(t, srv, aliceKS, &pagingProxy{groups: func(cursor string, _ []json.RawMessage) ([]json.RawMessage, string) {
			return []json.RawMessage{fakeGroup()}, map[string]string{"": "a", "a": "b", "b": "a"}[cursor]
		}}, nil)
		_, err := c.Groups(context.Background())
		wantSecurity(t, err)
	})
	// Fresh cursors and fresh ids forever: the caller's bound ends it.
	t.Run("groups/endless-bounded", func(t *testing.T) {
		n := 0
		c := viaPagingProxy(t, srv, aliceKS, &pagingProxy{groups: func(string, []json.RawMessage) ([]json.RawMessage, string) {
			n++
			page := make([]json.RawMessage, 1000)
			for i := range page {
				page[i] = fakeGroup()
			}
			return page, "n" + strconv.Itoa(n)
		}}, &clientlib.Options{MaxGroups: 2500})
		_, err := c.Groups(context.Background())
		wantCode(t, err, coffer.ELIMIT)
		if n > 3 {
			t.Fatalf("the client read %d pages of 1000 with a bound of 2500 items", n)
		}
	})
	t.Run("resources/bounded", func(t *testing.T) {
		c := viaPagingProxy(t, srv, aliceKS, &pagingProxy{
			resources: cursorPages(func(i, n int) string { return nextOrEnd(i, n) }),
		}, &clientlib.Options{MaxResources: 2})
		_, err := c.List(context.Background(), g)
		wantCode(t, err, coffer.ELIMIT)
	})
	t.Run("resources/list-page-loops-to-its-start", func(t *testing.T) {
		c := viaPagingProxy(t, srv, aliceKS, &pagingProxy{resources: func(cursor string, real []json.RawMessage) ([]json.RawMessage, string) {
			return real[:1], cursor
		}}, nil)
		_, err := c.ListPage(context.Background(), g, "start", 10)
		wantSecurity(t, err)
	})

	// Commits are paged by seq: the same commit on two pages, or a page
	// larger than asked for, in Sync (a fresh device) and History.
	commitAttacks := map[string]commitFaker{
		"repeat-across-pages": func(after uint64, real []json.RawMessage) []json.RawMessage {
			if after == 0 {
				return real[:1]
			}
			return real[after-1:]
		},
		"huge-page": func(after uint64, real []json.RawMessage) []json.RawMessage {
			out := make([]json.RawMessage, 1001)
			for i := range out {
				out[i] = real[min(int(after)+i, len(real)-1)]
			}
			return out
		},
		"empty-page-before-head": func(after uint64, real []json.RawMessage) []json.RawMessage {
			if after == 0 {
				return real[:1]
			}
			return nil
		},
	}
	for name, fake := range commitAttacks {
		t.Run("commits/"+name, func(t *testing.T) {
			forget(t)
			c := viaPagingProxy(t, srv, aliceKS, &pagingProxy{commits: fake}, nil)
			_, err := c.Sync(context.Background(), g)
			wantSecurity(t, err)
			_, err = viaPagingProxy(t, srv, aliceKS, &pagingProxy{commits: fake}, nil).History(context.Background(), g)
			wantSecurity(t, err)
		})
	}
	t.Run("commits/bounded", func(t *testing.T) {
		forget(t)
		c, err := clientlib.New(srv.URL(), aliceKS, &clientlib.Options{MaxCommits: 2})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Sync(context.Background(), g)
		wantCode(t, err, coffer.ELIMIT)
	})
}

func nextOrEnd(i, n int) string {
	if i+1 >= n {
		return ""
	}
	return "c" + strconv.Itoa(i+1)
}
