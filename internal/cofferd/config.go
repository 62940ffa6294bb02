package cofferd

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/store"
)

// Config is cofferd's configuration, from flags and COFFER_* variables.
type Config struct {
	Addr             string
	DatabaseURL      string
	Dev              bool
	DataDir          string
	Migrate          bool
	JWTKeyFiles      string
	Origins          string
	TLSCert          string
	TLSKey           string
	TLSClientCA      string
	LogFile          string
	LogLevel         string
	AuthRateLimit    int
	LogRateLimit     int
	AccountRateLimit int

	BlobDir              string
	BlobURL              string
	MaxResourceSize      int64
	MaxResourcesPerGroup int64
	GCInterval           time.Duration
	UploadTTL            time.Duration
	LogKeyFile           string
	LogOrigin            string
	CheckpointInterval   time.Duration

	ProgressTimeout time.Duration
	JSONBodyTimeout time.Duration

	MaxPendingBytesPerAccount int64
	SupersededBlobGrace       time.Duration

	// LogReplaceKey is the verifier key the stored log was signed under,
	// given on purpose to move the log to -log-key (docs/OPERATIONS.md).
	LogReplaceKey string

	// Witnesses are the -witness URL=KEY flags (witnesses.go).
	Witnesses WitnessFlags

	LogFormat       string
	MetricsAddr     string
	TrustedProxies  string
	DBMaxConns      int
	ShutdownTimeout time.Duration
	BodyBytes       int64
}

