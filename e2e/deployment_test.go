package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/fsblob"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
)

// deployment is a witnessed deployment as operators run it, each part its
// own operating-system process: cofferd (the binary, configured by its
// flags only) and `coffer-audit witness serve` processes, each with its own
// key and state, which cofferd pushes every checkpoint to (-witness).
// Tests that play the malicious server use what the operator holds: the
// database, the blob directory and the log signing key.
type deployment struct {
	URL         string // cofferd's base URL
	DatabaseURL string
	BlobDir     string
	LogKeyFile  string
	LogOrigin   string
	Signer      *translog.Signer // the log's signer
	Cofferd     *cofferdtest.Process
	Witnesses   []*cofferdtest.WitnessProcess
	Log         *LogSink // what cofferd wrote

	// refused is the first leaf the witnesses refused: they refuse every
	// later checkpoint for it (wantWitnessesRefuse).
	refused *int64
}

// deploymentOptions configure startDeployment.
type deploymentOptions struct {
	// Origin is the log origin (default coffer.e2e).
	Origin string
	// Witnesses names the witnesses to run (default: witness-a.test and
	// witness-b.test).
	Witnesses []string
	// Args are more cofferd flags (-checkpoint-interval 1s, ...).
	Args []string
}

// startDeployment starts the witnesses, then cofferd configured with all of
// them, on a fresh database; everything stops when the test ends. The
// binaries are built once per test binary.
func startDeployment(t *testing.T, o deploymentOptions) *deployment {
	t.Helper()
	if testing.Short() {
		t.Skip("builds cofferd and coffer-audit and runs them as processes")
	}
	if o.Origin == "" {
		o.Origin = "coffer.e2e"
	}
	if o.Witnesses == nil {
		o.Witnesses = []string{"witness-a.test", "witness-b.test"}
	}
	cofferdBin := cofferdtest.BuildCofferd(t)
	auditBin := cofferdtest.BuildCofferAudit(t)
	keys, data := t.TempDir(), t.TempDir()
	d := &deployment{
		DatabaseURL: pgtest.NewURL(t),
		BlobDir:     filepath.Join(data, "blobs"),
		LogKeyFile:  MustKeyFile(t, keys, "log.key", "server transparency log key"),
		LogOrigin:   o.Origin,
		Log:         NewLogSink(),
	}
	d.Signer = logSignerFrom(t, d.LogKeyFile, d.LogOrigin)
	addr, err := cofferdtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	d.URL = "http://" + addr
	args := []string{
		"-database-url", d.DatabaseURL, "-data", data, "-jwt-key", MustKeyFile(t, keys, "jwt.key", "server JWT signing key"),
		"-log-key", d.LogKeyFile, "-log-origin", d.LogOrigin, "-origin", d.URL, "-blob-dir", d.BlobDir,
		"-auth-rate-limit", "1000000", "-log-level", "debug",
	}
	for _, name := range o.Witnesses {
		w := cofferdtest.StartWitnessProcess(t, auditBin, name, d.Signer.VerifierKey(), d.URL)
		recordWitnessKeySecret(t, w.KeyFile)
		d.Witnesses = append(d.Witnesses, w)
		args = append(args, "-witness", w.URL+"="+w.Key)
	}
	// Registered before the process's own cleanup, so it runs after
	// cofferd has stopped and written its last line.
	t.Cleanup(func() {
		d.Log.Check(t)
		if t.Failed() {
			for _, w := range d.Witnesses {
				t.Logf("witness %s:\n%s", w.Name, w.Output())
			}
		}
	})
	d.Cofferd = cofferdtest.StartProcess(t, cofferdBin, cofferdtest.ProcessOptions{Addr: addr, Args: append(args, o.Args...), Output: d.Log})
	return d
}

// WitnessKeys are the witnesses' cosignature verifier keys, for
// clientlib.Options.Witnesses.
func (d *deployment) WitnessKeys() []string {
	var ks []string
	for _, w := range d.Witnesses {
		ks = append(ks, w.Key)
	}
	return ks
}

