package cofferd

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
)

// Dev mode runs one witness inside cofferd, with its key and state under
// the data directory, so that clients configured for a quorum work out of
// the box. A witness on the server's own machine shares the server's fate:
// it can catch bugs, never a compromised server. Production runs witnesses
// elsewhere, operated by someone else (docs/AUDIT.md).

type devWitness struct {
	url, vkey string
	skey      string
	cancel    context.CancelFunc
	done      chan error
}

// DevWitnessName is the dev witness's key name.
const DevWitnessName = "coffer.dev-witness"

// loadDevWitnessKey reads DATA/witness.key, creating it on first start, and
// writes the verifier key to DATA/witness.pub for clients.
func (m *Main) loadDevWitnessKey() (*devWitness, error) {
	file := filepath.Join(m.DataDir(), "witness.key")
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		if _, err := witness.WriteSignerKey(file, DevWitnessName); err != nil {
			return nil, err
		}
		m.logger.Info("dev mode: generated the dev witness key", "file", file)
	}
	skey, err := witness.ReadSignerKey(file)
	if err != nil {
		return nil, err
	}
	w := &devWitness{skey: skey}
	if w.vkey, err = witnessVerifierKey(skey); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(m.DataDir(), "witness.pub"), []byte(w.vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	return w, nil
}

// start serves the dev witness on a loopback port, fetching leaves from
// this cofferd at logURL.
func (w *devWitness) start(m *Main, logURL string) error {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan error, 1)
	ready := make(chan string, 1)
	cfg := witness.Config{LogKey: m.logKey, LogURL: logURL, SignerKey: w.skey,
		StateDir: filepath.Join(m.DataDir(), "witness"), Logger: m.logger.With("component", "dev-witness")}
	go func() { w.done <- witness.Serve(ctx, cfg, "127.0.0.1:0", func(addr string) { ready <- addr }) }()
	select {
	case addr := <-ready:
		w.url = "http://" + addr
	case err := <-w.done:
		cancel()
		w.cancel = nil
		return err
	}
	m.logger.Warn("dev mode: started a co-located witness; a witness on the server's own machine is for development only "+
		"(it cannot catch a compromised server): run independent witnesses in production (docs/AUDIT.md)",
		"witness_url", w.url, "witness_key", w.vkey, "witness_quorum", 1, "witness_key_file", filepath.Join(m.DataDir(), "witness.pub"))
	return nil
}

func (w *devWitness) stop() error {
	if w == nil || w.cancel == nil {
		return nil
	}
	w.cancel()
	w.cancel = nil
	return <-w.done
}

func witnessVerifierKey(skey string) (string, error) {
	c, err := translog.NewCosigner(skey)
	if err != nil {
		return "", err
	}
	return c.VerifierKey(), nil
}
