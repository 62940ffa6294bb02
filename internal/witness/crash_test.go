package witness_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
)

// The crash test runs the witness as a child process: this test binary,
// re-executed with COFFER_WITNESS_CHILD=1.
func TestMain(m *testing.M) {
	if os.Getenv("COFFER_WITNESS_CHILD") == "1" {
		if n, err := strconv.ParseInt(os.Getenv("W_SNAPSHOT_EVERY"), 10, 64); err == nil {
			witness.SetSnapshotEvery(n)
		}
		cfg := witness.Config{LogKey: os.Getenv("W_LOG_KEY"), LogURL: os.Getenv("W_LOG_URL"),
			SignerKey: os.Getenv("W_SIGNER_KEY"), StateDir: os.Getenv("W_STATE")}
		err := witness.Serve(context.Background(), cfg, "127.0.0.1:0", func(addr string) { fmt.Println("addr " + addr) })
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

type child struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

func startChild(t *testing.T, l *testLog, skey, dir string, snapshotEvery int64) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "COFFER_WITNESS_CHILD=1", "W_LOG_KEY="+l.signer.VerifierKey(), "W_LOG_URL="+l.srv.URL,
		"W_SIGNER_KEY="+skey, "W_STATE="+dir, "W_SNAPSHOT_EVERY="+strconv.FormatInt(snapshotEvery, 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Wait()
		t.Fatalf("the witness did not start (%v): %s", err, stderr.String())
	}
	c.url = "http://" + strings.TrimSpace(strings.TrimPrefix(line, "addr "))
	go func() {
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.kill)
	return c
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// TestKillNineMidCosign kills the witness process at random points of its
// work (fetching leaves, replaying, writing its state, signing, answering)
// while a log presents it, round after round, two different extensions of
// the same size and re-signed checkpoints. It checks that no answered
// cosignature is ever lost on restart (the witness never comes back at a
// smaller size, or at another tree of a size it cosigned) and that no two
// cosignatures it gave are for different trees of one size.
func TestKillNineMidCosign(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process per round")
	}
	l := newTestLog(t)
	skey, vkey, err := translog.GenerateWitnessKey("witness.crash")
	if err != nil {
		t.Fatal(err)
	}
	wv, _ := translog.NewWitnessVerifier(vkey)
	lv, _ := translog.NewVerifier(l.signer.VerifierKey())
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))

	known := map[tlog.Hash][][]byte{}           // root → the leaves of every tree sent
	cosigned := map[int64]translog.Checkpoint{} // size → what a 200 answer vouched for
	maxCosigned := int64(-1)
	kills, answered := 0, 0

	record := func(signed, line string) {
		t.Helper()
		c, err := translog.OpenCosigned(translog.AddCosignatures(signed, line), lv, []*translog.WitnessVerifier{wv})
		if err != nil || len(c.Witnessed) != 1 {
			t.Fatalf("a 200 answer that is not a cosignature: %q %v", line, err)
		}
		if prev, ok := cosigned[c.Checkpoint.Size]; ok && !prev.SameTree(c.Checkpoint) {
			t.Fatalf("the witness cosigned two different trees of size %d", c.Checkpoint.Size)
		}
		cosigned[c.Checkpoint.Size] = c.Checkpoint
		maxCosigned = max(maxCosigned, c.Checkpoint.Size)
		answered++
	}
	var w *child
	// push sends one request, killing the witness at a random moment in
	// about a third of the pushes.
	push := func(old int64, leaves [][]byte, cp translog.Checkpoint) {
		t.Helper()
		l.setLeaves(leaves)
		signed := l.sign(cp)
		known[cp.Root] = leaves
		var proof []tlog.Hash
		if old > 0 && old < cp.Size {
			p, err := tlog.ProveTree(cp.Size, old, treeHashes(t, leaves))
			if err != nil {
				t.Fatal(err)
			}
			proof = p
		}
		type res struct {
			line string
			err  error
		}
		ch := make(chan res, 1)
		go func() {
			line, err := witness.Push(context.Background(), http.DefaultClient, w.url, old, proof, signed)
			ch <- res{line, err}
		}()
		if rng.IntN(3) == 0 {
			time.Sleep(time.Duration(rng.IntN(8000)) * time.Microsecond)
			w.kill()
			kills++
		}
		r := <-ch
		if r.err == nil {
			record(signed, r.line)
		}
	}

	next := 100
	for round := 0; round < 30; round++ {
		if w == nil || isDone(w) {
			// Snapshots now and then (a leaf is about 1.3 KB), so that
			// kills land in every step of both halves of the state.
			w = startChild(t, l, skey, dir, int64(3000+rng.IntN(3000)))
		}
		// Where is the witness? Its last cosigned checkpoint names a tree
		// this test sent.
		size, cur := int64(0), [][]byte(nil)
		var curCP translog.Checkpoint
		if note := getCheckpoint(t, w.url); note != "" {
			cp, err := lv.Open(note)
			if err != nil {
				t.Fatal(err)
			}
			leaves, ok := known[cp.Root]
			if !ok {
				t.Fatalf("the witness holds a checkpoint of size %d this test never sent", cp.Size)
			}
			size, cur, curCP = cp.Size, leaves[:cp.Size], cp
		}
		if size < maxCosigned {
			t.Fatalf("round %d: the witness restarted at size %d after cosigning size %d: state lost", round, size, maxCosigned)
		}
		if prev, ok := cosigned[size]; ok && !prev.SameTree(curCP) {
			t.Fatalf("round %d: the witness holds another tree of size %d than it cosigned", round, size)
		}
		// Two different extensions of one size, then each again from the
		// new size (one is a fork of what the witness holds), then a
		// re-signed checkpoint of the current size.
		a := append(append([][]byte(nil), cur...), mustMember(t, next).identityLeaf())
		b := append(append([][]byte(nil), cur...), mustMember(t, next+1).identityLeaf())
		next += 2
		l.clock++
		l.setLeaves(a)
		cpA := l.honest(int64(len(a)))
		l.setLeaves(b)
		cpB := l.honest(int64(len(b)))
		for _, step := range []struct {
			old    int64
			leaves [][]byte
			cp     translog.Checkpoint
		}{{size, a, cpA}, {size, b, cpB}, {cpA.Size, b, cpB}, {cpA.Size, a, cpA}} {
			if isDone(w) {
				break
			}
			push(step.old, step.leaves, step.cp)
		}
	}
	t.Logf("%d kills, %d cosignatures answered", kills, answered)
	if kills == 0 || answered == 0 {
		t.Fatal("the test killed nothing or cosigned nothing: it tested nothing")
	}
}

func isDone(c *child) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func getCheckpoint(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return string(b)
	case http.StatusNotFound:
		return ""
	}
	t.Fatal(errors.New(resp.Status))
	return ""
}
