// Package proccpu reads processes' CPU time from Linux's /proc, for
// benchmarks that report the CPU a change costs in each process involved
// (client, cofferd, PostgreSQL) beside its wall time. On a shared machine
// CPU time moves far less with load than wall time does.
//
// Every function returns zero where /proc is missing or the process is
// gone: a benchmark then reports 0 rather than failing.
package proccpu

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// tick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on Linux
// whatever the kernel's own tick.
const tick = 10 * time.Millisecond

// statFields are the fields of /proc/<pid>/stat after the parenthesized
// command name (which may hold spaces): f[0] is the state, f[1] the
// parent's pid, f[11] and f[12] utime and stime, f[13] and f[14] the
// same for the children the process waited for.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return nil
	}
	return strings.Fields(string(b[i+2:]))
}

func ticks(f []string, from, to int) time.Duration {
	var n int64
	for i := from; i <= to && i < len(f); i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return time.Duration(n) * tick
}

// Process is the user and system CPU time process pid used so far.
func Process(pid int) time.Duration {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	return ticks(f, 11, 12)
}

// Self is Process of this process.
func Self() time.Duration { return Process(os.Getpid()) }

// Parent is the pid of pid's parent, or 0.
func Parent(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// Tree is the CPU time of process pid, of its live children, and of the
// children it already reaped: for a PostgreSQL postmaster, the whole
// cluster's work (backends serving connections now and those that exited,
// the WAL writer, the checkpointer).
func Tree(pid int) time.Duration {
	f := statFields(pid)
	if len(f) < 15 {
		return 0
	}
	total := ticks(f, 11, 14)
	procs, _ := os.ReadDir("/proc")
	parent := strconv.Itoa(pid)
	for _, p := range procs {
		child, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if cf := statFields(child); len(cf) >= 13 && cf[1] == parent {
			total += ticks(cf, 11, 12)
		}
	}
	return total
}

// Postmaster is the pid in a PostgreSQL data directory's postmaster.pid,
// or 0.
func Postmaster(dataDir string) int {
	b, err := os.ReadFile(dataDir + "/postmaster.pid")
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}