// flagSet binds the configuration to flags. Each flag can also be set with
// COFFER_<NAME>, dashes becoming underscores; a flag on the command line
// wins over the environment.
func (c *Config) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", "", "listen address (default 127.0.0.1:8080 in dev mode, :8080 otherwise)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL (required unless -dev)")
	fs.BoolVar(&c.Dev, "dev", false, "development mode: private PostgreSQL and keys under -data, zero configuration")
	fs.StringVar(&c.DataDir, "data", "./.coffer", "data directory (dev-mode database, keys, blobs, log)")
	fs.BoolVar(&c.Migrate, "migrate", true, "apply database migrations at start")
	fs.StringVar(&c.JWTKeyFiles, "jwt-key", "", "comma-separated PEM files of Ed25519 access-token keys; the first signs (required unless -dev, which generates DATA/jwt.key)")
	fs.StringVar(&c.Origins, "origin", "", "comma-separated origins (scheme://host:port) clients may log in to (required unless -dev, which derives them from the listen address)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file (serve HTTPS, TLS 1.2 minimum)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS private key file")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "CA file to require and verify client certificates (mTLS)")
	fs.StringVar(&c.LogFile, "log-file", "", "also write the log to this file (dev mode: DATA/cofferd.log)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogKeyFile, "log-key", "", "PEM file of the Ed25519 key that signs transparency log checkpoints (required unless -dev, which uses DATA/log.key)")
	fs.DurationVar(&c.CheckpointInterval, "checkpoint-interval", store.DefaultCheckpointRefresh, "re-sign the log's checkpoint at least this often even when nothing was written, so witnesses can attest it is fresh (clients refuse checkpoints older than their MaxStaleness)")
	fs.StringVar(&c.LogOrigin, "log-origin", "", "origin line naming this deployment's transparency log (required unless -dev, which uses coffer.dev-<hostname>)")
	fs.StringVar(&c.LogReplaceKey, "log-replace-key", "", "verifier key the stored log was signed under, to re-sign it under -log-key on purpose (see docs/OPERATIONS.md)")
	fs.Var(&c.Witnesses, "witness", "URL=KEY of a witness to push each signed checkpoint to (repeatable; KEY is its cosignature verifier key, from coffer-audit witness keygen)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve /metrics on this separate address only (default: /metrics on -addr)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For / Forwarded headers name the client")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", 0, "most PostgreSQL connections in the pool (default: pgx's, max(4, CPUs))")
	fs.Int64Var(&c.BodyBytes, "max-body-bytes-in-flight", server.DefaultConfig().MaxInflightBodyBytes, "bytes of large request bodies (commits) held in memory at once; more wait their turn")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.IntVar(&c.AuthRateLimit, "auth-rate-limit", server.DefaultConfig().AuthRateLimit, "auth and registration requests per minute per client IP")
	fs.IntVar(&c.LogRateLimit, "log-rate-limit", server.DefaultConfig().LogRateLimit, "transparency-log requests per minute, per account when signed in, else per client IP (a proof batch counts once)")
	fs.IntVar(&c.AccountRateLimit, "account-rate-limit", server.DefaultConfig().AccountRateLimit, "requests per minute per signed-in account, for the API and the log each")
	fs.StringVar(&c.BlobDir, "blob-dir", "", "directory of resource ciphertext blobs (required unless -dev, which uses DATA/blobs)")
	fs.StringVar(&c.BlobURL, "blob-url", "", "blob store URL instead of -blob-dir: s3://BUCKET/PREFIX?endpoint=HOST:PORT&region=R (credentials from AWS_* variables or ~/.aws/credentials), or file:///DIR")
	fs.Int64Var(&c.MaxResourceSize, "max-resource-size", server.DefaultConfig().MaxResourceSize, "largest resource ciphertext accepted, in bytes")
	fs.Int64Var(&c.MaxResourcesPerGroup, "max-resources-per-group", server.DefaultConfig().MaxResourcesPerGroup, "most resources one group may hold")
	fs.DurationVar(&c.GCInterval, "gc-interval", 10*time.Minute, "how often abandoned uploads and orphan blobs are collected (0 disables)")
	fs.DurationVar(&c.UploadTTL, "upload-ttl", 24*time.Hour, "an upload idle this long is abandoned and collected")
	fs.DurationVar(&c.ProgressTimeout, "progress-timeout", server.DefaultConfig().ProgressTimeout, "cut off a request body or response that moves less than 64 KiB in this time (a client that trickles or stops reading)")
	fs.Int64Var(&c.MaxPendingBytesPerAccount, "max-pending-bytes-per-account", server.DefaultConfig().MaxPendingBytesPerAccount, "most bytes one account's unfinished uploads may hold until they are finalized, deleted or expire")
	fs.DurationVar(&c.SupersededBlobGrace, "superseded-blob-grace", server.DefaultConfig().SupersededBlobGrace, "how long the blob of a replaced or deleted resource version is kept for downloads already under way")
	fs.DurationVar(&c.JSONBodyTimeout, "json-body-timeout", server.DefaultConfig().JSONBodyTimeout, "time a JSON request body has to arrive whole")
	return fs
}

// parse applies COFFER_* variables, then the arguments.
func (c *Config) parse(fs *flag.FlagSet, args []string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "COFFER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s: %w", env, err)
			}
		}
	})
	if envErr != nil {
		return UsageError{envErr.Error()}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err.Error()}
	}
	return nil
}

// loadJWTKeys reads Ed25519 private keys (PKCS#8 PEM) from files.
func loadJWTKeys(files string) ([]server.JWTKey, error) {
	var keys []server.JWTKey
	for _, f := range strings.Split(files, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read JWT key: %w", err)
		}
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("JWT key %s: %w", f, err)
			}
			ek, ok := k.(ed25519.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("JWT key %s: want an Ed25519 key, got %T", f, k)
			}
			keys = append(keys, server.NewJWTKey(ek))
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no JWT key: set -jwt-key (COFFER_JWT_KEY) to a PEM file with an Ed25519 key, or use -dev")
	}
	return keys, nil
}

