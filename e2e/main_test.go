// Package e2e_test runs Coffer end to end: real cofferd servers on real
// PostgreSQL, driven only through clientlib. See harness_test.go.
package e2e_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/internal/cofferdtest"
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

// runSuite runs the tests and then the secret canary over every byte the
// servers logged. It is pgtest.Main with the scan added before the exit.
// pgtest.Main exits itself, so this cannot wrap it; pgtest's cluster is
// instead stopped and removed by its watchdog, which pgtest starts for
// exactly this case, when this process exits.
func runSuite(m *testing.M) int {
	// The parallel tests here spend most of their time waiting on servers
	// (log inclusion, retries, drains), not computing, so they may overlap
	// more than GOMAXPROCS, go test's default. An explicit -parallel wins.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		if err := flag.Set("test.parallel", strconv.Itoa(max(4, runtime.GOMAXPROCS(0)))); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	cofferdtest.RemoveBuild()
	logs := suiteLog.Bytes()
	secrets := Secrets()
	findings := ScanForSecrets(logs, secrets)
	if len(findings) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: secret canary: the server logs of this suite contain %d secret(s):\n", len(findings))
		for _, f := range findings {
			fmt.Fprintf(os.Stderr, "\t%s\n", f)
		}
		if code == 0 {
			code = 1
		}
	} else if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "secret canary: %d secrets, none in %d bytes of server logs\n", len(secrets), len(logs))
	}
	return code
}

// Secret is a value that must never reach a server log.
type Secret struct {
	// Kind says what it is, for the report; the value is never printed.
	Kind  string
	Value []byte
}

var secrets struct {
	sync.Mutex
	list []Secret
	seen map[string]bool
}

// minSecretLen keeps short values out of the canary: their encodings would
// occur by chance.
const minSecretLen = 16

// RecordSecret adds a value to the canary. Tests may record any secret
// their clients make (epoch keys, file keys) beyond what the harness
// records by itself.
func RecordSecret(kind string, value []byte) {
	if len(value) < minSecretLen {
		panic(fmt.Sprintf("e2e: secret %q is %d bytes, shorter than the canary's minimum of %d", kind, len(value), minSecretLen))
	}
	secrets.Lock()
	defer secrets.Unlock()
	if secrets.seen == nil {
		secrets.seen = map[string]bool{}
	}
	if secrets.seen[string(value)] {
		return
	}
	secrets.seen[string(value)] = true
	secrets.list = append(secrets.list, Secret{Kind: kind, Value: bytes.Clone(value)})
}

// Secrets returns every secret recorded so far.
func Secrets() []Secret {
	secrets.Lock()
	defer secrets.Unlock()
	return slices.Clone(secrets.list)
}

// Finding is a secret found in a log. It names the kind of secret, the
// encoding and where it is, never the secret.
type Finding struct {
	Kind     string
	Encoding string
	Offset   int
}

func (f Finding) String() string {
	return fmt.Sprintf("%s, %s, at byte %d of the log", f.Kind, f.Encoding, f.Offset)
}

