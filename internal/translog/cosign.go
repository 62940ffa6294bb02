package translog

// Witness cosignatures.
//
// A witness is an independent party with its own Ed25519 key that cosigns a
// checkpoint only after checking that the log grew by appends (a consistency
// proof) and, for Coffer, that every new leaf means what the rules allow and
// the heads map is the one the leaves produce. Its cosignature is a C2SP
// tlog-cosignature/v1 note signature (transparency-dev/formats/note): it
// signs "cosignature/v1\ntime <t>\n" followed by the checkpoint body, so it
// also attests when the witness saw the checkpoint. Clients require a
// quorum of configured witnesses, each no older than their freshness bound.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// GenerateWitnessKey returns a new witness signer key and its cosignature/v1
// verifier key (the string clients and cofferd configure).
func GenerateWitnessKey(name string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("translog: witness name %q: %w", name, err)
	}
	vkey, err = tdnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		return "", "", err
	}
	return skey, vkey, nil
}

// WitnessKeyFromSeed is GenerateWitnessKey for a given Ed25519 seed (dev mode
// and tests derive witness keys from stored seeds).
func WitnessKeyFromSeed(name string, key ed25519.PrivateKey) (skey, vkey string, err error) {
	s, err := NewSigner(name, key)
	if err != nil {
		return "", "", err
	}
	vkey, err = tdnote.VKeyToCosignatureV1(s.VerifierKey())
	if err != nil {
		return "", "", err
	}
	return s.signerKey, vkey, nil
}

// Cosigner produces cosignature/v1 signatures.
type Cosigner struct {
	s    *tdnote.Signer
	vkey string
}

// NewCosigner parses a witness signer key.
func NewCosigner(skey string) (*Cosigner, error) {
	skey = strings.TrimSpace(skey)
	s, err := tdnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("translog: witness key: %w", err)
	}
	// The verifier key is the public half of the seed in skey.
	parts := strings.SplitN(skey, "+", 5) // the base64 key may itself contain '+'
	seed, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(seed) != 1+ed25519.SeedSize {
		return nil, errors.New("translog: witness key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(seed[1:]).Public().(ed25519.PublicKey)
	plain, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, err
	}
	vkey, err := tdnote.VKeyToCosignatureV1(plain)
	if err != nil {
		return nil, err
	}
	return &Cosigner{s: s, vkey: vkey}, nil
}

// Name is the witness's name.
func (c *Cosigner) Name() string { return c.s.Name() }

// VerifierKey returns the cosignature/v1 verifier key.
func (c *Cosigner) VerifierKey() string {
	return c.vkey
}

// Cosign signs the checkpoint body text and returns the signature line
// ("— name base64\n") to append to the log's note.
func (c *Cosigner) Cosign(text string) (string, error) {
	signed, err := note.Sign(&note.Note{Text: text}, c.s)
	if err != nil {
		return "", fmt.Errorf("translog: cosign: %w", err)
	}
	// The note is text, a blank line, then the one signature line.
	_, sig, ok := strings.Cut(string(signed), "\n\n")
	if !ok || !strings.HasPrefix(sig, "— ") {
		return "", errors.New("translog: cosign: unexpected note encoding")
	}
	return sig, nil
}

// WitnessVerifier checks one witness's cosignatures.
type WitnessVerifier struct {
	key string
	v   note.Verifier
}

// NewWitnessVerifier parses a witness verifier key (name+hash+base64 of a
// cosignature/v1 Ed25519 key; a plain Ed25519 note key is accepted and
// treated as the witness's cosignature key).
func NewWitnessVerifier(vkey string) (*WitnessVerifier, error) {
	vkey = strings.TrimSpace(vkey)
	v, err := tdnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return nil, fmt.Errorf("translog: witness key %q: %w", vkey, err)
	}
	return &WitnessVerifier{key: vkey, v: v}, nil
}

// Name is the witness's name.
func (w *WitnessVerifier) Name() string { return w.v.Name() }

// Key is the configured key string.
func (w *WitnessVerifier) Key() string { return w.key }

// Cosigned is a checkpoint with the cosignatures that verified.
type Cosigned struct {
	Checkpoint Checkpoint
	// Witnessed maps each witness name whose cosignature verified to the
	// time it attests.
	Witnessed map[string]time.Time
}

// Oldest returns the oldest of the quorum's newest attestations: the
// freshness of the checkpoint as q witnesses vouch for it. ok is false when
// fewer than q witnesses cosigned.
func (c Cosigned) Oldest(q int) (time.Time, bool) {
	if q <= 0 {
		return time.Unix(c.Checkpoint.Time, 0), true
	}
	if len(c.Witnessed) < q {
		return time.Time{}, false
	}
	ts := make([]time.Time, 0, len(c.Witnessed))
	for _, t := range c.Witnessed {
		ts = append(ts, t)
	}
	// The q-th newest attestation.
	for i := range ts {
		for j := i + 1; j < len(ts); j++ {
			if ts[j].After(ts[i]) {
				ts[i], ts[j] = ts[j], ts[i]
			}
		}
	}
	return ts[q-1], true
}

// OpenCosigned verifies signed (the log's note with any cosignature lines)
// under the log key and collects the cosignatures of the given witnesses
// that verify. Signatures by unknown keys are ignored; a signature by a
// known key that does not verify is an error (someone forged it).
func OpenCosigned(signed string, log *Verifier, witnesses []*WitnessVerifier) (Cosigned, error) {
	vs := []note.Verifier{log.v}
	for _, w := range witnesses {
		vs = append(vs, w.v)
	}
	n, err := note.Open([]byte(signed), note.VerifierList(vs...))
	if err != nil {
		return Cosigned{}, fmt.Errorf("translog: checkpoint signatures: %w", err)
	}
	var c Cosigned
	c.Witnessed = map[string]time.Time{}
	logSigned := false
	for _, s := range n.Sigs {
		if s.Name == log.v.Name() && s.Hash == log.v.KeyHash() {
			logSigned = true
			continue
		}
		for _, w := range witnesses {
			if s.Name == w.v.Name() && s.Hash == w.v.KeyHash() {
				t, err := tdnote.CoSigV1Timestamp(s)
				if err != nil {
					return Cosigned{}, fmt.Errorf("translog: cosignature of %s: %w", s.Name, err)
				}
				c.Witnessed[s.Name] = t
			}
		}
	}
	if !logSigned {
		return Cosigned{}, errors.New("translog: the checkpoint is not signed by the log")
	}
	if c.Checkpoint, err = ParseCheckpointText(n.Text); err != nil {
		return Cosigned{}, err
	}
	if c.Checkpoint.Origin != log.Origin() {
		return Cosigned{}, fmt.Errorf("translog: checkpoint of log %q, not %q", c.Checkpoint.Origin, log.Origin())
	}
	return c, nil
}

// AddCosignatures appends signature lines to a signed note, skipping lines
// already present.
func AddCosignatures(signed string, lines ...string) string {
	out := strings.TrimRight(signed, "\n") + "\n"
	for _, l := range lines {
		l = strings.TrimRight(l, "\n") + "\n"
		if strings.Contains(out, l) {
			continue
		}
		out += l
	}
	return out
}
