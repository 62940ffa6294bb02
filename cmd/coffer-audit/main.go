// Command coffer-audit checks that a Coffer server holds no plaintext
// secret and that every membership change it stores was authorized.
//
//	coffer-audit db --database-url URL [--log-key KEY]
//	coffer-audit log --server URL --state DIR [--log-key KEY]
//	coffer-audit canary --server URL --database-url URL --data DIR
//	coffer-audit witness keygen --name NAME --key-file FILE
//	coffer-audit witness serve --listen ADDR --state DIR --key-file FILE --log-key KEY --log-url URL
//
// Each prints a human summary (or, with --json, a JSON report) on stdout,
// progress on stderr, and exits 0 only when the audit is clean: 1 when it
// found something, 2 when it could not run. docs/AUDIT.md explains what a
// clean report proves and what it does not.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/buildinfo"
)

// Exit statuses.
const (
	exitClean    = 0
	exitFindings = 1
	exitError    = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		asJSON bool
		quiet  bool
		report *audit.Report
	)
	progress := func() io.Writer {
		if quiet {
			return nil
		}
		return stderr
	}
	env := func(name string) string { return os.Getenv(name) }

	root := &cobra.Command{
		Use:   "coffer-audit",
		Short: "Audit a Coffer deployment: its database, its transparency log, and what it stores",
		Long: `coffer-audit gives a machine-checkable verdict on a Coffer server, which
is untrusted by design.

  db      audits the database through a read-only snapshot: every column is
          classified, every key, wrap and signature is valid for its suite,
          every membership chain verifies, and the transparency log matches
          its signed checkpoint.
  log     witnesses the public transparency log: it only ever grows by
          appends, and every entry verifies.
  canary  runs a workload with its own clients and searches the database,
          the blob store and the server log for every secret they made.
  witness runs a cosigning witness that cofferd pushes checkpoints to.

The exit status is 0 only when the audit is clean, 1 when it found
something, and 2 when it could not run. See docs/AUDIT.md.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.String("coffer-audit"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	root.PersistentFlags().BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")

	var dbURL, logKey string
	dbCmd := &cobra.Command{
		Use:   "db",
		Short: "Audit the database (read-only)",
		Long: `Audit the database through one read-only, repeatable-read snapshot. Give it
a role with SELECT only; it never writes. --log-key (the log's note verifier
key, from the operator out of band) also checks the checkpoint's signature.`,
		Example: "  coffer-audit db --database-url postgres://auditor@db/coffer --log-key \"$(cat log.pub)\"",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dbURL == "" {
				dbURL = env("COFFER_DATABASE_URL")
			}
			if dbURL == "" {
				return errors.New("--database-url (or COFFER_DATABASE_URL) is required")
			}
			var err error
			report, err = audit.DB(cmd.Context(), dbURL, audit.DBOptions{LogKey: logKey, Progress: progress()})
			return err
		},
	}
	dbCmd.Flags().StringVar(&dbURL, "database-url", "", "PostgreSQL URL (default $COFFER_DATABASE_URL)")
	dbCmd.Flags().StringVar(&logKey, "log-key", "", "note verifier key of the transparency log")

	var server, state string
	logCmd := &cobra.Command{
		Use:   "log",
		Short: "Witness the transparency log",
		Long: `Witness mode: fetch the server's signed checkpoint, check that it extends the
checkpoint the last run verified (kept under --state), fetch and re-verify
every new entry, and store the new checkpoint only if all of that holds.
Run it periodically, from somewhere the operator does not control.`,
		Example: "  coffer-audit log --server https://coffer.example.com --state ~/.coffer-witness --log-key \"$(cat log.pub)\"",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" || state == "" {
				return errors.New("--server and --state are required")
			}
			var err error
			report, err = audit.Witness(cmd.Context(), audit.WitnessOptions{Server: server, StateDir: state, LogKey: logKey, Progress: progress()})
			return err
		},
	}
	logCmd.Flags().StringVar(&server, "server", "", "cofferd base URL")
	logCmd.Flags().StringVar(&state, "state", "", "directory keeping the witness's verified state")
	logCmd.Flags().StringVar(&logKey, "log-key", "", "note verifier key of the log (pinned on first run when omitted)")

	var dataDir, pgDump string
	var extra []string
	canaryCmd := &cobra.Command{
		Use:   "canary",
		Short: "Run a workload and search the server's storage for its secrets",
		Long: `Register three clients of its own, run a group workload (verify, add,
upload, read, rotate, remove), then search a pg_dump of the database and
every file under --data (blobs, server log, dev-mode PostgreSQL files) for
every secret those clients made, raw and in hex, base64 and base64url.
Every hit is printed; a clean run has none.`,
		Example: "  coffer-audit canary --server http://127.0.0.1:8080 --database-url \"$(cat .coffer/database-url)\" --data .coffer",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dbURL == "" {
				dbURL = env("COFFER_DATABASE_URL")
			}
			if server == "" || dbURL == "" || dataDir == "" {
				return errors.New("--server, --database-url and --data are required")
			}
			var err error
			report, err = audit.Canary(cmd.Context(), audit.CanaryOptions{
				Server: server, DatabaseURL: dbURL, DataDir: dataDir, ExtraFiles: extra,
				PgDump: pgDump, LogKey: logKey, Progress: progress(),
			})
			return err
		},
	}
	canaryCmd.Flags().StringVar(&server, "server", "", "cofferd base URL")
	canaryCmd.Flags().StringVar(&dbURL, "database-url", "", "the server's PostgreSQL URL, for pg_dump")
	canaryCmd.Flags().StringVar(&dataDir, "data", "", "the server's data directory (blobs, cofferd.log)")
	canaryCmd.Flags().StringSliceVar(&extra, "search", nil, "more files or directories to search (a -log-file elsewhere, a -blob-dir)")
	canaryCmd.Flags().StringVar(&pgDump, "pg-dump", "", "pg_dump binary (default: pg_dump on PATH, then /usr/bin/pg_dump)")
	canaryCmd.Flags().StringVar(&logKey, "log-key", "", "note verifier key of the log, for the canary's clients")

	root.AddCommand(dbCmd, logCmd, canaryCmd, witnessCommand(stdout, stderr))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "coffer-audit:", err)
		return exitError
	}
	if report == nil { // help
		return exitClean
	}
	if asJSON {
		if err := report.WriteJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "coffer-audit:", err)
			return exitError
		}
	} else {
		report.WriteText(stdout)
	}
	if !report.Clean {
		return exitFindings
	}
	return exitClean
}
