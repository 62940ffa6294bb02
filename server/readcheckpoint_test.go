package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/store"
)

// statementCounter is a pgx tracer that records the statements a pool
// runs.
type statementCounter struct {
	mu   sync.Mutex
	sqls []string
}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	c.sqls = append(c.sqls, d.SQL)
	c.mu.Unlock()
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements recorded since the last call.
func (c *statementCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.sqls
	c.sqls = nil
	return out
}

// TestReadWithCheckpointIsOneStatement: a read of one resource with the
// log's latest checkpoint (?include=checkpoint,content), in either
// encoding, runs one statement while the checkpoints are unchanged: the
// resource row with the checkpoint generation. After a new checkpoint is
// stored, by this server's store or another's over the same database, the
// next read serves the new one.
func TestReadWithCheckpointIsOneStatement(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewURL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	withLog := func(_ *server.Config, s *server.Services) { s.Log = s.Groups.(*store.DB) }
	w := newResourceWorldOn(t, mustServerOn(t, pool, withResources(t, nil), withLog))
	id := w.mustResource(t, w.writer, bytes.Repeat([]byte("r"), 1000))

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := translog.NewSigner("coffer.test", key)
	if err != nil {
		t.Fatal(err)
	}
	// Another replica's store over the same database signs checkpoints.
	otherPool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(otherPool.Close)
	other := store.New(otherPool)
	other.Now, other.CheckpointRefresh = w.ts.Clock.Now, time.Second
	if _, err := other.IntegrateLog(ctx, signer, 1000); err != nil {
		t.Fatal(err)
	}
	latest := func() string {
		t.Helper()
		cp, err := other.LogCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	path := w.resourcePath(id) + "?include=checkpoint,content"
	read := func(accept string) *api.Resource {
		t.Helper()
		r := w.ts.Send(t, w.req(t, w.reader, "GET", path, nil, "Accept", accept))
		if r.Status != 200 {
			t.Fatalf("read: %d %s", r.Status, r.Body)
		}
		if accept == api.ResourceType {
			ar, err := api.ParseResource(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			return ar
		}
		var ar api.Resource
		r.Decode(t, &ar)
		return &ar
	}
	for _, accept := range []string{api.ResourceType, "application/json"} {
		if got := read(accept); got.Checkpoint != latest() {
			t.Fatalf("the read carries checkpoint %q, want the latest %q", got.Checkpoint, latest())
		}
		counter.take()
		for range 5 {
			if got := read(accept); got.Checkpoint != latest() || got.Content == nil {
				t.Fatalf("the read carries checkpoint %q and %d bytes of content", got.Checkpoint, len(got.Content))
			}
		}
		if sqls := counter.take(); len(sqls) != 5 {
			t.Fatalf("%s: 5 reads ran %d statements, want 5:\n%s", accept, len(sqls), strings.Join(sqls, "\n---\n"))
		}
	}
	// A checkpoint stored by the other replica (a re-signature of the same
	// tree, at a later time) shows on the next read.
	before := latest()
	w.ts.Clock.Advance(2 * time.Second)
	if _, err := other.IntegrateLog(ctx, signer, 1000); err != nil {
		t.Fatal(err)
	}
	if latest() == before {
		t.Fatal("the other replica stored no new checkpoint")
	}
	for _, accept := range []string{api.ResourceType, "application/json"} {
		if got := read(accept); got.Checkpoint != latest() {
			t.Fatalf("after another replica's checkpoint, the read carries %q, want %q", got.Checkpoint, latest())
		}
	}
}
