package cofferd

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/store"
)

// The transparency log's sequencer runs in every replica. Writers append
// pending leaves in their own transactions; the sequencer integrates them
// into the tree in batches and signs a checkpoint. Replicas take turns on
// the log_head row lock, so exactly one integrates a given batch. A write
// through this replica pokes its sequencer at once, so the checkpoint
// normally covers a write a few milliseconds after it commits; writes
// through other replicas are picked up by the periodic pass.

const (
	sequencerBatch    = 10000
	sequencerInterval = 200 * time.Millisecond
)

// setupLog loads the log key (creating DATA/log.key when none is configured)
// and returns the checkpoint signer.
func (m *Main) setupLog() (*translog.Signer, error) {
	keyFile, origin := m.Config.LogKeyFile, m.Config.LogOrigin
	if keyFile == "" {
		// Only dev mode gets here (Validate requires -log-key otherwise):
		// it keeps its key under the data directory.
		keyFile = filepath.Join(m.DataDir(), "log.key")
		if err := os.MkdirAll(m.DataDir(), 0o700); err != nil {
			return nil, err
		}
		created, err := ensureKeyFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("transparency log key: %w", err)
		}
		if created {
			m.logger.Info("generated transparency log key", "file", keyFile)
		}
	}
	if origin == "" {
		h, _ := os.Hostname()
		origin = "coffer.dev-" + sanitizeOrigin(h)
	}
	key, err := loadEd25519Key(keyFile)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	s, err := translog.NewSigner(origin, key)
	if err != nil {
		return nil, err
	}
	m.Config.LogOrigin = origin
	if m.Config.LogKeyFile == "" {
		// Next to the generated key, the public half for clients and
		// auditors to pin (coffer-audit --log-key "$(cat DATA/log.pub)").
		if err := writeFileAtomic(filepath.Join(m.DataDir(), "log.pub"), []byte(s.VerifierKey()+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// sanitizeOrigin keeps a hostname usable as a note key name (no spaces or
// plus signs).
func sanitizeOrigin(h string) string {
	h = strings.ToLower(h)
	var b strings.Builder
	for _, r := range h {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "localhost"
	}
	return b.String()
}

func loadEd25519Key(file string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: want an Ed25519 key, got %T", file, k)
	}
	return ek, nil
}

// sequencer integrates pending log leaves.
type sequencer struct {
	db     *store.DB
	signer store.LogSigner
	logger *slog.Logger
	poke   chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
	// afterWrite runs after a pass that a write woke (the witness pusher).
	afterWrite atomic.Pointer[func()]
}

func (s *sequencer) setAfterWrite(f func()) { s.afterWrite.Store(&f) }

func startSequencer(db *store.DB, signer store.LogSigner, logger *slog.Logger) (*sequencer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sequencer{db: db, signer: signer, logger: logger, poke: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	// Sign the current tree (and integrate any backlog) before serving, so
	// the first client finds a checkpoint.
	if n, err := db.BackfillLog(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("log backfill: %w", err)
	} else if n > 0 {
		logger.Info("transparency log: appended entries written before the log existed", "entries", n)
	}
	if err := s.integrate(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("log sequencer: %w", err)
	}
	go s.run(ctx)
	return s, nil
}

// Poke asks for an integration pass soon; it never blocks.
func (s *sequencer) Poke() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

func (s *sequencer) integrate(ctx context.Context) error {
	for {
		n, err := s.db.IntegrateLog(ctx, s.signer, sequencerBatch)
		if err != nil {
			return err
		}
		if n < sequencerBatch {
			return nil
		}
	}
}

func (s *sequencer) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(sequencerInterval)
	defer t.Stop()
	for {
		poked := false
		select {
		case <-ctx.Done():
			return
		case <-s.poke:
			poked = true
		case <-t.C:
		}
		if err := s.integrate(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("transparency log: integration failed; retrying", "err", err)
		} else if f := s.afterWrite.Load(); poked && f != nil {
			(*f)()
		}
	}
}

func (s *sequencer) Stop() {
	s.cancel()
	<-s.done
}

// pokingAccounts and pokingGroups wake the sequencer after a write that
// appended a log leaf has committed.
type pokingAccounts struct {
	coffer.AccountService
	poke func()
}

func (p pokingAccounts) CreateAccount(ctx context.Context, a *coffer.Account) error {
	err := p.AccountService.CreateAccount(ctx, a)
	if err == nil {
		p.poke()
	}
	return err
}

type pokingChains struct {
	coffer.AccountChainService
	poke func()
}

func (p pokingChains) CreateChainAccount(ctx context.Context, a *coffer.Account, g *coffer.AccountLinkAppend) error {
	err := p.AccountChainService.CreateChainAccount(ctx, a, g)
	if err == nil {
		p.poke()
	}
	return err
}

func (p pokingChains) AppendAccountLink(ctx context.Context, a *coffer.AccountLinkAppend) (uint64, error) {
	head, err := p.AccountChainService.AppendAccountLink(ctx, a)
	if err == nil {
		p.poke()
	}
	return head, err
}

type pokingGroups struct {
	coffer.GroupService
	poke func()
}

func (p pokingGroups) CreateGroup(ctx context.Context, a *coffer.GroupAppend) error {
	err := p.GroupService.CreateGroup(ctx, a)
	if err == nil {
		p.poke()
	}
	return err
}

func (p pokingGroups) AppendCommit(ctx context.Context, caller coffer.AccountID, a *coffer.GroupAppend) (uint64, error) {
	head, err := p.GroupService.AppendCommit(ctx, caller, a)
	if err == nil {
		p.poke()
	}
	return head, err
}

// BackfillLog appends log entries for accounts and commits written to the
// database directly (by an import, or by a test playing the database), and
// integrates them. It is an operator hook; cofferd also does it at start.
func (m *Main) BackfillLog(ctx context.Context) error {
	if _, err := m.db.BackfillLog(ctx); err != nil {
		return err
	}
	return m.seq.integrate(ctx)
}
