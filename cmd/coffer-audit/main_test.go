package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	ctx := context.Background()
	srv := cofferdtest.Start(t, nil)
	c, err := clientlib.New(srv.URL(), clientlib.NewMemoryKeyStore(), &clientlib.Options{LogKey: srv.LogKey()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGroup(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, "alice"); err != nil { // waits for the log
		t.Fatal(err)
	}

	if code, out, _ := runCLI(t, "--help"); code != 0 || !strings.Contains(out, "canary") {
		t.Fatalf("--help: %d\n%s", code, out)
	}
	if code, _, stderr := runCLI(t, "db"); code != 2 || !strings.Contains(stderr, "--database-url") {
		t.Fatalf("db without a URL: %d %s", code, stderr)
	}
	code, out, stderr := runCLI(t, "db", "--database-url", srv.DatabaseURL, "--log-key", srv.LogKey())
	if code != 0 || !strings.Contains(out, "CLEAN") {
		t.Fatalf("db on a clean database: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "checking") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	code, out, _ = runCLI(t, "log", "--json", "-q", "--server", srv.URL(), "--state", t.TempDir(), "--log-key", srv.LogKey())
	var rep struct {
		Mode  string `json:"mode"`
		Clean bool   `json:"clean"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.Clean || rep.Mode != "log" {
		t.Fatalf("log --json: exit %d, %v\n%s", code, err, out)
	}

	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE groups ADD COLUMN group_key bytea`); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "db", "--json", "--database-url", srv.DatabaseURL)
	var bad struct {
		Clean    bool `json:"clean"`
		Findings []struct {
			Check, Object string
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &bad); err != nil || code != 1 || bad.Clean || len(bad.Findings) == 0 ||
		bad.Findings[0].Object != "column groups.group_key" {
		t.Fatalf("db with an extra column: exit %d, %v\n%s", code, err, out)
	}
}
