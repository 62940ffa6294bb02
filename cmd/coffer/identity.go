package main

import (
	"context"
	"fmt"

	"github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/cmd/coffer/internal/profile"
)

func (a *app) initCmd() *cobra.Command {
	var (
		server, handle, logKey string
		wit                    witnessFlags
		acctFlags              accountFlags
	)
	cmd := &cobra.Command{
		Use:   "init --server URL --handle NAME",
		Short: "Create an account with this device as its first device",
		Long: `init creates an account under HANDLE with this device as its first
device: the device's own keys, the account's user key (which every device
of the account will hold, and which groups wrap their keys to) and a
recovery key. It registers the account's public half on the server and logs
in. The private keys stay in the profile's key store, encrypted at rest:
under a key in the OS keyring, or under your passphrase ($COFFER_PASSPHRASE,
--passphrase-file FILE, or asked on the terminal).

The recovery kit (24 words and a QR code of them) is shown once. Keep it
offline: with it alone, coffer recover adds a new device to the account if
every device is lost. With --recovery-kit FILE the words are written to FILE
(mode 0600), on one line, as coffer recover reads them, instead of shown.
Add more devices with coffer device link (on the new device) and coffer
device approve (here).

One profile holds one identity: use --profile DIR for another.

--server defaults to $COFFER_SERVER. --cacert, --cert and --key are stored in
the profile, so later commands need not repeat them.

--witness KEY (repeatable) names a witness this profile trusts, by its
cosignature/v1 verifier key (coffer-audit witness serve prints it), and
--quorum how many of them must have cosigned the log checkpoint that proves
a group's current head before any write or read (default: all). Both are
stored in the profile.`,
		Example: `  coffer --profile /tmp/alice init --server http://127.0.0.1:8080 --handle alice`,
		Args:    exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			return a.runInit(ctx, server, handle, logKey, wit, acctFlags)
		}),
	}
	acctFlags.register(cmd)
	cmd.Flags().StringVar(&server, "server", "", "base URL of the cofferd server, e.g. https://coffer.example.com (default $"+serverEnvVar+")")
	cmd.Flags().StringVar(&handle, "handle", "", "your handle: 3 to 32 characters of a-z, 0-9, '.', '_', '-'")
	cmd.Flags().StringVar(&logKey, "log-key", "", "the server's transparency log key, to pin instead of trusting the server on first use (cofferd prints it)")
	cmd.Flags().StringArrayVar(&wit.keys, "witness", nil, "a witness's cosignature/v1 verifier key; repeat for each witness")
	cmd.Flags().IntVar(&wit.quorum, "quorum", 0, "how many of the --witness keys must cosign a checkpoint (default: all)")
	cmd.MarkFlagRequired("handle")
	return cmd
}

// witnessFlags are init's --witness and --quorum.
type witnessFlags struct {
	keys   []string
	quorum int
}

// serverEnvVar is the server init uses when --server is not given.
const serverEnvVar = "COFFER_SERVER"

