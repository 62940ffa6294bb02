package cofferd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cofferhq/coffer/internal/translog"
)

// LogKeyCommand is `cofferd logkey`: it prints the note verifier key that
// clients and auditors pin (coffer init --log-key, coffer-audit --log-key),
// computed from -log-key and -log-origin, or from the dev-mode key under
// -data. It touches nothing: no key is generated and no database opened.
func LogKeyCommand(args []string, stdout, stderr io.Writer) error {
	var c Config
	fs := c.flagSet("cofferd logkey")
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: cofferd logkey [-log-key FILE -log-origin NAME | -dev -data DIR]

Prints the transparency log's note verifier key (name+hash+key), the value
clients and auditors pin, for the key and origin cofferd would sign with.

Flags (the server's flags are accepted; these matter):
`)
		for _, name := range []string{"log-key", "log-origin", "dev", "data"} {
			f := fs.Lookup(name)
			fmt.Fprintf(fs.Output(), "  -%s\n    \t%s\n", f.Name, f.Usage)
		}
	}
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return UsageError{fmt.Sprintf("logkey: unexpected argument %q", fs.Arg(0))}
	}
	keyFile, origin := c.LogKeyFile, c.LogOrigin
	if c.Dev {
		data, _ := filepath.Abs(c.DataDir)
		if keyFile == "" {
			keyFile = filepath.Join(data, "log.key")
		}
		if origin == "" {
			h, _ := os.Hostname()
			origin = "coffer.dev-" + sanitizeOrigin(h)
		}
	}
	if keyFile == "" || origin == "" {
		return UsageError{"logkey: give -log-key and -log-origin (or -dev with its -data)"}
	}
	key, err := loadEd25519Key(keyFile)
	if err != nil {
		return fmt.Errorf("log key: %w", err)
	}
	s, err := translog.NewSigner(origin, key)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, s.VerifierKey())
	return err
}

// HealthcheckCommand is `cofferd healthcheck`, for container health checks
// (Docker HEALTHCHECK, compose): it asks the server on -addr for /readyz and
// returns nil only for 200. It reads the same -addr, -tls-cert and COFFER_*
// settings as the server, so one environment configures both.
func HealthcheckCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	fs := c.flagSet("cofferd healthcheck")
	url := fs.String("url", "", "probe this URL instead of /readyz on -addr")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: cofferd healthcheck [-addr ADDR] [-url URL] [-timeout D]

Asks a running cofferd for /readyz and exits 0 when it answers 200 (ready:
database reachable, schema current), 1 otherwise. With the server's
-addr (or COFFER_ADDR) and -tls-cert, it probes the same listener; an
unspecified host (":8080") means the loopback address.

Flags (the server's flags are accepted; these matter):
`)
		for _, name := range []string{"addr", "dev", "tls-cert", "url", "timeout"} {
			f := fs.Lookup(name)
			fmt.Fprintf(fs.Output(), "  -%s\n    \t%s\n", f.Name, f.Usage)
		}
	}
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return UsageError{fmt.Sprintf("healthcheck: unexpected argument %q", fs.Arg(0))}
	}
	target := *url
	if target == "" {
		addr := c.Addr
		if addr == "" {
			addr = ":8080"
			if c.Dev {
				addr = "127.0.0.1:8080"
			}
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return UsageError{fmt.Sprintf("healthcheck: -addr %q: %v", addr, err)}
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		scheme := "http"
		if c.TLSCert != "" {
			scheme = "https"
		}
		target = scheme + "://" + net.JoinHostPort(host, port) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return UsageError{fmt.Sprintf("healthcheck: %v", err)}
	}
	// The probe sends nothing secret and trusts nothing it reads beyond the
	// status code, and the certificate names the public host, not the
	// loopback address it is reached on here: so no verification.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", target, resp.Status)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}

// IsUsage reports whether err calls for exit status 2: a bad flag or
// argument.
func IsUsage(err error) bool {
	var u UsageError
	return errors.As(err, &u)
}
