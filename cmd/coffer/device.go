package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/cmd/coffer/internal/profile"
	"github.com/cofferhq/coffer/internal/recoverykit"
)

// accountFlags are the flags of the commands that add this device to an
// account: init, device link and recover.
type accountFlags struct {
	deviceName string
	kitFile    string // --recovery-kit (init, recover)
}

func (f *accountFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.deviceName, "device-name", "", "a name for this device, shown in coffer device ls (default: the host name)")
	if cmd.Name() != "link" {
		cmd.Flags().StringVar(&f.kitFile, "recovery-kit", "", "write the recovery words to FILE (mode 0600) instead of showing the kit")
	}
}

// name is --device-name, or the host name made into a valid device name.
func (f *accountFlags) name() (string, error) {
	if f.deviceName != "" {
		if err := coffer.CheckDeviceName(f.deviceName); err != nil {
			return "", &usageError{err}
		}
		return f.deviceName, nil
	}
	h, err := os.Hostname()
	h = strings.TrimSpace(h)
	if len(h) > coffer.MaxDeviceNameLength {
		h = h[:coffer.MaxDeviceNameLength]
	}
	if err != nil || coffer.CheckDeviceName(h) != nil {
		return "device", nil
	}
	return h, nil
}

// checkKitFile refuses, before anything changes, a kit file that exists:
// it may hold the kit of another account.
func (f *accountFlags) checkKitFile() error {
	if f.kitFile == "" {
		return nil
	}
	if _, err := os.Lstat(f.kitFile); err == nil {
		return usagef("--recovery-kit %s exists: choose a new file, so no kit is overwritten", f.kitFile)
	}
	return nil
}

// deliverKit shows a new recovery kit once, or writes its words to file.
// With --json and no file it returns the words for the JSON result instead.
func (a *app) deliverKit(rk *coffer.RecoveryKey, file string) (string, error) {
	if rk == nil {
		return "", nil
	}
	kit, err := recoverykit.New(rk)
	if err != nil {
		return "", err
	}
	if file != "" {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("cannot write the recovery kit: %w", err)
		}
		_, werr := io.WriteString(f, kit.Words+"\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return "", fmt.Errorf("cannot write the recovery kit to %s: %w", file, err)
		}
		a.notice("Recovery words written to %s: keep the file offline, and delete it once stored safely.", file)
		return "", nil
	}
	if a.asJSON {
		return kit.Words, nil
	}
	fmt.Fprintf(a.stderr, `
Your recovery kit. It is shown once: write the words down, or photograph the
code, and keep them offline. With them alone, coffer recover adds a new
device to your account if every device is lost.

  %s

%s
`, kit.Words, kit.Terminal())
	return "", nil
}

func (a *app) deviceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Link, list and revoke the devices of your account",
		Long: `An account has one or more devices. Each holds its own keys, and the
account's user key reaches it wrapped to those keys, so adding a device
changes no group and nobody has to verify you again.

On the new device, coffer device link prints a pairing code and waits; on a
device you already have, coffer device approve CODE approves it. coffer
device revoke NAME cuts a lost or leaked device off: the account gets a new
user key, and this device updates your keys in every group, so the revoked
device can read nothing written afterwards.`,
		Args: unknownCommand,
		RunE: helpIfNoArgs,
	}
	cmd.AddCommand(a.deviceLinkCmd(), a.deviceApproveCmd(), a.deviceLsCmd(), a.deviceRevokeCmd())
	return cmd
}

func (a *app) deviceLinkCmd() *cobra.Command {
	var (
		server, handle, logKey string
		wit                    witnessFlags
		af                     accountFlags
		timeout                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "link --server URL --handle NAME",
		Short: "Link this device (a new profile) to your account",
		Long: `link, run on the new device, prints a pairing code alone on the first line
of stdout and waits until a device of the account approves it (coffer device
approve CODE there). It exits 0 once this device is a device of the account
and can read its groups. The code is a secret between your two devices: the
server never sees it, and it proves to each device that the other is the
one you hold.`,
		Example: `  coffer --profile /tmp/alice-phone device link --server http://127.0.0.1:8080 --handle alice`,
		Args:    exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			return a.joinAccount(ctx, server, handle, logKey, wit, &af, func(ctx context.Context, c *clientlib.Client, name string) (*coffer.RecoveryKey, error) {
				pl, err := c.StartDeviceLink(ctx, handle, name)
				if err != nil {
					return nil, err
				}
				fmt.Fprintln(a.stdout, pl.Code())
				if f, ok := a.stdout.(interface{ Sync() error }); ok {
					f.Sync()
				}
				a.notice("Approve this code on a device of %s: coffer device approve %s", handle, pl.Code())
				wctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				if err := pl.Wait(wctx, time.Second); err != nil {
					if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
						return nil, fmt.Errorf("the code was not approved within %s: run coffer device link again", timeout)
					}
					return nil, err
				}
				return nil, nil
			})
		}),
	}
	addJoinFlags(cmd, &server, &handle, &logKey, &wit, &af)
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the approval")
	return cmd
}