// Blobs opens cofferd's blob directory, as the operator can.
func (d *deployment) Blobs(t *testing.T) *fsblob.Store {
	t.Helper()
	s, err := fsblob.New(d.BlobDir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Cosigned fetches the checkpoint cofferd serves and opens it with the
// log key and the witnesses' keys (Witnessed names who cosigned it).
func (d *deployment) Cosigned(ctx context.Context) (translog.Cosigned, error) {
	var c translog.Cosigned
	lv, err := translog.NewVerifier(d.Signer.VerifierKey())
	if err != nil {
		return c, err
	}
	var ws []*translog.WitnessVerifier
	for _, w := range d.Witnesses {
		v, err := translog.NewWitnessVerifier(w.Key)
		if err != nil {
			return c, err
		}
		ws = append(ws, v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/v1/log/checkpoint", nil)
	if err != nil {
		return c, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return c, err
	}
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("GET /v1/log/checkpoint: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return translog.OpenCosigned(string(b), lv, ws)
}

// waitCosigned waits until cofferd serves a checkpoint of at least size
// cosigned by every witness, and returns it.
func (d *deployment) waitCosigned(t *testing.T, size int64) translog.Cosigned {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := d.Cosigned(context.Background())
		if err == nil && c.Checkpoint.Size >= size && len(c.Witnessed) == len(d.Witnesses) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size >= %d cosigned by all %d witnesses (last: size %d, %v, %v)",
				size, len(d.Witnesses), c.Checkpoint.Size, c.Witnessed, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leafIndex waits until the sequencer has placed the log_entries row entry
// in the tree, and returns its leaf index.
func leafIndex(t *testing.T, db *pgx.Conn, entry int64) int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var index *int64
		if err := db.QueryRow(context.Background(), `SELECT leaf_index FROM log_entries WHERE id = $1`, entry).Scan(&index); err != nil {
			t.Fatal(err)
		}
		if index != nil {
			return *index
		}
		if time.Now().After(deadline) {
			t.Fatalf("log entry %d is not in the tree after 30s", entry)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantWitnessesRefuse requires that every witness refuses, for rule, the
// checkpoints that hold the log leaf of log_entries row entry, and never
// cosigns one: each witness process logs its refusal naming the leaf and
// answers cofferd with it (cofferd logs it), the last checkpoint each
// witness cosigned (its GET /checkpoint) ends before the leaf, and what
// cofferd serves, if it holds the leaf, carries no cosignature. Once a
// leaf was refused, the witnesses name that first one for every later
// checkpoint, which then stands for entry's. It returns the leaf's index.
func (d *deployment) wantWitnessesRefuse(t *testing.T, db *pgx.Conn, entry int64, rule string) int64 {
	t.Helper()
	index := leafIndex(t, db, entry)
	if d.refused == nil || *d.refused > index {
		d.refused = &index
	}
	index = *d.refused
	leaf := "log leaf " + strconv.FormatInt(index, 10) + ":"
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range d.Witnesses {
		for !logHas(w.Output(), `msg="witness: refused a checkpoint"`, "rule="+rule+" ", leaf) ||
			!logHas(d.Log.String(), `msg="witness: the witness refused the checkpoint"`, "witness="+w.Name+" ", "rule="+rule+" ", leaf) {
			if time.Now().After(deadline) {
				t.Fatalf("witness %s has not refused leaf %d for rule %s after 30s (or cofferd did not log it)\nwitness:\n%s", w.Name, index, rule, w.Output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	lv, err := translog.NewVerifier(d.Signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range d.Witnesses {
		resp, err := http.Get(w.URL + "/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cp, err := lv.Open(string(b))
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("witness %s GET /checkpoint: %d %v %q", w.Name, resp.StatusCode, err, b)
		}
		if cp.Size > index {
			t.Fatalf("witness %s cosigned a tree of size %d, which holds leaf %d", w.Name, cp.Size, index)
		}
	}
	c, err := d.Cosigned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Checkpoint.Size > index && len(c.Witnessed) > 0 {
		t.Fatalf("cofferd serves a checkpoint of size %d, which holds leaf %d, cosigned by %v", c.Checkpoint.Size, index, c.Witnessed)
	}
	return index
}

// logHas reports whether a line of log holds every one of subs.
func logHas(log string, subs ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return true
		}
	}
	return false
}
