// Package witness is Coffer's cosigning witness: an independent process,
// with its own Ed25519 key, that a log operator pushes each new checkpoint
// to (C2SP tlog-witness, POST /add-checkpoint) and that answers with a
// timestamped C2SP tlog-cosignature/v1 signature only when the checkpoint
// means what Coffer's rules allow.
//
// Before it cosigns a checkpoint the witness checks, in order:
//
//   - the log's signature (403 otherwise) and origin (404);
//   - that the request's old size is the size it last cosigned (409 with its
//     size otherwise), and, at an unchanged size, that the checkpoint is the
//     same tree (409 and evidence kept otherwise);
//   - the consistency proof from its last checkpoint (422);
//   - that the checkpoint's time does not go backwards and is not in the
//     future;
//   - then it fetches every new leaf from the log and replays it: each
//     identity verifies and is registered once (account and handle), each
//     group commit is the one commit at its (group, seq) and verifies through
//     coffer.VerifyChain from the group's previous state, each added member
//     carries its logged identity's keys, the leaves hash to the
//     checkpoint's root, and the heads map they produce is the checkpoint's
//     coffer-map line (422 with the Rule in Coffer-Witness-Refusal).
//
// Its state (the last cosigned checkpoint, a snapshot of what the replay
// needs to go on, and a journal of the leaves since; state.go) is made
// durable before the cosignature leaves the process, so that a crash at any
// point (kill -9 included) never lets it cosign two different checkpoints
// of one size.
package witness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer/internal/translog"
)

// Config configures a Witness.
type Config struct {
	// LogKey is the note verifier key of the one log this witness serves.
	LogKey string
	// LogURL is the cofferd base URL the witness fetches leaves from.
	LogURL string
	// SignerKey is the witness's note signer key (translog.GenerateWitnessKey).
	SignerKey string
	// StateDir keeps the witness's state.
	StateDir string
	// HTTPClient fetches leaves; it defaults to one with a one-minute timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock; it defaults to time.Now.
	Now func() time.Time
	// MaxFuture bounds how far ahead of the witness's clock a checkpoint's
	// time may be (default 5 minutes).
	MaxFuture time.Duration
}

// Witness holds one log's witnessed state.
type Witness struct {
	cfg      Config
	log      *translog.Verifier
	cosigner *translog.Cosigner
	leaves   *leafClient

	lock *os.File // flock on the state directory

	mu   sync.Mutex
	note string              // the last cosigned checkpoint (the log's note); "" before the first
	cp   translog.Checkpoint // its parsed form
	rp   *replay             // the state its leaves produce
	j    *journal            // the leaves since the snapshot
}

// Open loads (or starts) the witness state in cfg.StateDir.
func Open(cfg Config) (*Witness, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxFuture == 0 {
		cfg.MaxFuture = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("witness: a state directory is required")
	}
	v, err := translog.NewVerifier(cfg.LogKey)
	if err != nil {
		return nil, err
	}
	cs, err := translog.NewCosigner(cfg.SignerKey)
	if err != nil {
		return nil, err
	}
	lc, err := newLeafClient(cfg.LogURL, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	w := &Witness{cfg: cfg, log: v, cosigner: cs, leaves: lc}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	if w.lock, err = lockStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	if err := w.restore(); err != nil {
		w.lock.Close()
		return nil, err
	}
	return w, nil
}

// Close releases the state directory. The state needs no flushing: every
// cosignature was made durable before it was answered.
func (w *Witness) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.j.close()
	if w.lock != nil {
		err = errors.Join(err, w.lock.Close())
		w.lock = nil
	}
	return err
}

// VerifierKey is the witness's cosignature/v1 verifier key, which cofferd
// and clients configure.
func (w *Witness) VerifierKey() string { return w.cosigner.VerifierKey() }

// Size is the size of the last cosigned checkpoint (0 before the first).
func (w *Witness) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cp.Size
}

// Checkpoint returns the last cosigned checkpoint as the log signed it, or
// "" before the first.
func (w *Witness) Checkpoint() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.note
}

