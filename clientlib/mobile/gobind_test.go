package mobile_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// gobindInstall is how to get gobind. Run from the module root, it builds
// the version of golang.org/x/mobile that go.mod pins, which matches the
// golang.org/x/mobile/bind package the generated code imports.
const gobindInstall = "go install golang.org/x/mobile/cmd/gobind (from the module root; or golang.org/x/mobile/cmd/gobind@latest)"

// MustGobind returns the path of a gobind binary: on PATH, or where
// `go install` puts it ($(go env GOBIN), or $(go env GOPATH)/bin), or else
// built once, for this test binary, from the golang.org/x/mobile version
// go.mod pins — so `go test ./...` needs no separate install step. If none
// of that works the test fails, never skips: the bindings are a
// deliverable, and a check that quietly does not run is no check.
func MustGobind(tb testing.TB) string {
	tb.Helper()
	if p, err := exec.LookPath("gobind"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var dirs []string
		if lines[0] != "" {
			dirs = append(dirs, lines[0])
		}
		if len(lines) > 1 {
			for _, p := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
		for _, dir := range dirs {
			p := filepath.Join(dir, "gobind")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	builtGobind.once.Do(func() {
		// One fixed place, rebuilt each run (the go build cache makes that
		// instant), so repeated runs leave nothing behind.
		dir := filepath.Join(os.TempDir(), "coffer-gobind")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			builtGobind.err = err
			return
		}
		builtGobind.path = filepath.Join(dir, "gobind")
		if out, err := exec.Command("go", "build", "-o", builtGobind.path, "golang.org/x/mobile/cmd/gobind").CombinedOutput(); err != nil {
			builtGobind.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if builtGobind.err != nil {
		tb.Fatalf("gobind is not installed (not on PATH, GOBIN or GOPATH/bin) and building it failed: %v\ninstall it with\n\t%s", builtGobind.err, gobindInstall)
	}
	return builtGobind.path
}

var builtGobind struct {
	once sync.Once
	path string
	err  error
}

// MustGenerate runs gobind for this package into a new directory and
// returns it: java/ holds the Java classes, src/gobind/ the Go and C glue
// and, with objc among langs, the Objective-C headers and .m files.
func MustGenerate(tb testing.TB, langs string) string {
	tb.Helper()
	gobind := MustGobind(tb)
	out := tb.TempDir()
	cmd := exec.Command(gobind, "-lang="+langs, "-outdir="+out, ".")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("gobind -lang=%s: %v\n%s", langs, err, b)
	}
	return out
}

// skippedRE matches what gobind leaves where it drops an API element it
// cannot bind: "// skipped method Client.X with unsupported parameter or
// return types", "// skipped field ...", "// skipped function ...",
// "// skipped const ...", "// skipped variable ...".
var skippedRE = regexp.MustCompile(`(?i)skipped`)

// Every exported function, method, field, constant and type of the facade
// must reach Java and Objective-C: gobind drops unsupported ones with only
// a comment, and an app developer would find out when the method is not
// there.
func TestGobindNoSkipped(t *testing.T) {
	out := MustGenerate(t, "java,go,objc")
	var generated, skipped []string
	filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		generated = append(generated, rel)
		for i, line := range bytes.Split(b, []byte("\n")) {
			if skippedRE.Match(line) {
				skipped = append(skipped, rel+":"+strconv.Itoa(i+1)+": "+strings.TrimSpace(string(line)))
			}
		}
		return nil
	})
	if len(skipped) > 0 {
		t.Errorf("gobind skipped %d API elements; use only string, bool, int64, float64, []byte, error, pointers to structs of those and interfaces of those:\n%s",
			len(skipped), strings.Join(skipped, "\n"))
	}
	// The check is only as good as the output it read.
	for _, want := range []string{
		"java/mobile/Client.java", "java/mobile/KeyStore.java", "java/mobile/Progress.java", "java/mobile/Mobile.java",
		"src/gobind/Mobile.objc.h", "src/gobind/go_mobilemain.go",
	} {
		if !slices.Contains(generated, filepath.FromSlash(want)) {
			t.Errorf("gobind did not generate %s; it generated %v", want, generated)
		}
	}
	// Spot-check that the whole API surface arrived.
	client, _ := os.ReadFile(filepath.Join(out, "java", "mobile", "Client.java"))
	for _, m := range []string{
		"register(String handle)", "login()", "safetyNumber()", "qrPayload()",
		"verify(String handle, String code)", "contacts()",
		"createGroup(String name, GroupOptions opts)", "groups()", "members(String groupID)",
		"addMember(String groupID, String handle, String role)", "removeMember(String groupID, String handle)", "rotate(String groupID)",
		"putBytes(String groupID, byte[] data, Meta meta, Progress progress, Cancel cancel)",
		"putFile(String groupID, String path, Meta meta, Progress progress, Cancel cancel)",
		"getBytes(String groupID, String resourceID, Progress progress, Cancel cancel)",
		"getFile(String groupID, String resourceID, String path, Progress progress, Cancel cancel)",
		"public Client(String serverURL, KeyStore store)",
	} {
		if !bytes.Contains(client, []byte(m)) {
			t.Errorf("Client.java lacks %s", m)
		}
	}
	objc, _ := os.ReadFile(filepath.Join(out, "src", "gobind", "Mobile.objc.h"))
	if !bytes.Contains(objc, []byte("MobileErrorCode")) || !bytes.Contains(objc, []byte("@protocol MobileKeyStore")) {
		t.Errorf("Mobile.objc.h lacks MobileErrorCode or the KeyStore protocol")
	}
}
