package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/cmd/coffer/internal/profile"
	"github.com/cofferhq/coffer/internal/buildinfo"
	"github.com/cofferhq/coffer/internal/keyvault"
)

// app is what every command shares: the standard streams, the environment
// and the profile, loaded on first use. Tests build one with their own
// streams and call run.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// progress says whether to draw progress bars: only when stderr is a
	// terminal, so that logs and pipes never fill with carriage returns.
	progress bool

	profileFlag string
	asJSON      bool     // --json: results on stdout and errors on stderr as JSON
	tlsFlags    tlsFiles // --cacert, --cert, --key (tls.go)
	groupText   string   // GROUP as the user typed it, for questions and messages
	// passphraseFile is --passphrase-file; keyring, when set by a test,
	// stands in for the OS keyring (keys.go).
	passphraseFile string
	keyring        keyvault.Keyring
	noPrompt       bool // never ask for the passphrase (completion)
	prof           *profile.Profile
	cfg            *profile.Config // set once a command loaded the profile
	session        *sessionOwner   // set once a command made a client
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		a.progress = true
	}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if a.session != nil {
		// A failure to cache costs one refresh next time, nothing more.
		_ = a.session.save()
	}
	if err == nil {
		return exitOK
	}
	server := ""
	if a.cfg != nil {
		server = a.cfg.Server
	}
	code := exitCode(err)
	if a.asJSON {
		a.printErrorJSON(err, server, code)
		return code
	}
	fmt.Fprintln(stderr, "coffer:", describe(err, server))
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "coffer",
		Short: "End-to-end encrypted sharing in groups, against an untrusted server",
		Long: `coffer shares files inside groups with end-to-end encryption. The server
(cofferd) stores only ciphertext, public keys and signed membership history:
every key is made and used on this device.

A profile (--profile DIR, or $COFFER_PROFILE; default: your config directory)
holds one identity. Its keys are encrypted at rest: the key that opens them
is in the OS keyring where there is one (macOS Keychain, Windows Credential
Manager, a desktop's Secret Service), else locked with a passphrase that
coffer asks for on a terminal, or reads from $COFFER_PASSPHRASE or a file
(--passphrase-file FILE, $COFFER_PASSPHRASE_FILE) in scripts. A passphrase
given that way also keeps a new profile out of the keyring; COFFER_KEYRING=off
does so too. Start with:

  coffer init --server http://127.0.0.1:8080 --handle alice
  coffer whoami                       # your safety number, to read out
  coffer contact verify bob NUMBER    # bob's number, as he reads it out
  coffer group create "project x"
  coffer group add "project x" bob
  coffer put "project x" report.pdf

With --json every command prints its result as JSON on stdout, and an error
as {"error": {...}} on stderr.

Exit codes: 0 ok, 1 error, 2 usage (including bad flag values and a
destructive command without --yes when it cannot ask), 3 security error
(the server misbehaved).`,
		SilenceErrors: true, // run prints errors, with the fix
		SilenceUsage:  true, // a failed command is not a usage problem
		Version:       buildinfo.String("coffer"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVar(&a.profileFlag, "profile", "",
		"profile directory holding one identity (default $"+profile.EnvVar+", else <config dir>/coffer)")
	root.PersistentFlags().BoolVar(&a.asJSON, "json", false, "print the result (and any error) as JSON")
	root.PersistentFlags().StringVar(&a.passphraseFile, "passphrase-file", "",
		"file whose first line is the passphrase of the profile's keys (default $"+passphraseEnvVar+", else $"+passphraseFileEnvVar+")")
	a.tlsFlags.register(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.AddCommand(a.initCmd(), a.whoamiCmd(), a.contactCmd(), a.groupCmd(),
		a.putCmd(), a.getCmd(), a.lsCmd(), a.rmCmd(), a.replaceCmd(), a.logoutCmd(), a.checkpointCmd(),
		a.deviceCmd(), a.recoverCmd(), a.recoveryCmd())
	// cobra defaults the distance only for the root's own lookup; nested
	// commands suggest through unknownCommand, which would otherwise match
	// prefixes only ("group rmeove" would suggest nothing).
	for _, c := range allCommands(root) {
		c.SuggestionsMinimumDistance = suggestionDistance
	}
	return root
}

// suggestionDistance is the edit distance within which a mistyped
// subcommand gets a "did you mean".
const suggestionDistance = 2

// allCommands walks the command tree.
func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		out = append(out, allCommands(sub)...)
	}
	return out
}

