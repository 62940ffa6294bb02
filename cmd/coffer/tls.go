package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/cmd/coffer/internal/profile"
)

// tlsFiles are the TLS files of --cacert, --cert and --key: a private CA to
// verify the server with, and a client certificate for servers that require
// mutual TLS. init stores them in the profile, so later commands use them
// without the flags; a flag given later overrides the stored path.
type tlsFiles struct{ caCert, cert, key string }

func (t *tlsFiles) register(fs *pflag.FlagSet) {
	fs.StringVar(&t.caCert, "cacert", "", "PEM file of the CA certificate(s) to verify the server with, instead of the system roots")
	fs.StringVar(&t.cert, "cert", "", "PEM file of a client certificate, for servers that require mutual TLS (with --key)")
	fs.StringVar(&t.key, "key", "", "PEM file of the client certificate's private key (with --cert)")
}

// resolved returns the files in use: each flag given, else the profile's.
// Paths are made absolute, so that the profile keeps working from any
// directory.
func (t *tlsFiles) resolved(cfg *profile.Config) (tlsFiles, error) {
	out := tlsFiles{}
	if cfg != nil {
		out = tlsFiles{caCert: cfg.CACert, cert: cfg.Cert, key: cfg.Key}
	}
	for _, f := range []struct {
		flag string
		dst  *string
	}{{t.caCert, &out.caCert}, {t.cert, &out.cert}, {t.key, &out.key}} {
		if f.flag == "" {
			continue
		}
		abs, err := filepath.Abs(f.flag)
		if err != nil {
			return out, usagef("%v", err)
		}
		*f.dst = abs
	}
	if (out.cert == "") != (out.key == "") {
		return out, usagef("--cert and --key go together: give both, or neither")
	}
	return out, nil
}

// options loads the TLS files into clientlib options. A file given on the
// command line that does not load is a bad flag value (exit 2).
func (t *tlsFiles) options(cfg *profile.Config) (*clientlib.Options, error) {
	files, err := t.resolved(cfg)
	if err != nil {
		return nil, err
	}
	// Accounts made by coffer init are suite v2: their groups are too
	// (hybrid commits and headers, members' keys by hash).
	opts := &clientlib.Options{SuiteV2Groups: true}
	bad := func(flag string, err error) error {
		return usagef("--%s: %v", flag, err)
	}
	if files.caCert != "" {
		pem, err := os.ReadFile(files.caCert)
		if err != nil {
			return nil, bad("cacert", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, bad("cacert", fmt.Errorf("%s holds no PEM certificate", files.caCert))
		}
		opts.RootCAs = pool
	}
	if files.cert != "" {
		pair, err := tls.LoadX509KeyPair(files.cert, files.key)
		if err != nil {
			return nil, bad("cert", errors.Join(fmt.Errorf("loading %s and %s", files.cert, files.key), err))
		}
		opts.Certificates = []tls.Certificate{pair}
	}
	return opts, nil
}