func addJoinFlags(cmd *cobra.Command, server, handle, logKey *string, wit *witnessFlags, af *accountFlags) {
	cmd.Flags().StringVar(server, "server", "", "base URL of the cofferd server (default $"+serverEnvVar+")")
	cmd.Flags().StringVar(handle, "handle", "", "the account's handle")
	cmd.Flags().StringVar(logKey, "log-key", "", "the server's transparency log key, to pin instead of trusting the server on first use")
	cmd.Flags().StringArrayVar(&wit.keys, "witness", nil, "a witness's cosignature/v1 verifier key; repeat for each witness")
	cmd.Flags().IntVar(&wit.quorum, "quorum", 0, "how many of the --witness keys must cosign a checkpoint (default: all)")
	cmd.MarkFlagRequired("handle")
	af.register(cmd)
}

// joinAccount makes a new profile whose device joins an existing account
// through join (device link, recover), then saves the profile.
func (a *app) joinAccount(ctx context.Context, server, handle, logKey string, wit witnessFlags, af *accountFlags,
	join func(context.Context, *clientlib.Client, string) (*coffer.RecoveryKey, error)) error {
	if server == "" {
		server = a.getenv(serverEnvVar)
	}
	if server == "" {
		return usagef("this command needs the server: pass --server URL or set %s", serverEnvVar)
	}
	if _, err := coffer.ParseHandle(handle); err != nil {
		return &usageError{err}
	}
	name, err := af.name()
	if err != nil {
		return err
	}
	if err := af.checkKitFile(); err != nil {
		return err
	}
	files, err := a.tlsFlags.resolved(nil)
	if err != nil {
		return err
	}
	opts, err := a.tlsFlags.options(nil)
	if err != nil {
		return err
	}
	opts.LogKey = logKey
	opts.Witnesses, opts.Quorum = wit.keys, wit.quorum
	p, err := a.profile()
	if err != nil {
		return err
	}
	if _, err := p.Load(); err == nil {
		return fmt.Errorf("profile %s already holds an account: use --profile DIR for this device", p.Dir)
	}
	cfg := &profile.Config{Server: server, LogKey: logKey, Witnesses: wit.keys, Quorum: wit.quorum, CACert: files.caCert, Cert: files.cert, Key: files.key}
	a.cfg = cfg
	ks, err := a.keyStore(p)
	if err != nil {
		return err
	}
	c, err := clientlib.New(server, ks, opts)
	if err != nil {
		return &usageError{err}
	}
	rk, err := join(ctx, c, name)
	if err != nil {
		if !c.IsAccountV2() || c.AccountID().IsZero() {
			return err
		}
		// The device joined the account and what followed failed (the
		// account's device state was refused): the profile is saved, so
		// the device is usable, and the failure is still reported.
		if serr := p.Save(cfg); serr != nil {
			return errors.Join(err, serr)
		}
		a.session = &sessionOwner{prof: p, server: server, client: c}
		a.notice("This device is now a device of %s (profile %s), but what followed failed:", handle, p.Dir)
		return err
	}
	if err := p.Save(cfg); err != nil {
		return err
	}
	a.session = &sessionOwner{prof: p, server: server, client: c}
	kitWords, err := a.deliverKit(rk, af.kitFile)
	if err != nil {
		return err
	}
	id := c.Identity()
	if a.asJSON {
		return a.printJSON(whoami{Handle: id.Handle(), AccountID: c.AccountID(), SafetyNumber: id.SafetyNumber(),
			QRPayload: id.QRPayload(), Server: server, Profile: p.Dir, RecoveryWords: kitWords})
	}
	a.notice("This device (%s) is now a device of %s; profile %s", name, id.Handle(), p.Dir)
	a.notice("The account's safety number (unchanged):\n  %s", id.SafetyNumber())
	return nil
}

func (a *app) deviceApproveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "approve CODE",
		Short: "Approve a pairing code shown by a new device of your account",
		Long: `approve checks that the new device's keys, as the server relays them, are
the ones that device showed with CODE, then adds it to the account with a
wrap of the user key. Approve only a code you read off your own new device.`,
		Example: `  coffer device approve ABCD-EFGH-IJKL-MNOP`,
		Args:    minArgs(1),
		RunE: action(func(ctx context.Context, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			name, err := c.ApproveDeviceLink(ctx, strings.Join(args, ""))
			if err != nil {
				return err
			}
			a.notice("Approved the device %q; it finishes linking on its own.", name)
			return nil
		}),
	}
}

