package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Path:      "github.com/cofferhq/coffer/cmd/cofferd",
		Main:      debug.Module{Path: "github.com/cofferhq/coffer", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-11-30T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := format("cofferd", bi)
	for _, want := range []string{"cofferd v1.2.3", "revision 0123abcd+dirty", "2026-11-30T12:00:00Z", "go1.26.0", "cmd/cofferd"} {
		if !strings.Contains(got, want) {
			t.Errorf("format() = %q, missing %q", got, want)
		}
	}
	if got := String("coffer"); !strings.HasPrefix(got, "coffer ") {
		t.Errorf("String() = %q", got)
	}
}
