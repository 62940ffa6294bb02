package mobile_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const jdkInstall = "apt-get install -y default-jdk-headless (or openjdk-17-jdk-headless), or set JAVA_HOME to a JDK 17+"

// TestJVMStory is the proof that the bindings work from Java: it generates
// them with gobind, builds the Go side as a shared library for the desktop
// JVM (the same glue gomobile puts in an AAR, minus Android's liblog),
// compiles the generated Java with mobile/jvmtest/Story.java, starts a real
// `cofferd -dev`, and runs the story (see Story.java) against it. Missing
// tools fail the test with what to install; it never skips.
func TestJVMStory(t *testing.T) {
	start := time.Now()
	phase := func(what string) {
		t.Logf("%6.1fs %s", time.Since(start).Seconds(), what)
	}
	root := moduleRoot(t)
	jdk := mustJDK(t)
	mustCgo(t)
	work := t.TempDir()

	gen := MustGenerate(t, "java,go")
	phase("gobind generated the bindings")
	lib := buildJVMLibrary(t, root, gen, work)
	phase("built libgojni.so")
	classes := compileJava(t, jdk, root, gen, work)
	phase("compiled the Java")
	url, dataDir := startCofferd(t, root, work)
	phase("cofferd -dev is ready at " + url)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	java := exec.CommandContext(ctx, filepath.Join(jdk, "bin", "java"),
		"-Djava.library.path="+lib, "-cp", classes, "Story", url, work)
	java.Stderr = &testWriter{t: t, prefix: "java stderr: "}
	stdin, err := java.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := java.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := java.Start(); err != nil {
		t.Fatal(err)
	}
	var last string
	tampered := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		t.Log("java: " + line)
		last = line
		if f := strings.Fields(line); len(f) == 3 && f[0] == "TAMPER" {
			// After the removal, only alice holds a wrap of epoch 2: give
			// her the wrap of epoch 1 in its place.
			tamperWrap(t, readDatabaseURL(t, dataDir), f[1], f[2], 1, 2)
			tampered = true
			io.WriteString(stdin, "DONE\n")
		}
	}
	stdin.Close()
	if err := java.Wait(); err != nil {
		t.Fatalf("the Java story failed: %v (last line: %q)", err, last)
	}
	if last != "PASS" || !tampered {
		t.Fatalf("the Java story did not finish: last line %q, tampered %v", last, tampered)
	}
	phase("the Java story passed")
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		tb.Fatalf("cannot find the module root: %v", err)
	}
	return filepath.Dir(gomod)
}

// mustJDK returns the home of a JDK with javac, java and the JNI headers.
func mustJDK(tb testing.TB) string {
	tb.Helper()
	home := os.Getenv("JAVA_HOME")
	if home == "" {
		javac, err := exec.LookPath("javac")
		if err != nil {
			tb.Fatalf("javac is not installed: %s", jdkInstall)
		}
		if javac, err = filepath.EvalSymlinks(javac); err != nil {
			tb.Fatal(err)
		}
		home = filepath.Dir(filepath.Dir(javac))
	}
	for _, f := range []string{"bin/javac", "bin/java", "include/jni.h", "include/linux/jni_md.h"} {
		if _, err := os.Stat(filepath.Join(home, f)); err != nil {
			tb.Fatalf("the JDK at %s lacks %s: %s", home, f, jdkInstall)
		}
	}
	return home
}

// mustCgo checks for the C compiler that -buildmode=c-shared needs.
func mustCgo(tb testing.TB) {
	tb.Helper()
	out, err := exec.Command("go", "env", "CC", "CGO_ENABLED").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		tb.Fatalf("go env CC CGO_ENABLED: %v", err)
	}
	if _, err := exec.LookPath(f[0]); err != nil {
		tb.Fatalf("the C compiler %q is not installed; cgo needs it: apt-get install -y gcc libc6-dev", f[0])
	}
}