// ensureKeyFile creates an Ed25519 PKCS#8 PEM key at path unless it exists.
func ensureKeyFile(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return false, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return true, writeFileAtomic(path, pemBytes, 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Validate checks the whole configuration before cofferd does anything
// with a side effect (creating directories, starting PostgreSQL, signing),
// so a mistyped flag costs nothing. Outside dev mode every setting that
// names the deployment to clients is required: a default there would
// silently change what clients pinned (the log key and origin) or what
// their logins bind to (the origin).
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("-log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.CheckpointInterval != 0 && (c.CheckpointInterval < time.Second || c.CheckpointInterval > time.Hour) {
		bad("-checkpoint-interval %s: want between 1s and 1h", c.CheckpointInterval)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		bad("-log-format %q: want text or json", c.LogFormat)
	}
	if !c.Dev {
		for _, req := range []struct{ flag, value string }{
			{"-database-url", c.DatabaseURL},
			{"-jwt-key", c.JWTKeyFiles},
			{"-log-key", c.LogKeyFile},
			{"-log-origin", c.LogOrigin},
			{"-origin", c.Origins},
		} {
			if strings.TrimSpace(req.value) == "" {
				bad("%s is required (or COFFER_%s), unless -dev", req.flag, strings.ToUpper(strings.ReplaceAll(req.flag[1:], "-", "_")))
			}
		}
	}
	if !c.Dev && c.BlobDir == "" && c.BlobURL == "" {
		bad("-blob-dir or -blob-url is required (or COFFER_BLOB_DIR, COFFER_BLOB_URL), unless -dev")
	}
	if c.BlobDir != "" && c.BlobURL != "" {
		bad("set one of -blob-url and -blob-dir, not both")
	}
	if c.DatabaseURL != "" {
		if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
			bad("-database-url: %v", err)
		}
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			bad("-addr %q: %v", c.Addr, err)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("-metrics-addr %q: %v", c.MetricsAddr, err)
		} else if c.MetricsAddr == c.Addr {
			bad("-metrics-addr %q is the same as -addr: leave it empty to serve /metrics there", c.MetricsAddr)
		}
	}
	if _, err := c.origins(); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("-tls-cert and -tls-key go together")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		bad("-tls-client-ca needs -tls-cert and -tls-key")
	}
	if c.TLSCert != "" && c.TLSKey != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			bad("TLS: %v", err)
		}
	}
	if c.JWTKeyFiles != "" {
		if _, err := loadJWTKeys(c.JWTKeyFiles); err != nil {
			errs = append(errs, err)
		}
	}
	if c.LogKeyFile != "" {
		if _, err := loadEd25519Key(c.LogKeyFile); err != nil {
			bad("-log-key: %v", err)
		}
	}
	if c.LogOrigin != "" {
		if _, err := translog.NewSigner(c.LogOrigin, ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))); err != nil {
			bad("-log-origin %q: not usable as a log name (no spaces or '+')", c.LogOrigin)
		}
	}
	if c.LogReplaceKey != "" {
		if _, err := translog.NewVerifier(c.LogReplaceKey); err != nil {
			bad("-log-replace-key: %v", err)
		}
	}
	for _, n := range []struct {
		flag string
		v    int64
	}{
		{"-auth-rate-limit", int64(c.AuthRateLimit)}, {"-log-rate-limit", int64(c.LogRateLimit)}, {"-account-rate-limit", int64(c.AccountRateLimit)},
		{"-db-max-conns", int64(c.DBMaxConns)}, {"-max-resource-size", c.MaxResourceSize},
		{"-max-resources-per-group", c.MaxResourcesPerGroup}, {"-gc-interval", int64(c.GCInterval)},
		{"-upload-ttl", int64(c.UploadTTL)}, {"-shutdown-timeout", int64(c.ShutdownTimeout)},
		{"-max-body-bytes-in-flight", c.BodyBytes},
	} {
		if n.v < 0 {
			bad("%s must not be negative", n.flag)
		}
	}
	return errors.Join(errs...)
}

// origins parses -origin: each entry is scheme://host[:port], nothing more,
// since clients bind exactly that string into their login statements.
func (c *Config) origins() ([]string, error) {
	var out []string
	for _, o := range strings.Split(c.Origins, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("-origin %q: want scheme://host[:port], e.g. https://coffer.example.com", o)
		}
		out = append(out, o)
	}
	return out, nil
}

// parseTrustedProxies parses -trusted-proxies: CIDRs, or single addresses.
func parseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("-trusted-proxies %q: want a CIDR such as 10.0.0.0/8", p)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("-trusted-proxies %q: want a CIDR such as 10.0.0.0/8", p)
		}
		out = append(out, pr.Masked())
	}
	return out, nil
}
