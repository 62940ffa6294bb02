package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer/internal/witness"
)

// witnessCommand is `coffer-audit witness`: a long-running cosigning
// witness (docs/AUDIT.md, "Running a witness").
func witnessCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Run a cosigning witness for a Coffer log",
		Long: `A witness is an independent process with its own Ed25519 key. cofferd pushes
each new checkpoint to it (C2SP tlog-witness add-checkpoint); the witness
fetches the new log leaves, replays them (identities, every group commit
through the chain verifier, the heads map) and answers with a timestamped
cosignature only when all of it holds. Clients require a quorum of such
cosignatures before they write.`,
	}

	var name, keyFile string
	keygen := &cobra.Command{
		Use:   "keygen",
		Short: "Generate a witness key",
		Long: `Write a new witness signer key to --key-file (mode 0600; never overwritten)
and print its verifier key, which cofferd (-witness URL=KEY) and clients
(coffer init --witness KEY) configure.`,
		Example: "  coffer-audit witness keygen --name witness.example.org --key-file witness.key",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required (a name without spaces or plus signs, such as a host name)")
			}
			vkey, err := witness.WriteSignerKey(keyFile, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, vkey)
			return nil
		},
	}
	keygen.Flags().StringVar(&name, "name", "", "the witness's name (appears in its cosignatures)")
	keygen.Flags().StringVar(&keyFile, "key-file", "witness.key", "file to write the signer key to")

	var listen, state, logKey, logURL, logLevel string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the witness",
		Long: `Serve POST /add-checkpoint (C2SP tlog-witness) for the one log whose note
verifier key is --log-key, fetching leaves from --log-url. The state under
--state is what keeps the witness honest across restarts: back it up, and
if it is ever lost, retire the key and start a new witness with a new key.`,
		Example: "  coffer-audit witness serve --listen :7380 --state /var/lib/coffer-witness --key-file witness.key \\\n" +
			"    --log-key \"$(cat log.pub)\" --log-url https://coffer.example.com",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" || state == "" || keyFile == "" || logKey == "" || logURL == "" {
				return errors.New("--listen, --state, --key-file, --log-key and --log-url are required")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			skey, err := witness.ReadSignerKey(keyFile)
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			return witness.Serve(cmd.Context(), witness.Config{
				LogKey: logKey, LogURL: logURL, SignerKey: skey, StateDir: state, Logger: logger,
			}, listen, nil)
		},
	}
	serve.Flags().StringVar(&listen, "listen", "", "address to listen on (host:port)")
	serve.Flags().StringVar(&state, "state", "", "directory keeping the witness's state")
	serve.Flags().StringVar(&keyFile, "key-file", "", "the witness signer key file (coffer-audit witness keygen)")
	serve.Flags().StringVar(&logKey, "log-key", "", "note verifier key of the log (from the operator, out of band)")
	serve.Flags().StringVar(&logURL, "log-url", "", "cofferd base URL to fetch log leaves from")
	serve.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.AddCommand(keygen, serve)
	return cmd
}
