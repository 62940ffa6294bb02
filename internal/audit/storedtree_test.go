package audit_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/cofferdtest"
)

// TestDBStoredChunkTree: the honest database stores the large resource's
// chunk tree and the audit rebuilds it from its leaves; plaintext, a
// changed node or leaf, a tree of the wrong length, and a tree beside
// inline content are findings.
func TestDBStoredChunkTree(t *testing.T) {
	const large, small = `content IS NULL`, `content IS NOT NULL`
	tests := []struct {
		name  string
		plant string
		want  string
	}{
		{"honest", "", ""},
		{"plaintext of the tree's length", `UPDATE resources SET chunk_tree = convert_to(rpad('', length(chunk_tree), 'the plaintext. '), 'UTF8') WHERE ` + large, "leaf hashes"},
		{"an inner node changed", `UPDATE resources SET chunk_tree = overlay(chunk_tree placing '\x00'::bytea from 65 for 1) WHERE ` + large, "inner nodes"},
		{"a leaf changed", `UPDATE resources SET chunk_tree = overlay(chunk_tree placing '\x00'::bytea from 1 for 1) WHERE ` + large, "leaf hashes"},
		{"truncated", `UPDATE resources SET chunk_tree = substring(chunk_tree from 33) WHERE ` + large, "bytes"},
		{"beside inline content", `UPDATE resources SET chunk_tree = '\x` + strings.Repeat("00", 32) + `'::bytea WHERE ` + small, "inline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := cofferdtest.Start(t, nil)
			resourceStory(t, srv)
			srv.Main.Close()
			if tt.plant != "" {
				db := mustConn(t, srv.DatabaseURL)
				if _, err := db.Exec(context.Background(), tt.plant); err != nil {
					t.Fatalf("%s: %v", tt.plant, err)
				}
			}
			r := mustAudit(t, srv)
			if tt.want == "" {
				if !r.Clean || r.Stats["stored_chunk_trees"] != 1 {
					var b strings.Builder
					r.WriteText(&b)
					t.Fatalf("%d stored trees checked, want 1, clean:\n%s", r.Stats["stored_chunk_trees"], b.String())
				}
				return
			}
			for _, f := range r.Findings {
				if f.Check == "content" && strings.Contains(f.Object, "chunk_tree") && strings.Contains(f.Message, tt.want) {
					return
				}
			}
			var b strings.Builder
			r.WriteText(&b)
			t.Fatalf("no chunk_tree finding naming %q:\n%s", tt.want, b.String())
		})
	}
}