// jwtRE matches anything shaped like a JWT: a base64url JSON header
// ("eyJ" is `{"`), then two dot-separated base64url parts.
var jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*`)

// needle is one encoding of a secret to search for.
type needle struct {
	encoding string
	text     []byte
}

// needles returns the encodings of v that can appear in a log: raw, hex in
// either case, and base64 in both alphabets. base64 output depends on the
// position of v within whatever was encoded, so for each of the three
// alignments it includes the characters that depend on v alone. They are
// found whether v was encoded by itself, with or without padding, or as part
// of a larger value.
func needles(v []byte) []needle {
	ns := []needle{
		{"raw", v},
		{"hex", []byte(hex.EncodeToString(v))},
		{"HEX", []byte(strings.ToUpper(hex.EncodeToString(v)))},
	}
	for _, enc := range []struct {
		name string
		e    *base64.Encoding
	}{{"base64", base64.RawStdEncoding}, {"base64url", base64.RawURLEncoding}} {
		for skip := range 3 {
			// v[skip:] starts on a 3-byte group boundary of the enclosing
			// encoding when v starts at offset ≡ 3-skip (mod 3); only whole
			// groups map to characters that do not depend on the neighbours.
			n := (len(v) - skip) / 3 * 3
			ns = append(ns, needle{
				fmt.Sprintf("%s (alignment %d)", enc.name, skip),
				[]byte(enc.e.EncodeToString(v[skip : skip+n])),
			})
		}
	}
	return ns
}

// ScanForSecrets searches log for each secret in every encoding of needles,
// and for JWTs.
func ScanForSecrets(log []byte, secrets []Secret) []Finding {
	var out []Finding
	for _, s := range secrets {
		for _, n := range needles(s.Value) {
			if i := bytes.Index(log, n.text); i >= 0 {
				out = append(out, Finding{Kind: s.Kind, Encoding: n.encoding, Offset: i})
				break // one finding per secret is enough
			}
		}
	}
	for _, loc := range jwtRE.FindAllIndex(log, -1) {
		out = append(out, Finding{Kind: "JWT (access token)", Encoding: "compact JWS", Offset: loc[0]})
	}
	return out
}

// TestCanaryScanner proves the scanner finds what it must and nothing else,
// on synthetic logs: it writes nothing to the servers' logs.
func TestCanaryScanner(t *testing.T) {
	secret := bytes.Repeat([]byte{0xfb, 0xef, 0xbe}, 11)[:32] // base64 has + and /, base64url - and _
	other := []byte("0123456789abcdef0123456789abcdef")
	secrets := []Secret{{Kind: "test seed", Value: secret}}
	line := func(s string) []byte {
		return []byte(`time=2026-01-01T00:00:00Z level=INFO msg=request request_id=1 note=` + s + " route=/v1/groups status=200\n")
	}

	hits := map[string][]byte{
		"raw":                     line(string(secret)),
		"hex":                     line(hex.EncodeToString(secret)),
		"upper hex":               line(strings.ToUpper(hex.EncodeToString(secret))),
		"base64":                  line(base64.StdEncoding.EncodeToString(secret)),
		"base64 unpadded":         line(base64.RawStdEncoding.EncodeToString(secret)),
		"base64url":               line(base64.URLEncoding.EncodeToString(secret)),
		"base64url unpadded":      line(base64.RawURLEncoding.EncodeToString(secret)),
		"JSON []byte":             line(`{"seed":"` + base64.StdEncoding.EncodeToString(secret) + `"}`),
		"a JWT":                   line("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"),
		"an unsigned JWT":         line("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
		"Authorization header":    line(`"Bearer eyJhbGciOiJFZERTQSIsImtpZCI6IngifQ.eyJpc3MiOiJjb2ZmZXIifQ.AAAA"`),
		"hex inside a longer hex": line("00" + hex.EncodeToString(secret) + "ff"),
	}
	// Embedded in a larger value at every offset, in both alphabets.
	for off := range 3 {
		blob := append(append(bytes.Repeat([]byte{7}, off+2), secret...), 1, 2, 3, 4)
		hits[fmt.Sprintf("base64 of a blob at offset %d", off+2)] = line(base64.StdEncoding.EncodeToString(blob))
		hits[fmt.Sprintf("base64url of a blob at offset %d", off+2)] = line(base64.RawURLEncoding.EncodeToString(blob))
	}
	for name, log := range hits {
		t.Run("finds "+name, func(t *testing.T) {
			log := append(line("before"), append(log, line("after")...)...)
			f := ScanForSecrets(log, secrets)
			if len(f) != 1 {
				t.Fatalf("%d findings %v, want 1", len(f), f)
			}
			if s := f[0].String(); strings.Contains(s, hex.EncodeToString(secret)) || strings.Contains(s, base64.StdEncoding.EncodeToString(secret)) {
				t.Fatalf("the report %q contains the secret", s)
			}
		})
	}

	misses := map[string][]byte{
		"a clean log":                  bytes.Repeat(line("nothing"), 100),
		"another value":                line(base64.StdEncoding.EncodeToString(other) + hex.EncodeToString(other)),
		"a truncated secret":           line(hex.EncodeToString(secret[:minSecretLen-1])),
		"a base64 JSON that is no JWT": line(base64.RawURLEncoding.EncodeToString([]byte(`{"a":1}`))),
		"route patterns and ids":       line("/v1/groups/{groupID}/keys 0c0ffe00-9a11-4e2d-8b1e-000000000001"),
	}
	for name, log := range misses {
		t.Run("ignores "+name, func(t *testing.T) {
			if f := ScanForSecrets(log, secrets); len(f) != 0 {
				t.Fatalf("findings %v, want none", f)
			}
		})
	}

	t.Run("the identity blob", func(t *testing.T) {
		// The key store layout the harness parses: version, handle length,
		// handle, Ed25519 seed, X-Wing seed.
		blob := append([]byte{1, 5}, "alice"...)
		blob = append(blob, secret...)
		blob = append(blob, other...)
		got, err := keyStoreSecrets("identity", blob)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !bytes.Equal(got[0].Value, secret) || !bytes.Equal(got[1].Value, other) {
			t.Fatalf("found %d secrets in the identity blob, want both seeds", len(got))
		}
		if _, err := keyStoreSecrets("identity", blob[:40]); err == nil {
			t.Fatal("a malformed identity blob was accepted silently")
		}
		if got, _ := keyStoreSecrets("contacts/bob", blob); len(got) != 0 {
			t.Fatal("a contact was taken for a secret")
		}
	})
}
