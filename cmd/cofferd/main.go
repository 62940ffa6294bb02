// Command cofferd is the Coffer server.
//
//	cofferd -dev                 zero-configuration development server
//	cofferd -database-url URL -jwt-key FILE -log-key FILE -log-origin NAME -origin URL -blob-dir DIR
//	                             production (see README.md and docs/OPERATIONS.md)
//	cofferd migrate              apply database migrations and exit
//	cofferd genkey FILE...       create Ed25519 key files that do not exist yet
//	cofferd logkey               print the transparency log's verifier key
//	cofferd healthcheck          probe a running server's /readyz
//	cofferd version              print build information
//
// It exits 2 for a bad flag or argument, 1 for any other failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cofferhq/coffer/internal/buildinfo"
	"github.com/cofferhq/coffer/internal/cofferd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case cofferd.IsUsage(err):
		fmt.Fprintln(os.Stderr, "cofferd:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "cofferd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if wantsVersion(args) {
		_, err := fmt.Fprintln(stdout, buildinfo.String("cofferd"))
		return err
	}
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "version":
		if len(args) > 1 {
			if args[1] == "-h" || args[1] == "-help" || args[1] == "--help" {
				fmt.Fprintln(stderr, "Usage: cofferd version\n\nPrints the module version, VCS revision and Go version cofferd was built with.")
				return flag.ErrHelp
			}
			return cofferd.UsageError{Msg: fmt.Sprintf("version: unexpected argument %q", args[1])}
		}
		_, err := fmt.Fprintln(stdout, buildinfo.String("cofferd"))
		return err
	case "genkey":
		return genkey(args[1:], stderr)
	case "logkey":
		return cofferd.LogKeyCommand(args[1:], stdout, stderr)
	case "healthcheck":
		return cofferd.HealthcheckCommand(ctx, args[1:], stdout, stderr)
	case "migrate":
		m := cofferd.NewMain()
		m.Stderr = stderr
		if err := m.ParseMigrateFlags(args[1:]); err != nil {
			return err
		}
		defer m.Close()
		return m.Migrate(ctx)
	}
	m := cofferd.NewMain()
	m.Stderr = stderr
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	m.Logger().Info("shutting down")
	return m.Close()
}

// wantsVersion reports a -version or --version flag before any "--".
func wantsVersion(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-version", "--version":
			return true
		}
	}
	return false
}

func genkey(args []string, stderr io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprintln(stderr, `Usage: cofferd genkey FILE...

Creates an Ed25519 key (PKCS#8 PEM, mode 0600) at each FILE that does not
exist yet, for -jwt-key and -log-key. Existing files are never touched, so
rerunning it never rotates a key by accident.`)
			return flag.ErrHelp
		}
	}
	if len(args) == 0 {
		return cofferd.UsageError{Msg: "genkey: name at least one key file"}
	}
	created, err := cofferd.GenerateKeyFiles(args...)
	for _, f := range created {
		fmt.Fprintln(stderr, "cofferd: created", f)
	}
	return err
}
