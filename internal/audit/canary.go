package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// CanaryOptions configure Canary.
type CanaryOptions struct {
	// Server is the cofferd base URL.
	Server string
	// DatabaseURL is the server's database, dumped with pg_dump.
	DatabaseURL string
	// DataDir is the server's data directory: its blob store, its log
	// (cofferd.log) and, in dev mode, its PostgreSQL files. Every file
	// under it is searched.
	DataDir string
	// ExtraFiles are more files or directories to search (a log file kept
	// elsewhere with -log-file, a separate blob directory).
	ExtraFiles []string
	// PgDump is the pg_dump binary (default: pg_dump on PATH, then
	// /usr/bin/pg_dump).
	PgDump string
	// LogKey is passed to the canary's clients (see clientlib.Options).
	LogKey   string
	Progress io.Writer
	// BeforeSearch, if set, runs after the workload and before the search,
	// for example to collect a server log kept elsewhere into ExtraFiles.
	BeforeSearch func() error
}

// A secret the canary's clients made, with the name it is reported under.
type canarySecret struct {
	kind  string
	value []byte
}

// Canary runs a workload with its own three clients against the server
// (register, verify, create a group, add members, upload and read
// resources, rotate, remove), recording every secret they make through the
// clientlib auditing hook and every plaintext it chose. Then it searches a
// pg_dump of the database and every file under the data directory for each
// of them, raw and in hex, base64 and base64url. Every hit is a finding.
func Canary(ctx context.Context, opts CanaryOptions) (*Report, error) {
	r := newReport("canary")
	p := &progress{w: opts.Progress}
	p.phase("running the workload against %s", opts.Server)
	secrets, err := canaryWorkload(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("canary workload: %w", err)
	}
	r.count("workload_clients", 3)

	// Resource file keys are made inside age; recover them from the
	// stored ciphertexts with the epoch keys the clients held.
	var epochKeys []groupkey.EpochKey
	for _, s := range secrets {
		if s.kind == "epoch-key" && len(s.value) == coffer.EpochKeySize {
			epochKeys = append(epochKeys, groupkey.EpochKey(s.value))
		}
	}
	secrets = append(secrets, fileKeys(opts.DataDir, epochKeys)...)
	inline, err := rowFileKeys(ctx, opts.DatabaseURL, epochKeys)
	if err != nil {
		return nil, fmt.Errorf("canary: reading content kept in rows: %w", err)
	}
	secrets = dedupe(append(secrets, inline...))
	kinds := map[string]int64{}
	for _, s := range secrets {
		kinds[s.kind]++
	}
	for k, n := range kinds {
		r.count("secrets_"+k, n)
	}
	m := newMatcher(secrets)
	r.count("needles", int64(len(m.needles)))

	if opts.BeforeSearch != nil {
		if err := opts.BeforeSearch(); err != nil {
			return nil, err
		}
	}
	dump, err := pgDump(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer os.Remove(dump)
	p.phase("searching the database dump")
	targets := append([]string{dump}, opts.DataDir)
	targets = append(targets, opts.ExtraFiles...)
	for _, t := range targets {
		if t == "" {
			continue
		}
		err := filepath.WalkDir(t, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
					r.Note("could not read %s: %v", path, err)
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			name := path
			if path == dump {
				name = "pg_dump of the database"
			}
			p.tick("searching %s", name)
			n, err := m.searchFile(path, func(off int64, nd needle) {
				r.Fail("canary", fmt.Sprintf("%s at byte %d", name, off), "%s found %s", nd.secret.kind, nd.encoding)
			})
			if err != nil {
				r.Note("could not read %s: %v", path, err)
				return nil
			}
			r.count("files_searched", 1)
			r.count("bytes_searched", n)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return r.finish(), nil
}

func randomToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// canaryWorkload runs the clients and returns their secrets and plaintexts.
func canaryWorkload(ctx context.Context, opts CanaryOptions) ([]canarySecret, error) {
	var (
		mu      sync.Mutex
		secrets []canarySecret
	)
	add := func(kind string, v []byte) {
		mu.Lock()
		secrets = append(secrets, canarySecret{kind, append([]byte(nil), v...)})
		mu.Unlock()
	}
	tag := randomToken()[:8]
	names := []string{"canary-" + tag + "-a", "canary-" + tag + "-b", "canary-" + tag + "-c"}
	var (
		clients []*clientlib.Client
		stores  []*clientlib.MemoryKeyStore
	)
	for _, h := range names {
		ks := clientlib.NewMemoryKeyStore()
		c, err := clientlib.New(opts.Server, ks, &clientlib.Options{
			LogKey:         opts.LogKey,
			SecretObserver: add, // the auditing hook; see clientlib.Options
		})
		if err != nil {
			return nil, err
		}
		if err := c.Register(ctx, h); err != nil {
			return nil, fmt.Errorf("register %s: %w", h, err)
		}
		clients, stores = append(clients, c), append(stores, ks)
	}
	a, b, c := clients[0], clients[1], clients[2]
	for _, peer := range clients[1:] {
		if _, err := a.Verify(ctx, string(peer.Identity().Handle()), peer.Identity().SafetyNumber()); err != nil {
			return nil, err
		}
	}
	plain := func(what string) string {
		s := "canary " + what + " " + randomToken()
		add("plaintext-"+what, []byte(s))
		return s
	}
	g, err := a.CreateGroup(ctx, plain("group-name"), &clientlib.GroupOptions{Description: plain("group-description")})
	if err != nil {
		return nil, err
	}
	if err := a.AddMember(ctx, g, names[1], coffer.RoleWriter); err != nil {
		return nil, err
	}
	if err := a.AddMember(ctx, g, names[2], coffer.RoleReader); err != nil {
		return nil, err
	}
	put := func(by *clientlib.Client) error {
		body := plain("resource-content") + strings.Repeat(" padding", 4096)
		res, err := by.Put(ctx, g, strings.NewReader(body), clientlib.Meta{Name: plain("resource-name"), ContentType: "text/plain"})
		if err != nil {
			return err
		}
		rd, err := c.Get(ctx, g, res.ID)
		if err != nil {
			return err
		}
		defer rd.Close()
		got, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		if string(got) != body {
			return errors.New("a resource read back differs from what was written")
		}
		return nil
	}
	if err := put(b); err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	if err := a.Rotate(ctx, g); err != nil {
		return nil, err
	}
	if err := put(a); err != nil {
		return nil, fmt.Errorf("resource after rotation: %w", err)
	}
	if err := a.RemoveMember(ctx, g, names[1]); err != nil {
		return nil, err
	}
	for _, cl := range []*clientlib.Client{a, c} {
		if _, err := cl.ReadableEpochs(ctx, g); err != nil {
			return nil, err
		}
	}
	if err := put(a); err != nil {
		return nil, fmt.Errorf("resource after removal: %w", err)
	}
	// Session secrets: the refresh tokens (the server keeps only hashes).
	for _, ks := range stores {
		if tok, err := ks.Get("session/refresh"); err == nil {
			add("refresh-token", tok)
		}
	}
	return secrets, nil
}

// fileKeys recovers the age file keys of the resources under dir made with
// one of keys.
func fileKeys(dir string, keys []groupkey.EpochKey) []canarySecret {
	var out []canarySecret
	if dir == "" || len(keys) == 0 {
		return nil
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		var magic [21]byte
		if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != "age-encryption.org/v1" {
			return nil
		}
		f.Seek(0, io.SeekStart)
		if fk, err := content.AuditFileKey(f, keys); err == nil {
			out = append(out, canarySecret{"file-key", fk})
		}
		return nil
	})
	return out
}

// rowFileKeys recovers the age file keys of the small resources (and
// uploads) whose content the database keeps in their rows.
func rowFileKeys(ctx context.Context, url string, keys []groupkey.EpochKey) ([]canarySecret, error) {
	if url == "" || len(keys) == 0 {
		return nil, nil
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT content FROM resources WHERE content IS NOT NULL
		UNION ALL SELECT content FROM uploads WHERE content IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	var out []canarySecret
	var b []byte
	_, err = pgx.ForEachRow(rows, []any{&b}, func() error {
		if fk, err := content.AuditFileKey(bytes.NewReader(b), keys); err == nil {
			out = append(out, canarySecret{"file-key", fk})
		}
		return nil
	})
	return out, err
}

func dedupe(s []canarySecret) []canarySecret {
	seen := map[string]bool{}
	var out []canarySecret
	for _, x := range s {
		k := x.kind + "\x00" + string(x.value)
		if !seen[k] {
			seen[k] = true
			out = append(out, x)
		}
	}
	return out
}

func pgDump(ctx context.Context, opts CanaryOptions) (string, error) {
	bin := opts.PgDump
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("pg_dump"); err != nil {
			bin = "/usr/bin/pg_dump"
		}
	}
	f, err := os.CreateTemp("", "coffer-canary-*.sql")
	if err != nil {
		return "", err
	}
	f.Close()
	cmd := exec.CommandContext(ctx, bin, "--no-owner", "--dbname="+opts.DatabaseURL, "--file="+f.Name())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("pg_dump: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return f.Name(), nil
}

// needle is one encoding of one secret.
type needle struct {
	secret   *canarySecret
	encoding string
	bytes    []byte
}

// matcher finds many needles in one pass: every needle is at least 8 bytes
// long, so each 8-byte window of the input is looked up in a filter and
// then in a map of needle prefixes.
type matcher struct {
	needles []needle
	prefix  map[uint64][]int
	filter  []uint64 // bitset over a hash of the 8-byte prefix
	maxLen  int
}

const filterBits = 1 << 20

func filterIndex(w uint64) uint64 { return (w * 0x9E3779B97F4A7C15) >> (64 - 20) }

func newMatcher(secrets []canarySecret) *matcher {
	m := &matcher{prefix: map[uint64][]int{}, filter: make([]uint64, filterBits/64)}
	for i := range secrets {
		s := &secrets[i]
		for _, e := range encodings(s.value) {
			if len(e.bytes) < 8 {
				continue
			}
			m.needles = append(m.needles, needle{secret: s, encoding: e.name, bytes: e.bytes})
		}
	}
	for i, n := range m.needles {
		w := binary.LittleEndian.Uint64(n.bytes)
		m.prefix[w] = append(m.prefix[w], i)
		fi := filterIndex(w)
		m.filter[fi/64] |= 1 << (fi % 64)
		m.maxLen = max(m.maxLen, len(n.bytes))
	}
	return m
}

type encoded struct {
	name  string
	bytes []byte
}

// encodings lists the forms a leaked secret would take: raw, hex in both
// cases, and base64 and base64url at each of the three alignments it can
// have inside a longer encoded string (characters that also depend on
// neighbouring bytes are left out).
func encodings(v []byte) []encoded {
	out := []encoded{
		{"raw", v},
		{"in hex", []byte(hex.EncodeToString(v))},
		{"in upper-case hex", []byte(strings.ToUpper(hex.EncodeToString(v)))},
	}
	for _, enc := range []struct {
		name string
		e    *base64.Encoding
	}{{"in base64", base64.RawStdEncoding}, {"in base64url", base64.RawURLEncoding}} {
		for shift := 0; shift < 3; shift++ {
			buf := append(make([]byte, shift), v...)
			s := enc.e.EncodeToString(buf)
			skip := []int{0, 2, 3}[shift]
			end := len(s)
			if (8*len(buf))%6 != 0 {
				end-- // the last character also holds bits of the next byte
			}
			if end-skip >= 8 {
				out = append(out, encoded{fmt.Sprintf("%s (offset %d)", enc.name, shift), []byte(s[skip:end])})
			}
		}
	}
	return out
}

// searchFile streams the file through the matcher and returns its size.
func (m *matcher) searchFile(path string, hit func(off int64, n needle)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	const chunk = 4 << 20
	buf := make([]byte, chunk+m.maxLen)
	var (
		base  int64 // file offset of buf[0]
		carry int
	)
	for {
		n, err := io.ReadFull(f, buf[carry:])
		end := carry + n
		last := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !last {
			return base + int64(end), err
		}
		// Windows starting before limit are complete (or the file ends).
		limit := end - m.maxLen + 1
		if last {
			limit = end
		}
		for i := 0; i+8 <= end && i < limit; i++ {
			w := binary.LittleEndian.Uint64(buf[i:])
			fi := filterIndex(w)
			if m.filter[fi/64]&(1<<(fi%64)) == 0 {
				continue
			}
			for _, ni := range m.prefix[w] {
				nd := m.needles[ni]
				if i+len(nd.bytes) <= end && bytes.Equal(buf[i:i+len(nd.bytes)], nd.bytes) {
					hit(base+int64(i), nd)
				}
			}
		}
		if last {
			return base + int64(end), nil
		}
		if limit < 0 {
			limit = 0
		}
		carry = copy(buf, buf[limit:end])
		base += int64(limit)
	}
}
