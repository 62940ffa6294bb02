package cofferd_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/internal/cofferd"
)

func TestGenerateKeyFilesNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "jwt.key"), filepath.Join(dir, "log.key")
	created, err := cofferd.GenerateKeyFiles(a, b)
	if err != nil || len(created) != 2 {
		t.Fatalf("first run created %v, %v; want both", created, err)
	}
	before, _ := os.ReadFile(a)
	if fi, _ := os.Stat(a); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	created, err = cofferd.GenerateKeyFiles(a, b)
	if err != nil || len(created) != 0 {
		t.Fatalf("second run created %v, %v; want none", created, err)
	}
	after, _ := os.ReadFile(a)
	if string(before) != string(after) {
		t.Fatal("a rerun replaced an existing key")
	}
	if _, err := cofferd.GenerateKeyFiles(); err == nil {
		t.Fatal("no paths: want an error")
	}
}