// deviceRow is a device as coffer device ls --json prints it.
type deviceRow struct {
	Name    string          `json:"name"`
	ID      coffer.DeviceID `json:"id"`
	Added   time.Time       `json:"added"`
	Current bool            `json:"current"`
}

func (a *app) deviceLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List your account's devices",
		Long:  `ls lists the account's current devices, after verifying every link of the account's chain. "current" marks this device.`,
		Args:  exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ds, err := c.Devices(ctx)
			if err != nil {
				return err
			}
			rows := make([]deviceRow, len(ds))
			for i, d := range ds {
				rows[i] = deviceRow{Name: d.Name, ID: d.ID, Added: d.Added, Current: d.Current}
			}
			if a.asJSON {
				return a.printJSON(rows)
			}
			tw := a.table()
			fmt.Fprintln(tw, "NAME\tID\tADDED\t")
			for _, r := range rows {
				mark := ""
				if r.Current {
					mark = "(this device)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.ID, r.Added.Format(time.RFC3339), mark)
			}
			return tw.Flush()
		}),
	}
}

func (a *app) deviceRevokeCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a device: new user key, keys updated in every group",
		Long: `revoke removes the device NAME (or with that id) from the account and gives
the account a new user key that the revoked device never sees. This device
then updates your keys in every group, with a key rotation in each, so the
revoked device can read nothing written afterwards. A device cannot revoke
itself.`,
		Args: exactArgs(1),
		RunE: action(func(ctx context.Context, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := a.confirm(yes, fmt.Sprintf("Revoke the device %q?", args[0])); err != nil {
				return err
			}
			if err := c.RevokeDevice(ctx, args[0]); err != nil {
				return err
			}
			a.notice("Revoked %q; the account has a new user key, and your keys are updated in every group.", args[0])
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (a *app) recoverCmd() *cobra.Command {
	var (
		server, handle, logKey string
		wit                    witnessFlags
		af                     accountFlags
	)
	cmd := &cobra.Command{
		Use:   "recover --server URL --handle NAME",
		Short: "Add this device (a new profile) to your account with the recovery words",
		Long: `recover reads the recovery words from stdin (24 words, as the kit shows
them, or the file init --recovery-kit wrote), adds this device to the
account with the recovery key, and then replaces the recovery key: the old
words stop working, and the new kit is shown once (or written to
--recovery-kit FILE). The server never sees the recovery key.`,
		Example: `  coffer --profile /tmp/alice-new recover --server http://127.0.0.1:8080 --handle alice < kit.txt`,
		Args:    exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			words, err := a.readRecoveryWords()
			if err != nil {
				return err
			}
			return a.joinAccount(ctx, server, handle, logKey, wit, &af, func(ctx context.Context, c *clientlib.Client, name string) (*coffer.RecoveryKey, error) {
				return c.Recover(ctx, handle, words, name)
			})
		}),
	}
	addJoinFlags(cmd, &server, &handle, &logKey, &wit, &af)
	return cmd
}

// readRecoveryWords reads the words from stdin: up to 4 KiB, on any lines.
func (a *app) readRecoveryWords() (string, error) {
	if stdinIsTerminal(a.stdin) {
		fmt.Fprintln(a.stderr, "Type the 24 recovery words, then press Enter:")
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", usagef("no recovery words on stdin")
		}
		return line, nil
	}
	b, err := io.ReadAll(io.LimitReader(a.stdin, 4<<10))
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", usagef("recover reads the recovery words from stdin: pipe them in, or run it on a terminal")
	}
	return string(b), nil
}

func (a *app) recoveryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recovery",
		Short: "Manage your account's recovery key",
		Args:  unknownCommand,
		RunE:  helpIfNoArgs,
	}
	var kitFile string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the recovery key; the old words stop working",
		Long:  `rotate gives the account a new recovery key and shows its kit once (or writes the words to --recovery-kit FILE). Do it when the old words may have been seen.`,
		Args:  exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			if err := (&accountFlags{kitFile: kitFile}).checkKitFile(); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			rk, err := c.RotateRecoveryKey(ctx)
			if err != nil {
				return err
			}
			words, err := a.deliverKit(rk, kitFile)
			if err != nil {
				return err
			}
			if a.asJSON {
				return a.printJSON(map[string]string{"recovery_words": words})
			}
			return nil
		}),
	}
	rotate.Flags().StringVar(&kitFile, "recovery-kit", "", "write the recovery words to FILE (mode 0600) instead of showing the kit")
	cmd.AddCommand(rotate)
	return cmd
}
