package proccpu

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestSelfAdvances: burning CPU shows in Self, at /proc's resolution.
func TestSelfAdvances(t *testing.T) {
	before := Self()
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	if got := Self() - before; got < 50*time.Millisecond {
		t.Fatalf("200 ms of spinning counted as %v of CPU (x=%d)", got, x)
	}
}

// TestTreeCountsReapedChildren: a child's CPU stays in its parent's tree
// after the child exited and was waited for.
func TestTreeCountsReapedChildren(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	before := Tree(os.Getpid())
	// About 300 ms of CPU in the child.
	cmd := exec.Command(sh, "-c", `i=0; end=$(( $(date +%s%N) + 300000000 )); while [ $(date +%s%N) -lt $end ]; do i=$((i+1)); done`)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if got := Tree(os.Getpid()) - before; got < 100*time.Millisecond {
		t.Fatalf("a reaped child's CPU counted as %v", got)
	}
	if Parent(os.Getpid()) == 0 {
		t.Fatal("no parent pid for this process")
	}
}
