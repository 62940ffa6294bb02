// Package cofferd is the Coffer server process: it reads configuration,
// starts a private PostgreSQL in dev mode, migrates, wires the store to the
// HTTP server and shuts everything down gracefully. cmd/cofferd is a thin
// wrapper around Main so that end-to-end tests can start the same server
// in-process on a random port.
package cofferd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/pgcluster"
	"github.com/cofferhq/coffer/migrations"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/store"
)

// Main is one cofferd process.
type Main struct {
	Config Config
	// Stderr receives the log (and the log file, when configured).
	Stderr io.Writer
	// Listener, when set, is served instead of listening on -addr: tests
	// take a port first so that they can name it in -origin.
	Listener net.Listener

	logger   *slog.Logger
	logFile  *os.File
	cluster  *pgcluster.Cluster
	db       *store.DB
	listener net.Listener
	http     *http.Server
	tls      bool
	served   chan error
	blobs    coffer.BlobStore // resource ciphertext (resources.go)
	stopGC   func()           // stops the garbage collector, if running
	logKey   string           // note verifier key of the transparency log
	seq      *sequencer       // integrates the transparency log
	pusher   *witnessPusher   // pushes checkpoints to the witnesses, if any
	devWit   *devWitness      // dev mode's co-located witness
	lock     *dataLock        // dev mode: the data directory is ours
	srv      *server.Server
	metrics  *metricsListener // -metrics-addr, when set
	registry *prometheus.Registry
	gc       *gcMetrics
}

// NewMain returns a Main with default configuration.
func NewMain() *Main {
	return &Main{Stderr: os.Stderr}
}

// ParseFlags reads configuration from the environment and args.
func (m *Main) ParseFlags(args []string) error {
	return m.parseFlags("cofferd", usageHead, args)
}

// ParseMigrateFlags is ParseFlags for `cofferd migrate`.
func (m *Main) ParseMigrateFlags(args []string) error {
	return m.parseFlags("cofferd migrate", migrateUsageHead, args)
}

func (m *Main) parseFlags(name, head string, args []string) error {
	fs := m.Config.flagSet(name)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), head)
		fs.PrintDefaults()
	}
	if err := m.Config.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return UsageError{fmt.Sprintf("unexpected argument %q (cofferd takes flags only; subcommands: %s)", fs.Arg(0), strings.Join(Subcommands, ", "))}
	}
	return nil
}

// URL is the base URL clients use, valid after Run.
func (m *Main) URL() string {
	scheme := "http"
	if m.tls {
		scheme = "https"
	}
	return scheme + "://" + m.listener.Addr().String()
}

// DataDir returns the absolute data directory.
func (m *Main) DataDir() string {
	d, _ := filepath.Abs(m.Config.DataDir)
	return d
}

func (m *Main) setupLogging() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(m.Config.LogLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logFile := m.Config.LogFile
	if logFile == "" && m.Config.Dev {
		logFile = filepath.Join(m.DataDir(), "cofferd.log")
	}
	var w io.Writer = m.Stderr
	if logFile != "" {
		if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		m.logFile = f
		w = io.MultiWriter(m.Stderr, f)
	}
	opts := &slog.HandlerOptions{Level: level}
	if m.Config.LogFormat == "json" {
		m.logger = slog.New(slog.NewJSONHandler(w, opts))
	} else {
		m.logger = slog.New(slog.NewTextHandler(w, opts))
	}
	return nil
}

// LogKey returns the note verifier key of the transparency log (valid after
// Run), for clients and auditors to pin.
func (m *Main) LogKey() string { return m.logKey }

// Logger returns the process logger (valid after Run has started).
func (m *Main) Logger() *slog.Logger { return m.logger }

// Migrate applies the embedded migrations and returns; `cofferd migrate`.
func (m *Main) Migrate(ctx context.Context) error {
	if m.Config.Dev {
		if err := m.lockDataDir(); err != nil {
			return err
		}
	}
	if err := m.setupLogging(); err != nil {
		return err
	}
	if err := m.startDatabase(ctx); err != nil {
		return err
	}
	return store.Migrate(ctx, m.Config.DatabaseURL, m.logger)
}

// startDatabase resolves the database URL, starting the dev-mode cluster.
func (m *Main) startDatabase(ctx context.Context) error {
	if !m.Config.Dev {
		if m.Config.DatabaseURL == "" {
			return errors.New("no database: set -database-url (COFFER_DATABASE_URL), or use -dev")
		}
		return nil
	}
	dir := m.DataDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{
		DataDir: filepath.Join(dir, "postgres"),
		// Dev data persists between runs, so it must survive a crash.
		Fsync:  true,
		Logger: m.logger,
	})
	if err != nil {
		return fmt.Errorf("dev mode: start PostgreSQL: %w", err)
	}
	m.cluster = c
	if err := createDatabase(ctx, c.URL("postgres"), "coffer"); err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	if m.Config.DatabaseURL == "" {
		m.Config.DatabaseURL = c.URL("coffer")
	}
	if err := writeFileAtomic(filepath.Join(dir, "database-url"), []byte(m.Config.DatabaseURL+"\n"), 0o600); err != nil {
		return err
	}
	m.logger.Info("dev mode: database ready", "database_url_file", filepath.Join(dir, "database-url"))
	return nil
}

func createDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	}
	return nil
}

// Run starts the server and returns once it is listening.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if m.Config.Dev {
		// Before anything else touches the data directory (the log
		// file is in it).
		if err := m.lockDataDir(); err != nil {
			return err
		}
	}
	if err := m.setupLogging(); err != nil {
		return err
	}
	if m.Config.Dev && m.Config.Addr == "" {
		m.Config.Addr = "127.0.0.1:8080"
	}
	if m.Config.Addr == "" {
		m.Config.Addr = ":8080"
	}
	// The port is taken before PostgreSQL starts (or initdb runs): a
	// port in use fails in a moment, not after a minute of setup.
	if m.Listener != nil {
		m.listener = m.Listener
	} else {
		ln, err := net.Listen("tcp", m.Config.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", m.Config.Addr, err)
		}
		m.listener = ln
	}
	if m.Config.MetricsAddr != "" {
		ml, err := listenMetrics(m.Config.MetricsAddr)
		if err != nil {
			return err
		}
		m.metrics = ml
	}
	if m.Config.Dev {
		m.logger.Info("dev mode", "data", m.DataDir())
		keyFile := filepath.Join(m.DataDir(), "jwt.key")
		if err := os.MkdirAll(m.DataDir(), 0o700); err != nil {
			return err
		}
		created, err := ensureKeyFile(keyFile)
		if err != nil {
			return fmt.Errorf("dev mode: JWT key: %w", err)
		}
		if created {
			m.logger.Info("dev mode: generated access-token key", "file", keyFile)
		}
		if m.Config.JWTKeyFiles == "" {
			m.Config.JWTKeyFiles = keyFile
		}
	}
	keys, err := loadJWTKeys(m.Config.JWTKeyFiles)
	if err != nil {
		return err
	}
	if err := m.startDatabase(ctx); err != nil {
		return err
	}
	if m.Config.Migrate {
		if err := store.Migrate(ctx, m.Config.DatabaseURL, m.logger); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if m.db, err = m.openDB(ctx); err != nil {
		return err
	}
	want, err := migrations.Latest()
	if err != nil {
		return err
	}
	logSigner, err := m.setupLog()
	if err != nil {
		return err
	}
	if err := m.checkStoredLog(ctx, logSigner); err != nil {
		return err
	}
	if m.seq, err = startSequencer(m.db, logSigner, m.logger); err != nil {
		return err
	}
	m.logKey = logSigner.VerifierKey()
	if err := m.setupBlobs(ctx); err != nil {
		return err
	}

	ln := m.listener
	tlsConfig, err := m.tlsConfig()
	if err != nil {
		return err
	}
	m.tls = tlsConfig != nil

	cfg := server.DefaultConfig()
	cfg.JWTKeys = keys
	cfg.Logger = m.logger
	cfg.AuthRateLimit = m.Config.AuthRateLimit
	cfg.LogRateLimit = m.Config.LogRateLimit
	cfg.AccountRateLimit = m.Config.AccountRateLimit
	cfg.MaxInflightBodyBytes = m.Config.BodyBytes
	if cfg.TrustedProxies, err = parseTrustedProxies(m.Config.TrustedProxies); err != nil {
		return err
	}
	if cfg.Origins, err = m.origins(); err != nil {
		return err
	}
	cfg.MaxResourceSize = m.Config.MaxResourceSize
	cfg.MaxResourcesPerGroup = m.Config.MaxResourcesPerGroup
	cfg.ProgressTimeout = m.Config.ProgressTimeout
	cfg.JSONBodyTimeout = m.Config.JSONBodyTimeout
	cfg.MaxPendingBytesPerAccount = m.Config.MaxPendingBytesPerAccount
	cfg.SupersededBlobGrace = m.Config.SupersededBlobGrace
	cfg.LogKey = m.logKey
	cfg.MetricsElsewhere = m.metrics != nil
	m.registry = prometheus.NewRegistry()
	m.registry.MustRegister(newCofferdCollector(m.db))
	m.gc = newGCMetrics(m.registry)
	if err := m.setupWitnesses(); err != nil {
		return err
	}
	srv, err := server.New(cfg, server.Services{
		Accounts: pokingAccounts{m.db, m.seq.Poke},
		Auth:     m.db,
		Groups:   pokingGroups{m.db, m.seq.Poke},
		// Suite v2 account chains and pairings.
		AccountChains: pokingChains{m.db, m.seq.Poke},
		DeviceStates:  m.db,
		MemberKeys:    m.db,
		Log:           m.logService(),
		Resources:     m.db,
		Blobs:         m.blobs,
		Ready: func(ctx context.Context) error {
			if err := m.db.Ping(ctx); err != nil {
				return err
			}
			have, err := store.SchemaVersion(ctx, m.db.Pool())
			if err != nil {
				return err
			}
			if have < want {
				return fmt.Errorf("schema version %d is below %d: run cofferd migrate", have, want)
			}
			return nil
		},
		Registry: m.registry,
	})
	if err != nil {
		return err
	}
	m.srv = srv
	m.http = &http.Server{
		Handler:           srv,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	m.served = make(chan error, 1)
	go func() {
		var err error
		if m.tls {
			err = m.http.ServeTLS(ln, "", "")
		} else {
			err = m.http.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		m.served <- err
	}()
	if m.metrics != nil {
		m.metrics.serve(srv.MetricsHandler(), m.logger)
	}
	m.startCollector()
	if err := m.startWitnesses(); err != nil {
		return err
	}
	m.logger.Info("listening", "url", m.URL(), "origins", strings.Join(cfg.Origins, ","), "schema_version", want,
		"log_origin", m.Config.LogOrigin, "log_key", m.logKey)
	return nil
}

// origins lists what clients may bind into a login statement: the
// configured origins, or the listen address (plus localhost for loopback).
func (m *Main) origins() ([]string, error) {
	if m.Config.Origins != "" {
		return m.Config.origins()
	}
	scheme := "http"
	if m.tls {
		scheme = "https"
	}
	addr := m.listener.Addr().(*net.TCPAddr)
	port := fmt.Sprint(addr.Port)
	cands := []string{scheme + "://" + net.JoinHostPort(addr.IP.String(), port)}
	if addr.IP.IsLoopback() || addr.IP.IsUnspecified() {
		cands = append(cands, scheme+"://127.0.0.1:"+port, scheme+"://localhost:"+port, scheme+"://[::1]:"+port)
	}
	if addr.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			cands = append(cands, scheme+"://"+strings.ToLower(h)+":"+port)
		}
	}
	var out []string
	for _, o := range cands {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

func (m *Main) tlsConfig() (*tls.Config, error) {
	if m.Config.TLSCert == "" && m.Config.TLSKey == "" {
		if m.Config.TLSClientCA != "" {
			return nil, errors.New("-tls-client-ca needs -tls-cert and -tls-key")
		}
		return nil, nil
	}
	certs, err := newCertReloader(m.Config.TLSCert, m.Config.TLSKey, m.logger)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	if m.Config.TLSClientCA != "" {
		pem, err := os.ReadFile(m.Config.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("TLS client CA: no certificate found in file")
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Close shuts the server down gracefully, then the database and, in dev
// mode, PostgreSQL.
func (m *Main) Close() error {
	var errs []error
	if m.pusher != nil {
		m.pusher.Stop()
		m.pusher = nil
	}
	if m.devWit != nil {
		errs = append(errs, m.devWit.stop())
		m.devWit = nil
	}
	if m.http != nil {
		// New requests on open connections get 503 (clients retry);
		// those in flight have -shutdown-timeout to finish.
		m.srv.Drain()
		timeout := m.Config.ShutdownTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		m.waitQuiet(ctx)
		errs = append(errs, m.http.Shutdown(ctx))
		cancel()
		errs = append(errs, <-m.served)
		m.http = nil
	} else if m.listener != nil {
		m.listener.Close()
	}
	if m.metrics != nil {
		errs = append(errs, m.metrics.close())
		m.metrics = nil
	}
	if m.stopGC != nil {
		m.stopGC()
		m.stopGC = nil
	}
	if m.seq != nil {
		m.seq.Stop()
		m.seq = nil
	}
	if m.db != nil {
		m.db.Close()
		m.db = nil
	}
	if m.cluster != nil {
		if m.logger != nil {
			m.logger.Info("dev mode: stopping PostgreSQL")
		}
		errs = append(errs, m.cluster.Stop())
		m.cluster = nil
	}
	if m.logger != nil {
		m.logger.Info("stopped")
	}
	if m.logFile != nil {
		errs = append(errs, m.logFile.Close())
		m.logFile = nil
	}
	// Last: until here the cluster and files under DATA were in use.
	errs = append(errs, m.lock.release())
	m.lock = nil
	return errors.Join(errs...)
}

// lockDataDir takes the dev-mode data directory for this process.
func (m *Main) lockDataDir() error {
	if m.lock != nil {
		return nil
	}
	l, err := lockDataDir(m.DataDir())
	if err != nil {
		return fmt.Errorf("dev mode: %w", err)
	}
	m.lock = l
	return nil
}

// openDB opens the pool, sized by -db-max-conns when given.
func (m *Main) openDB(ctx context.Context) (*store.DB, error) {
	cfg, err := pgxpool.ParseConfig(m.Config.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if m.Config.DBMaxConns > 0 {
		cfg.MaxConns = int32(min(m.Config.DBMaxConns, math.MaxInt32))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	db := store.New(pool)
	db.CheckpointRefresh = m.Config.CheckpointInterval
	return db, nil
}

// drainQuiet is how long no request may be in flight before the listener
// closes: an upload's finalize follows its content stream within
// milliseconds, and must find the listener open.
const drainQuiet = time.Second

// waitQuiet waits, after Drain, until no request has been in flight for
// drainQuiet, or ctx ends.
func (m *Main) waitQuiet(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !m.srv.Quiet(drainQuiet) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