// restore loads the state from disk (state.go): the snapshot, then the
// journal up to the last cosigned checkpoint, checked against it. It is
// also how a refused or failed replay is undone.
func (w *Witness) restore() error {
	dir := w.cfg.StateDir
	w.j.close()
	w.j = nil
	st, err := loadSnapshot(dir)
	if err != nil {
		return err
	}
	noteC, err := readCheckpointFile(dir)
	if err != nil {
		return err
	}
	_, jerr := os.Stat(filepath.Join(dir, journalFile))
	if st == nil {
		if noteC != "" && jerr != nil {
			return corrupt(dir, "the checkpoint file is there but the journal is not")
		}
		if jerr != nil {
			if err := newJournal(dir, 0); err != nil {
				return err
			}
		}
		st = &diskState{Version: stateVersion, LogKey: w.log.Key(), Replay: &snapshot{}}
	}
	if st.LogKey != w.log.Key() {
		return fmt.Errorf("witness state in %s is for log key %q, not %q: a witness serves one log for life", dir, st.LogKey, w.log.Key())
	}
	var cpS translog.Checkpoint
	if st.Checkpoint != "" {
		if cpS, err = w.log.Open(st.Checkpoint); err != nil {
			return corrupt(dir, "the snapshot's checkpoint does not verify: "+err.Error())
		}
	}
	rp, err := st.Replay.restore()
	if err != nil {
		return corrupt(dir, err.Error())
	}
	if rp.size != cpS.Size {
		return corrupt(dir, fmt.Sprintf("the snapshot is at %d leaves, its checkpoint at %d", rp.size, cpS.Size))
	}
	note, cp := st.Checkpoint, cpS
	if noteC != "" && noteC != note {
		if cp, err = w.log.Open(noteC); err != nil {
			return corrupt(dir, "the checkpoint file does not verify: "+err.Error())
		}
		note = noteC
	}
	if cp.Size < cpS.Size || (cp.Size == cpS.Size && st.Checkpoint != "" && !cp.SameTree(cpS)) {
		return corrupt(dir, "the checkpoint file is behind the snapshot")
	}
	start, leaves, ends, err := readJournal(dir)
	if err != nil {
		return err
	}
	if start > rp.size || start+int64(len(leaves)) < cp.Size {
		return corrupt(dir, fmt.Sprintf("the journal holds leaves [%d, %d), the checkpoint needs [%d, %d)", start, start+int64(len(leaves)), rp.size, cp.Size))
	}
	for i := rp.size; i < cp.Size; i++ {
		if ref := rp.apply(i, leaves[i-start]); ref != nil {
			return corrupt(dir, "journal: "+ref.Error())
		}
	}
	if note != "" {
		if root, err := rp.root(); err != nil || root != cp.Root {
			return corrupt(dir, "the leaves do not hash to the stored checkpoint")
		}
		if ref := rp.checkMap(cp); ref != nil {
			return corrupt(dir, ref.Error())
		}
	}
	// Leaves after the checkpoint were never cosigned: cut them.
	keep := cp.Size - start
	size := int64(journalHeader)
	if keep > 0 {
		size = ends[keep-1]
	}
	j, err := openJournal(dir, start, keep, size)
	if err != nil {
		return err
	}
	w.note, w.cp, w.rp, w.j = note, cp, rp, j
	return nil
}

// ConflictError is a request whose old size is not the witness's: the
// caller retries with Size (C2SP tlog-witness 409).
type ConflictError struct {
	Size   int64
	Reason string
	Fork   bool // the checkpoint contradicts the one cosigned at Size
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: conflict: the witness's checkpoint is of size %d: %s", e.Size, e.Reason)
}

// StatusError is a refusal that maps to one HTTP status.
type StatusError struct {
	Status int
	Msg    string
}

func (e *StatusError) Error() string { return e.Msg }

