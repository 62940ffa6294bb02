package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer/fsblob"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
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
// log key and the witnesses' keys (Witnessed names who cosigned it). It
// also returns the note as served.
func (d *deployment) Cosigned(ctx context.Context) (translog.Cosigned, string, error) {
	var c translog.Cosigned
	lv, err := translog.NewVerifier(d.Signer.VerifierKey())
	if err != nil {
		return c, "", err
	}
	var ws []*translog.WitnessVerifier
	for _, w := range d.Witnesses {
		v, err := translog.NewWitnessVerifier(w.Key)
		if err != nil {
			return c, "", err
		}
		ws = append(ws, v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/v1/log/checkpoint", nil)
	if err != nil {
		return c, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return c, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return c, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return c, "", fmt.Errorf("GET /v1/log/checkpoint: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	c, err = translog.OpenCosigned(string(b), lv, ws)
	return c, string(b), err
}

// waitCosigned waits until cofferd serves a checkpoint of at least size
// cosigned by every witness, and returns it and its note.
func (d *deployment) waitCosigned(t *testing.T, size int64) (translog.Cosigned, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, note, err := d.Cosigned(context.Background())
		if err == nil && c.Checkpoint.Size >= size && len(c.Witnessed) == len(d.Witnesses) {
			return c, note
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
// witness cosigned (its GET /checkpoint) ends before the leaf, the newest
// checkpoint pushed again by the test is answered 422 with the rule in the
// Coffer-Witness-Refusal header and the leaf in the reason, and what
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
	// The refusal names the leaf ("log leaf 17: ..." or "log leaf 17 is ...").
	leaf := regexp.MustCompile(`log leaf ` + strconv.FormatInt(index, 10) + `\b`)
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range d.Witnesses {
		for !logHas(w.Output(), leaf, `msg="witness: refused a checkpoint"`, "rule="+rule+" ") ||
			!logHas(d.Log.String(), leaf, `msg="witness: the witness refused the checkpoint"`, "witness="+w.Name+" ", "rule="+rule+" ") {
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
		// The HTTP answer, to a push of the newest checkpoint as cofferd
		// makes it (C2SP tlog-witness add-checkpoint).
		var newest string
		var size int64
		if err := db.QueryRow(context.Background(), `SELECT checkpoint, tree_size FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1`).
			Scan(&newest, &size); err != nil {
			t.Fatal(err)
		}
		if size <= index {
			t.Fatalf("the newest checkpoint (size %d) does not hold leaf %d", size, index)
		}
		proof, err := tlog.ProveTree(size, cp.Size, logHashes(context.Background(), db))
		if err != nil {
			t.Fatal(err)
		}
		line, err := witness.Push(context.Background(), http.DefaultClient, w.URL, cp.Size, proof, newest)
		var re *witness.RemoteError
		if !errors.As(err, &re) || re.Status != http.StatusUnprocessableEntity || string(re.Rule) != rule || !leaf.MatchString(re.Msg) {
			t.Fatalf("witness %s answered a push of the checkpoint of size %d: %q, %v; want 422 refusing leaf %d for rule %s", w.Name, size, line, err, index, rule)
		}
		t.Logf("witness %s: %v", w.Name, err)
	}
	c, _, err := d.Cosigned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Checkpoint.Size > index && len(c.Witnessed) > 0 {
		t.Fatalf("cofferd serves a checkpoint of size %d, which holds leaf %d, cosigned by %v", c.Checkpoint.Size, index, c.Witnessed)
	}
	return index
}

// logHas reports whether a line of log matches re and holds every one of
// subs.
func logHas(log string, re *regexp.Regexp, subs ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		ok := re.MatchString(line)
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return true
		}
	}
	return false
}

// appendForged plays a malicious sequencer through the database: it
// appends the pending log_entries row entry to the tree, which cofferd's
// own sequencer refuses to do (it breaks the heads map's rules), and signs
// and stores a checkpoint that holds it, the heads map left as it was.
// cofferd pushes that checkpoint, its newest, to its witnesses. It returns
// the leaf's index.
func (d *deployment) appendForged(t *testing.T, db *pgx.Conn, entry int64) int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var (
		size     int64
		note     string
		leafHash []byte
	)
	if err := tx.QueryRow(ctx, `SELECT tree_size, checkpoint FROM log_head FOR UPDATE`).Scan(&size, &note); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT leaf_hash FROM log_entries WHERE id = $1 AND leaf_index IS NULL`, entry).Scan(&leafHash); err != nil {
		t.Fatalf("log entry %d is not pending: %v", entry, err)
	}
	hashes := logHashes(ctx, tx)
	stored, err := tlog.StoredHashesForRecordHash(size, tlog.Hash(leafHash), hashes)
	if err != nil {
		t.Fatal(err)
	}
	base := tlog.StoredHashIndex(0, size)
	for j, h := range stored {
		if _, err := tx.Exec(ctx, `INSERT INTO log_hashes (hash_index, hash) VALUES ($1, $2)`, base+int64(j), h[:]); err != nil {
			t.Fatal(err)
		}
	}
	root, err := tlog.TreeHash(size+1, hashes)
	if err != nil {
		t.Fatal(err)
	}
	body, _, _ := strings.Cut(note, "\n\n")
	prev, err := translog.ParseCheckpointText(body + "\n")
	if err != nil {
		t.Fatal(err)
	}
	cp := translog.Checkpoint{Size: size + 1, Root: root, MapSize: prev.MapSize, MapRoot: prev.MapRoot, Time: time.Now().Unix()}
	signed, err := d.Signer.Sign(cp)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE log_entries SET leaf_index = $2 WHERE id = $1`, []any{entry, size}},
		{`UPDATE log_head SET tree_size = $1, root_hash = $2, checkpoint = $3, updated_at = now()`, []any{size + 1, root[:], signed}},
		{`INSERT INTO log_checkpoints (tree_size, map_size, checkpoint, cosigned, signed_at) VALUES ($1, $2, $3, NULL, now())`,
			[]any{size + 1, cp.MapSize, signed}},
	} {
		if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return size
}

// logHashes reads the log's stored tree hashes (log_hashes) through q.
func logHashes(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		rows, err := q.Query(ctx, `SELECT hash_index, hash FROM log_hashes WHERE hash_index = ANY($1)`, indexes)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		got := map[int64]tlog.Hash{}
		for rows.Next() {
			var (
				i int64
				h []byte
			)
			if err := rows.Scan(&i, &h); err != nil {
				return nil, err
			}
			got[i] = tlog.Hash(h)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(indexes))
		for j, i := range indexes {
			h, ok := got[i]
			if !ok {
				return nil, fmt.Errorf("no stored hash %d", i)
			}
			out[j] = h
		}
		return out, nil
	})
}
