package cofferd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// checkStoredLog refuses to start when the stored checkpoint was signed by
// another key or for another origin than the configured ones. The
// sequencer would otherwise re-sign the log under the new key at once, and
// every client that pinned the old key would stop with a security error: a
// forgotten or mistyped -log-key must not do that. Moving a log to a new key
// on purpose takes -log-replace-key naming the old verifier key, and the
// stored checkpoint must verify under it (docs/OPERATIONS.md).
func (m *Main) checkStoredLog(ctx context.Context, signer *translog.Signer) error {
	stored, err := m.db.LogCheckpoint(ctx)
	if coffer.ErrorCode(err) == coffer.EUNAVAILABLE {
		return nil // a new log: nothing signed yet
	}
	if err != nil {
		return fmt.Errorf("read the stored log checkpoint: %w", err)
	}
	ours, err := translog.NewVerifier(signer.VerifierKey())
	if err != nil {
		return err
	}
	if _, err := ours.Open(stored); err == nil {
		if m.Config.LogReplaceKey != "" && m.Config.LogReplaceKey != signer.VerifierKey() {
			m.logger.Info("the log is already signed under -log-key; -log-replace-key is no longer needed")
		}
		return nil
	}
	old := storedSigner(stored)
	if m.Config.LogReplaceKey != "" {
		v, err := translog.NewVerifier(m.Config.LogReplaceKey)
		if err != nil {
			return fmt.Errorf("-log-replace-key: %w", err)
		}
		if _, err := v.Open(stored); err != nil {
			return fmt.Errorf("-log-replace-key %q does not verify the stored checkpoint (signed by %s): refusing to re-sign the log", v.Key(), old)
		}
		m.logger.Warn("moving the transparency log to a new key on purpose: clients that pinned the old key must re-pin the new one",
			"old_log_key", v.Key(), "new_log_key", signer.VerifierKey())
		return nil
	}
	return fmt.Errorf("the stored transparency log was signed by %s, but -log-key and -log-origin give %q (origin %q); "+
		"clients pinned the stored key, so cofferd will not re-sign the log. Start with the original -log-key and -log-origin, "+
		"or move the log to the new key on purpose with -log-replace-key OLD_VERIFIER_KEY (see docs/OPERATIONS.md, \"Moving the log to a new key\")",
		old, signer.VerifierKey(), signer.Origin())
}

// storedSigner describes who signed a checkpoint, from the note's signature
// lines (key name and key hash) and the checkpoint's origin line. The note
// cannot name the whole old key (it carries only its hash), but the name and
// hash identify it against an operator's records.
func storedSigner(signed string) string {
	origin, _, _ := strings.Cut(signed, "\n")
	_, err := note.Open([]byte(signed), note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) && len(unverified.Note.UnverifiedSigs) > 0 {
		var keys []string
		for _, sig := range unverified.Note.UnverifiedSigs {
			keys = append(keys, fmt.Sprintf("%s+%08x", sig.Name, sig.Hash))
		}
		return fmt.Sprintf("key %s (origin %q)", strings.Join(keys, ", "), origin)
	}
	return fmt.Sprintf("an unknown key (origin %q)", origin)
}