func statusErr(status int, format string, args ...any) *StatusError {
	return &StatusError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// AddCheckpoint is the add-checkpoint operation: it checks signed (the log's
// signed note) as the successor of the witness's last checkpoint of size
// old, with proof the consistency proof between them, and returns the
// cosignature line. Errors are *ConflictError (409), *StatusError, or
// *Refusal (422).
func (w *Witness) AddCheckpoint(ctx context.Context, old int64, proof []tlog.Hash, signed string) (string, error) {
	origin, _, _ := strings.Cut(signed, "\n")
	if origin != w.log.Origin() {
		return "", statusErr(http.StatusNotFound, "this witness does not witness the log %q", origin)
	}
	cp, err := w.log.Open(signed)
	if err != nil {
		return "", statusErr(http.StatusForbidden, "the checkpoint is not signed by the log's key: %v", err)
	}
	if old > cp.Size {
		return "", statusErr(http.StatusBadRequest, "old size %d is larger than the checkpoint's size %d", old, cp.Size)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if old != w.cp.Size {
		return "", &ConflictError{Size: w.cp.Size, Reason: fmt.Sprintf("the request's old size is %d", old)}
	}
	switch {
	case w.note == "":
		if len(proof) != 0 {
			return "", statusErr(http.StatusBadRequest, "the first checkpoint (old size 0) takes no consistency proof")
		}
	case cp.Size == w.cp.Size:
		if !cp.SameTree(w.cp) {
			w.keepEvidence(signed)
			ref := refuse(RuleSameSize, "a checkpoint of size %d that is not the tree this witness cosigned at that size: the log forked", cp.Size)
			w.cfg.Logger.Warn("witness: the log presented a fork", "size", cp.Size)
			return "", &ConflictError{Size: w.cp.Size, Reason: ref.Error(), Fork: true}
		}
		if len(proof) != 0 {
			return "", statusErr(http.StatusBadRequest, "a checkpoint of the witness's size takes no consistency proof")
		}
	default:
		if err := translog.CheckConsistency(w.cp, cp, proof); err != nil {
			return "", refuse(RuleConsistent, "%v", err)
		}
	}
	if err := w.checkTime(cp); err != nil {
		return "", err
	}

	var fresh [][]byte
	if cp.Size > w.cp.Size || w.note == "" {
		var err error
		if fresh, err = w.replayTo(ctx, cp); err != nil {
			if rerr := w.restore(); rerr != nil {
				// The file is the truth; memory is unusable until it loads.
				return "", fmt.Errorf("witness: %v; and reloading the state failed: %w", err, rerr)
			}
			return "", err
		}
	}
	if signed != w.note {
		if err := w.persist(signed, cp, fresh); err != nil {
			if rerr := w.restore(); rerr != nil {
				return "", fmt.Errorf("witness: save state: %v; and reloading it failed: %w", err, rerr)
			}
			return "", fmt.Errorf("witness: save state: %w", err)
		}
		w.note, w.cp = signed, cp
	}
	line, err := w.cosigner.Cosign(cp.Text())
	if err != nil {
		return "", err
	}
	w.cfg.Logger.Info("witness: cosigned", "size", cp.Size, "map_size", cp.MapSize, "time", cp.Time)
	return line, nil
}

func (w *Witness) checkTime(cp translog.Checkpoint) error {
	if w.note != "" && cp.Time < w.cp.Time {
		return refuse(RuleTime, "the checkpoint's time %d is before the time %d of the checkpoint this witness cosigned last", cp.Time, w.cp.Time)
	}
	if limit := w.cfg.Now().Add(w.cfg.MaxFuture).Unix(); cp.Time > limit {
		return refuse(RuleTime, "the checkpoint's time %d is more than %s ahead of the witness's clock", cp.Time, w.cfg.MaxFuture)
	}
	return nil
}

// replayTo fetches and replays the leaves [w.cp.Size, cp.Size), then checks
// the tree root and the heads map against cp. It returns the leaves.
func (w *Witness) replayTo(ctx context.Context, cp translog.Checkpoint) ([][]byte, error) {
	var fresh [][]byte
	for w.rp.size < cp.Size {
		start := w.rp.size
		page, err := w.leaves.fetch(ctx, start, cp.Size)
		if err != nil {
			return nil, err
		}
		for i, leaf := range page {
			if ref := w.rp.apply(start+int64(i), leaf); ref != nil {
				return nil, ref
			}
		}
		fresh = append(fresh, page...)
	}
	root, err := w.rp.root()
	if err != nil {
		return nil, err
	}
	if root != cp.Root {
		return nil, refuse(RuleLeaves, "the leaves the log serves do not hash to the root of its checkpoint of size %d", cp.Size)
	}
	if ref := w.rp.checkMap(cp); ref != nil {
		return nil, ref
	}
	return fresh, nil
}

// persist makes the cosignature of signed durable: the new leaves into the
// journal, then the checkpoint file; and now and then a new snapshot.
func (w *Witness) persist(signed string, cp translog.Checkpoint, fresh [][]byte) error {
	if len(fresh) > 0 {
		if err := w.j.append(fresh); err != nil {
			return err
		}
	}
	if err := writeFileSync(filepath.Join(w.cfg.StateDir, checkpointFile), []byte(signed)); err != nil {
		return err
	}
	if w.j.size < snapshotEvery {
		return nil
	}
	snap, err := w.rp.snapshot()
	if err != nil {
		return err
	}
	if err := saveSnapshot(w.cfg.StateDir, &diskState{Version: stateVersion, LogKey: w.log.Key(), Checkpoint: signed, Replay: snap}); err != nil {
		return err
	}
	// The snapshot covers the journal; a crash before the new journal
	// lands leaves an old one that restore skips through.
	if err := newJournal(w.cfg.StateDir, cp.Size); err != nil {
		return err
	}
	w.j.close()
	w.j, err = openJournal(w.cfg.StateDir, cp.Size, 0, int64(journalHeader))
	return err
}

// keepEvidence stores a checkpoint that contradicts the cosigned one: it is
// signed by the log, so it proves the fork to anyone.
func (w *Witness) keepEvidence(signed string) {
	name := filepath.Join(w.cfg.StateDir, "fork-"+strconv.FormatInt(w.cfg.Now().UnixNano(), 10)+".txt")
	text := "cosigned:\n" + w.note + "\npresented:\n" + signed
	if err := writeFileSync(name, []byte(text)); err != nil {
		w.cfg.Logger.Warn("witness: could not keep the fork evidence", "err", err)
	}
}
