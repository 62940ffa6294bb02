package main

import (
	"strings"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	code, stdout, stderr := runCLI(t, "--version")
	if code != 0 || !strings.HasPrefix(stdout, "coffer-audit ") || !strings.Contains(stdout, "go1.") {
		t.Fatalf("coffer-audit --version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