func (a *app) runInit(ctx context.Context, server, handle, logKey string, wit witnessFlags, af accountFlags) error {
	if server == "" {
		server = a.getenv(serverEnvVar)
	}
	if server == "" {
		return usagef("init needs the server: pass --server URL or set %s", serverEnvVar)
	}
	if _, err := coffer.ParseHandle(handle); err != nil {
		return &usageError{err}
	}
	// Check the URL and the TLS files before anything touches the disk, so
	// a typo does not leave a half-made profile behind.
	if _, err := clientlib.New(server, clientlib.NewMemoryKeyStore(), &clientlib.Options{Witnesses: wit.keys, Quorum: wit.quorum}); err != nil {
		return &usageError{err}
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
	if cfg, err := p.Load(); err == nil {
		a.cfg = cfg
		if c, err := a.newClient(p, cfg); err == nil {
			return fmt.Errorf("profile %s already holds the identity %s on %s: use --profile DIR for another identity",
				p.Dir, c.Identity().Handle(), cfg.Server)
		}
	}
	cfg := &profile.Config{Server: server, LogKey: logKey, Witnesses: wit.keys, Quorum: wit.quorum, CACert: files.caCert, Cert: files.cert, Key: files.key}
	a.cfg = cfg
	ks, err := a.keyStore(p)
	if err != nil {
		return err
	}
	c, err := clientlib.New(server, ks, opts)
	if err != nil {
		return err
	}
	deviceName, err := af.name()
	if err != nil {
		return err
	}
	if err := af.checkKitFile(); err != nil {
		return err
	}
	var rk *coffer.RecoveryKey
	if c.Identity() != nil && !c.HasUnfinishedAccount() {
		// A previous init stored the keys and then lost the network: if the
		// server registered the account, logging in finishes the job, but
		// the recovery kit of that run was never shown.
		if err := c.Login(ctx); err != nil {
			return fmt.Errorf("profile %s holds keys from an init that did not finish, and logging in with them failed (%w): use a new --profile", p.Dir, err)
		}
		a.notice("The account was registered by an earlier init that lost its connection; its recovery kit was not shown: run coffer recovery rotate for a new one.")
	} else if rk, err = c.CreateAccount(ctx, handle, deviceName); err != nil {
		return err
	}
	// Written last: a profile with a config.json is one that registered.
	if err := p.Save(cfg); err != nil {
		return err
	}
	id := c.Identity()
	kitWords, err := a.deliverKit(rk, af.kitFile)
	if err != nil {
		return err
	}
	if a.asJSON {
		return a.printJSON(whoami{Handle: id.Handle(), AccountID: c.AccountID(), SafetyNumber: id.SafetyNumber(),
			QRPayload: id.QRPayload(), Server: server, Profile: p.Dir, RecoveryWords: kitWords})
	}
	a.notice("Registered %s on %s; profile %s", id.Handle(), server, p.Dir)
	a.notice("Your safety number (others verify you with it):\n  %s", id.SafetyNumber())
	return nil
}

// whoami is the identity as `coffer whoami --json` prints it.
type whoami struct {
	Handle       coffer.Handle    `json:"handle"`
	AccountID    coffer.AccountID `json:"account_id"`
	SafetyNumber string           `json:"safety_number"`
	QRPayload    string           `json:"qr_payload"`
	Server       string           `json:"server"`
	Profile      string           `json:"profile"`
	// RecoveryWords is set only by init, recover and recovery rotate with
	// --json and without --recovery-kit: the one time they are shown.
	RecoveryWords string `json:"recovery_words,omitempty"`
}

func (a *app) whoamiCmd() *cobra.Command {
	var qr bool
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show this profile's handle, account id and safety number",
		Long: `whoami shows who this profile is. The safety number is what others compare
before they add you to a group: read it out to them (or let them scan the
QR code from --qr) over a channel the server does not control.

It reads only the local key store; it does not contact the server.`,
		Args: exactArgs(0),
		RunE: action(func(ctx context.Context, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id := c.Identity()
			w := whoami{
				Handle: id.Handle(), AccountID: c.AccountID(), SafetyNumber: id.SafetyNumber(),
				QRPayload: id.QRPayload(), Server: a.cfg.Server, Profile: a.prof.Dir,
			}
			if a.asJSON {
				return a.printJSON(w)
			}
			fmt.Fprintf(a.stdout, "handle:         %s\naccount:        %s\nsafety number:  %s\nserver:         %s\nprofile:        %s\n",
				w.Handle, w.AccountID, w.SafetyNumber, w.Server, w.Profile)
			if qr {
				q, err := qrcode.New(w.QRPayload, qrcode.Medium)
				if err != nil {
					return err
				}
				fmt.Fprint(a.stdout, "\n", q.ToSmallString(false))
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&qr, "qr", false, "also print a QR code of your fingerprint, for others to scan")
	return cmd
}
