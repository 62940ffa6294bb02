package proccpu

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestSelfAdvances: burning CPU shows in Self. The loop runs until 50 ms of
// CPU are counted, however long a loaded machine takes to give them, and
// fails only if /proc never counts them.
func TestSelfAdvances(t *testing.T) {
	before := Self()
	deadline := time.Now().Add(time.Minute)
	x := 0
	for Self()-before < 50*time.Millisecond {
		for range 1_000_000 {
			x++
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute of spinning counted as %v of CPU (x=%d)", Self()-before, x)
		}
	}
}

// TestTreeCountsReapedChildren: a child's CPU, as its own rusage reports
// it, stays in its parent's tree after the child exited and was waited for.
func TestTreeCountsReapedChildren(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	before := Tree(os.Getpid())
	cmd := exec.Command(sh, "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if child < 30*time.Millisecond {
		t.Fatalf("the child used only %v of CPU; the test needs more", child)
	}
	// /proc counts in 10 ms ticks.
	if got := Tree(os.Getpid()) - before; got < child-2*tick {
		t.Fatalf("a reaped child's %v of CPU counted as %v", child, got)
	}
	if Parent(os.Getpid()) == 0 {
		t.Fatal("no parent pid for this process")
	}
}