// unknownCommand rejects arguments to a command that only has subcommands.
// Giving such commands an Args check (and a RunE) keeps cobra from treating
// `coffer group bogus` as a request for help with exit code 0. (The root
// needs neither: cobra itself reports `coffer bogus` as unknown.)
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return errors.New(msg)
}

func helpIfNoArgs(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// action adapts a command body: it gets the command's context and marks its
// error as a runtime error (see runError).
func action(f func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := f(cmd.Context(), args); err != nil {
			return &runError{err}
		}
		return nil
	}
}

// profile returns the profile directory in use.
func (a *app) profile() (*profile.Profile, error) {
	if a.prof == nil {
		dir, err := profile.Dir(a.profileFlag, a.getenv, os.UserConfigDir)
		if err != nil {
			return nil, err
		}
		a.prof = profile.New(dir)
	}
	return a.prof, nil
}

// client opens the profile's identity for a command that needs one.
func (a *app) client() (*clientlib.Client, error) {
	p, err := a.profile()
	if err != nil {
		return nil, err
	}
	cfg, err := p.Load()
	if errors.Is(err, profile.ErrNotInitialized) {
		return nil, fmt.Errorf("no identity in profile %s: run coffer init --server URL --handle NAME, or choose a profile with --profile DIR",
			p.Dir)
	}
	if err != nil {
		return nil, err
	}
	a.cfg = cfg
	return a.newClient(p, cfg)
}

func (a *app) newClient(p *profile.Profile, cfg *profile.Config) (*clientlib.Client, error) {
	ks, err := a.keyStore(p)
	if err != nil {
		return nil, err
	}
	opts, err := a.tlsFlags.options(cfg)
	if err != nil {
		return nil, err
	}
	// TrustOnFirstUse stays off: the CLI wraps keys only for contacts the
	// user verified with coffer contact verify.
	opts.LogKey = cfg.LogKey
	opts.Witnesses, opts.Quorum = cfg.Witnesses, cfg.Quorum
	c, err := clientlib.New(cfg.Server, ks, opts)
	if err != nil {
		return nil, err
	}
	if c.Identity() == nil || c.AccountID().IsZero() {
		return nil, fmt.Errorf("profile %s has no registered identity: run coffer init again", p.Dir)
	}
	if s := p.LoadSession(cfg.Server, c.AccountID().String(), time.Now()); s != nil {
		c.UseAccessToken(s.AccessToken, s.Expires)
	}
	a.session = &sessionOwner{prof: p, server: cfg.Server, client: c}
	return c, nil
}

// sessionOwner saves the client's access token in the profile when the
// command ends, or removes it when there is none (after a logout).
type sessionOwner struct {
	prof   *profile.Profile
	server string
	client *clientlib.Client
}

func (s *sessionOwner) save() error {
	tok, exp, ok := s.client.AccessToken()
	if !ok {
		return s.prof.SaveSession(nil)
	}
	return s.prof.SaveSession(&profile.Session{Server: s.server, Account: s.client.AccountID().String(), AccessToken: tok, Expires: exp})
}

// exactArgs is cobra.ExactArgs with a message that names the arguments.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %d argument(s), got %d: usage: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%s takes at least %d argument(s), got %d: usage: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

// printJSON writes v as indented JSON, the --json output of every listing
// and show command.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns a tabwriter for aligned columns on stdout; call Flush.
func (a *app) table() *tabwriter.Writer {
	return tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
}

// notice prints a human message on stderr, keeping stdout for the one
// value scripts capture (an id) or for listings.
func (a *app) notice(format string, args ...any) {
	if a.asJSON {
		return // the JSON result says it all
	}
	fmt.Fprintf(a.stderr, format+"\n", args...)
}

// accountHandles maps account ids to handles, for display.
type accountHandles map[coffer.AccountID]coffer.Handle

func (m accountHandles) name(id coffer.AccountID) string {
	if h, ok := m[id]; ok {
		return string(h)
	}
	return id.String()
}
