package cofferd

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cofferhq/coffer/server"
)

// Config is cofferd's configuration, from flags and COFFER_* variables.
type Config struct {
	Addr          string
	DatabaseURL   string
	Dev           bool
	DataDir       string
	Migrate       bool
	JWTKeyFiles   string
	Origins       string
	TLSCert       string
	TLSKey        string
	TLSClientCA   string
	LogFile       string
	LogLevel      string
	AuthRateLimit int
	LogRateLimit  int

	BlobDir              string
	BlobURL              string
	MaxResourceSize      int64
	MaxResourcesPerGroup int64
	GCInterval           time.Duration
	UploadTTL            time.Duration
	LogKeyFile           string
	LogOrigin            string

	ProgressTimeout time.Duration
	JSONBodyTimeout time.Duration

	MaxPendingBytesPerAccount int64
	SupersededBlobGrace       time.Duration
}

// flagSet binds the configuration to flags. Each flag can also be set with
// COFFER_<NAME>, dashes becoming underscores; a flag on the command line
// wins over the environment.
func (c *Config) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", "", "listen address (default 127.0.0.1:8080 in dev mode, :8080 otherwise)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL (not needed with -dev)")
	fs.BoolVar(&c.Dev, "dev", false, "development mode: private PostgreSQL and keys under -data, zero configuration")
	fs.StringVar(&c.DataDir, "data", "./.coffer", "data directory (dev-mode database, keys, blobs, log)")
	fs.BoolVar(&c.Migrate, "migrate", true, "apply database migrations at start")
	fs.StringVar(&c.JWTKeyFiles, "jwt-key", "", "comma-separated PEM files of Ed25519 access-token keys; the first signs (generated under -data in dev mode)")
	fs.StringVar(&c.Origins, "origin", "", "comma-separated origins (scheme://host:port) clients may log in to (default: derived from the listen address)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file (serve HTTPS, TLS 1.2 minimum)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS private key file")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "CA file to require and verify client certificates (mTLS)")
	fs.StringVar(&c.LogFile, "log-file", "", "also write the log to this file (dev mode: DATA/cofferd.log)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogKeyFile, "log-key", "", "PEM file of the Ed25519 key that signs transparency log checkpoints (default: DATA/log.key, generated)")
	fs.StringVar(&c.LogOrigin, "log-origin", "", "origin line naming this deployment's transparency log (default coffer.dev-<hostname> in dev mode)")
	fs.IntVar(&c.AuthRateLimit, "auth-rate-limit", server.DefaultConfig().AuthRateLimit, "auth and registration requests per minute per IP")
	fs.IntVar(&c.LogRateLimit, "log-rate-limit", server.DefaultConfig().LogRateLimit, "transparency-log requests per minute per IP (the log is public)")
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
		return envErr
	}
	return fs.Parse(args)
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