// buildJVMLibrary builds the Go half of the bindings as libgojni.so, which
// go.Seq loads with System.loadLibrary("gojni"), and returns its
// directory. gobind writes the glue for Android; three changes make it a
// desktop library: the *_android files are renamed (their suffix would
// restrict them to GOOS=android), <android/log.h> comes from a stub, and
// -llog is dropped. The glue is a main package of its own module that
// points back at this one, the way gomobile bind builds it.
func buildJVMLibrary(tb testing.TB, root, gen, work string) string {
	tb.Helper()
	src := filepath.Join(gen, "src", "gobind")
	glue := filepath.Join(work, "glue")
	if err := os.MkdirAll(glue, 0o755); err != nil {
		tb.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.Contains(name, "darwin") || strings.Contains(name, "objc") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			tb.Fatal(err)
		}
		if ext := filepath.Ext(name); ext == ".go" || ext == ".c" {
			name = strings.Replace(name, "_android", "_jvm", 1)
		}
		if name == "seq_jvm.go" {
			b = []byte(strings.Replace(string(b), "//#cgo LDFLAGS: -llog\n", "", 1))
		}
		if err := os.WriteFile(filepath.Join(glue, name), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	gomod := fmt.Sprintf("module gobind\n\ngo 1.26.0\n\nrequire github.com/cofferhq/coffer v0.0.0\n\nreplace github.com/cofferhq/coffer => %s\n", root)
	if err := os.WriteFile(filepath.Join(glue, "go.mod"), []byte(gomod), 0o644); err != nil {
		tb.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(glue, "go.sum"), sum, 0o644); err != nil {
		tb.Fatal(err)
	}
	// The <android/log.h> stub, copied for the same reason as the Java
	// sources (see compileJava).
	stub, err := os.ReadFile(filepath.Join(root, "mobile", "jvmtest", "stubs", "include", "android", "log.h"))
	if err != nil {
		tb.Fatal(err)
	}
	include := filepath.Join(work, "include")
	if err := os.MkdirAll(filepath.Join(include, "android"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(include, "android", "log.h"), stub, 0o644); err != nil {
		tb.Fatal(err)
	}
	jdk := mustJDK(tb)
	lib := filepath.Join(work, "lib")
	cmd := exec.Command("go", "build", "-mod=mod", "-buildmode=c-shared", "-o", filepath.Join(lib, "libgojni.so"), ".")
	cmd.Dir = glue
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=1",
		"CGO_CFLAGS="+strings.Join([]string{
			"-I" + filepath.Join(jdk, "include"), "-I" + filepath.Join(jdk, "include", "linux"),
			"-I" + include,
			// seq.go sets this only for GOOS=android; the glue needs it.
			"-D__GOBIND_ANDROID__",
			// The glue passes jobject where JNI wants jstring etc.; GCC 14
			// made that an error by default.
			"-Wno-incompatible-pointer-types",
			"-O2",
		}, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building libgojni.so: %v\n%s", err, out)
	}
	return lib
}

// compileJava compiles the generated classes, the android.content.Context
// stub and Story.java, and returns the class directory.
func compileJava(tb testing.TB, jdk, root, gen, work string) string {
	tb.Helper()
	// The sources are copied through this process, not handed to javac by
	// path, so that go test's cache sees them: an edit to Story.java must
	// rerun the test.
	jvmtest := filepath.Join(root, "mobile", "jvmtest")
	var srcs []string
	for _, f := range []string{"Story.java", "stubs/android/content/Context.java"} {
		b, err := os.ReadFile(filepath.Join(jvmtest, f))
		if err != nil {
			tb.Fatal(err)
		}
		dst := filepath.Join(work, "java-src", filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			tb.Fatal(err)
		}
		srcs = append(srcs, dst)
	}
	filepath.WalkDir(filepath.Join(gen, "java"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".java") {
			srcs = append(srcs, p)
		}
		return err
	})
	classes := filepath.Join(work, "classes")
	args := append([]string{"-nowarn", "-encoding", "UTF-8", "-d", classes}, srcs...)
	if out, err := exec.Command(filepath.Join(jdk, "bin", "javac"), args...).CombinedOutput(); err != nil {
		tb.Fatalf("javac: %v\n%s", err, out)
	}
	return classes
}

// startCofferd builds cmd/cofferd and runs it in dev mode on a fresh data
// directory and a free port until the test ends. It returns the server URL
// and the data directory.
func startCofferd(tb testing.TB, root, work string) (string, string) {
	tb.Helper()
	bin := filepath.Join(work, "cofferd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/cofferd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("building cofferd: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dataDir := filepath.Join(work, "data")
	cmd := exec.Command(bin, "-dev", "-data", dataDir, "-addr", addr)
	logFile, err := os.Create(filepath.Join(work, "cofferd.stderr"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		// cofferd stops its private PostgreSQL on SIGTERM.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			tb.Error("cofferd did not stop within 30s of SIGTERM")
		}
		logFile.Close()
		if tb.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			tb.Logf("cofferd output:\n%s", b)
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logFile.Name())
			tb.Fatalf("cofferd exited: %v\n%s", err, b)
		default:
		}
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, dataDir
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cofferd not ready after 90s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readDatabaseURL reads the URL dev mode writes for operators.
func readDatabaseURL(tb testing.TB, dataDir string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "database-url"))
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// testWriter logs what a child process writes.
type testWriter struct {
	t      testing.TB
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + line)
	}
	return len(p), nil
}
