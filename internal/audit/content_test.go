package audit_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferdtest"
)

// resourceStory stores one small resource (its content kept in the row)
// and one large one (in a blob).
func resourceStory(t *testing.T, srv *cofferdtest.Server) {
	t.Helper()
	ctx := context.Background()
	c, err := clientlib.New(srv.URL(), clientlib.NewMemoryKeyStore(), &clientlib.Options{LogKey: srv.LogKey()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	g, err := c.CreateGroup(ctx, "files", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"small": []byte(strings.Repeat("a small plaintext that must never be stored as it is. ", 20)),
		"large": bytes.Repeat([]byte("large "), 20_000),
	} {
		if _, err := c.Put(ctx, g, bytes.NewReader(data), clientlib.Meta{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	waitLogged(t, srv)
}

func TestDBInlineContentClean(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	resourceStory(t, srv)
	r := mustAudit(t, srv)
	if !r.Clean {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("audit of an honest database is not clean:\n%s", b.String())
	}
	if r.Stats["inline_contents"] != 1 || r.Stats["resources"] != 2 {
		t.Fatalf("checked %d inline contents of %d resources, want 1 of 2", r.Stats["inline_contents"], r.Stats["resources"])
	}
}

// TestDBInlineContentPlanted: content kept in rows is checked as the
// ciphertext the signed header describes, and an upload's as ciphertext.
func TestDBInlineContentPlanted(t *testing.T) {
	// The small resource's row, and the age header its content starts with.
	const small = `content IS NOT NULL`
	const header = `substring(content from 1 for position(convert_to(E'\n---', 'UTF8') in content) + 48)`
	tests := []struct {
		name  string
		plant []string
		want  string
	}{
		{"plaintext with its hash and size", []string{
			`UPDATE resources SET content = convert_to(rpad('', size::int, 'the plaintext of the resource. '), 'UTF8') WHERE ` + small,
			`UPDATE resources SET content_hash = sha256(content) WHERE ` + small,
		}, "not a resource age file"},
		{"an age header before plaintext of the signed length", []string{
			`UPDATE resources SET content = ` + header + ` || convert_to(repeat('z', size::int - length(` + header + `)), 'UTF8') WHERE ` + small,
			`UPDATE resources SET content_hash = sha256(content) WHERE ` + small,
		}, "payload"},
		{"list changed with its hash", []string{
			`UPDATE resources SET content = overlay(content placing '\x00'::bytea from length(content) for 1) WHERE ` + small,
			`UPDATE resources SET content_hash = sha256(content) WHERE ` + small,
		}, "tree root"},
		{"ciphertext changed without its hash", []string{
			`UPDATE resources SET content = overlay(content placing '\x00'::bytea from length(content) - 100 for 1) WHERE ` + small,
		}, "content_hash"},
		{"truncated", []string{
			`UPDATE resources SET content = substring(content from 1 for length(content) - 1) WHERE ` + small,
		}, "bytes"},
		{"plaintext in an upload", []string{
			`INSERT INTO uploads (id, resource_id, group_id, author_id, version, content, size, content_hash, created_at, updated_at)
				SELECT gen_random_uuid(), gen_random_uuid(), group_id, author_id, 1, convert_to('{"secret": "plaintext"}', 'UTF8'),
				23, sha256(convert_to('{"secret": "plaintext"}', 'UTF8')), now(), now() FROM resources WHERE ` + small,
		}, "uploads.content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := cofferdtest.Start(t, nil)
			resourceStory(t, srv)
			srv.Main.Close()
			db := mustConn(t, srv.DatabaseURL)
			for _, q := range tt.plant {
				if _, err := db.Exec(context.Background(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			r := mustAudit(t, srv)
			for _, f := range r.Findings {
				if f.Check == "content" && strings.Contains(f.Object+" "+f.Message, tt.want) {
					return
				}
			}
			var b strings.Builder
			r.WriteText(&b)
			t.Fatalf("no content finding naming %q:\n%s", tt.want, b.String())
		})
	}
}
