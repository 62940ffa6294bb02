package witness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/translog"
)

// Serve opens the witness and serves it on listen until ctx ends. ready,
// if set, is called with the bound address once the witness accepts
// requests.
func Serve(ctx context.Context, cfg Config, listen string, ready func(addr string)) error {
	w, err := Open(cfg)
	if err != nil {
		return err
	}
	defer w.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 5 * time.Minute}
	w.cfg.Logger.Info("witness listening", "addr", ln.Addr().String(), "log", w.log.Origin(), "size", w.Size(),
		"verifier_key", w.VerifierKey())
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ReadSignerKey reads a witness signer key file written by WriteSignerKey.
func ReadSignerKey(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by others (mode %v): chmod 600 it", file, fi.Mode().Perm())
	}
	key := strings.TrimSpace(string(b))
	if _, err := translog.NewCosigner(key); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return key, nil
}

// WriteSignerKey generates a witness key named name into file (which must
// not exist) and returns its verifier key.
func WriteSignerKey(file, name string) (string, error) {
	skey, vkey, err := translog.GenerateWitnessKey(name)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return vkey, f.Close()
}
