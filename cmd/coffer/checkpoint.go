package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer/internal/translog"
)

// The split-view defence, by hand: every client keeps the largest log
// checkpoint it verified; two people (or a person and a witness) exchange
// theirs over a channel the server does not control, and each checks the
// other's. A server that showed them different logs cannot prove the two
// consistent, which is a security error (exit 3).

func (a *app) checkpointCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Compare transparency log checkpoints with others (split-view defence)",
		Long: `The server logs every identity and membership change in a transparency
log and signs checkpoints of it. This device keeps the largest checkpoint it
verified. To make sure the server shows everyone the same log, exchange
checkpoints with other members or a witness over another channel:

  coffer checkpoint show > mine.txt          # send mine.txt to bob
  coffer checkpoint check bobs.txt           # check the one bob sent

check exits 3 (security error) if the two cannot be proven consistent:
the server is showing you different logs.`,
		Args: unknownCommand,
		RunE: helpIfNoArgs,
	}
	cmd.AddCommand(a.checkpointShowCmd(), a.checkpointCheckCmd())
	return cmd
}

// checkpointJSON is a checkpoint as --json prints it.
type checkpointJSON struct {
	Origin string `json:"origin"`
	Size   int64  `json:"size"`
	Root   string `json:"root"` // base64, as in the note
	Note   string `json:"note"` // the signed note, to pass to checkpoint check
}

func checkpointOf(note string) (checkpointJSON, error) {
	body, _, ok := strings.Cut(note, "\n\n")
	if !ok {
		return checkpointJSON{}, fmt.Errorf("not a signed checkpoint note")
	}
	cp, err := translog.ParseCheckpointText(body + "\n")
	if err != nil {
		return checkpointJSON{}, err
	}
	return checkpointJSON{cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Root[:]), note}, nil
}

func (a *app) checkpointShowCmd() *cobra.Command {
	var local bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print this device's latest verified log checkpoint",
		Long: `show fetches the server's current checkpoint, verifies its signature and
its consistency with every checkpoint this device saw before, and prints it
as a signed note: the text to give someone for coffer checkpoint check.
With --local it prints the stored one without contacting the server.`,
		Args: exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var note string
			if local {
				note, err = c.Checkpoint()
			} else {
				note, err = c.LatestCheckpoint(ctx)
			}
			if err != nil {
				return err
			}
			if a.asJSON {
				cp, err := checkpointOf(note)
				if err != nil {
					return err
				}
				return a.printJSON(cp)
			}
			fmt.Fprint(a.stdout, note)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&local, "local", false, "print the stored checkpoint without contacting the server")
	return cmd
}

// maxNote bounds a checkpoint read from a file: a note is a few hundred
// bytes; anything much larger is the wrong file.
const maxNote = 64 << 10

func (a *app) checkpointCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Check a checkpoint another client or a witness saw against this device's",
		Long: `check reads a signed checkpoint (the output of coffer checkpoint show on
another device, or a witness's) from FILE, "-" for standard input, and
checks that it is signed by this profile's pinned log key and consistent
with this device's own view of the log, with a proof from the server. A
larger consistent checkpoint is adopted.

Exit 3 means the server showed the two of you different logs (a split
view): tell the other party and whoever runs the server.`,
		Args:              exactArgs(1),
		ValidArgsFunction: a.completeArgs(argFile),
		RunE: action(func(ctx context.Context, args []string) error {
			var r io.Reader = a.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			b, err := io.ReadAll(io.LimitReader(r, maxNote+1))
			if err != nil {
				return err
			}
			if len(b) > maxNote {
				return fmt.Errorf("%s is larger than %d bytes: not a checkpoint", args[0], maxNote)
			}
			theirs, err := checkpointOf(string(b))
			if err != nil {
				return fmt.Errorf("%s: %v", args[0], err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.CheckCheckpoint(ctx, theirs.Note); err != nil {
				return err
			}
			note, err := c.Checkpoint()
			if err != nil {
				return err
			}
			ours, err := checkpointOf(note)
			if err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(struct {
					Consistent bool           `json:"consistent"`
					Theirs     checkpointJSON `json:"theirs"`
					Ours       checkpointJSON `json:"ours"`
				}{true, theirs, ours})
			}
			fmt.Fprintf(a.stdout, "consistent: their checkpoint (size %d) and this device's (size %d) are the same log\n", theirs.Size, ours.Size)
			return nil
		}),
	}
}
