// Package buildinfo describes how a Coffer binary was built, for the
// `version` subcommand and `--version` flag of every command: operators and
// bug reports need to name the exact code that runs.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// String returns one line naming the binary, the module version, the VCS
// revision (with "+dirty" for a modified tree), its time and the Go version.
func String(binary string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return binary + " (no build information)"
	}
	return format(binary, bi)
}

func format(binary string, bi *debug.BuildInfo) string {
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", binary, version)
	if rev != "" {
		if dirty {
			rev += "+dirty"
		}
		fmt.Fprintf(&b, " revision %s", rev)
	}
	if at != "" {
		fmt.Fprintf(&b, " built from a commit of %s", at)
	}
	fmt.Fprintf(&b, " %s %s", bi.Path, bi.GoVersion)
	return b.String()
}
