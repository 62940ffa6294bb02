// Command coffer is the command-line client of Coffer, for group owners and
// members: it creates an identity, verifies contacts by safety number,
// manages groups and puts and gets end-to-end encrypted files.
//
//	coffer init [--server URL] --handle NAME [--device-name NAME] [--recovery-kit FILE] [--cacert F] [--cert F --key F] [--witness KEY]... [--quorum N]
//	coffer device link --server URL --handle NAME [--device-name NAME] [--timeout 10m]
//	coffer device approve CODE | ls | revoke NAME [--yes]
//	coffer recover --server URL --handle NAME [--device-name NAME] [--recovery-kit FILE] < words
//	coffer recovery rotate [--recovery-kit FILE]
//	coffer whoami [--qr]
//	coffer logout
//	coffer contact verify HANDLE SAFETY_NUMBER
//	coffer contact list
//	coffer group create NAME [--no-history]
//	coffer group ls | members GROUP | log GROUP
//	coffer group add GROUP HANDLE [--role reader|writer|admin]
//	coffer group remove GROUP HANDLE [--yes] | rotate GROUP | role GROUP HANDLE ROLE
//	coffer group rename GROUP NEW_NAME [--description TEXT]
//	coffer group heal GROUP_ID
//	coffer put GROUP FILE [--name NAME]
//	coffer replace GROUP RESOURCE FILE [--name NAME] [--if-version N]
//	coffer get GROUP RESOURCE [-o FILE]
//	coffer ls GROUP
//	coffer rm GROUP RESOURCE [--yes]
//	coffer checkpoint show [--local] | check FILE
//	coffer completion bash|zsh|fish|powershell
//
// Every command takes --json (results on stdout, errors on stderr, as
// JSON). init's server defaults to $COFFER_SERVER; --cacert, --cert and
// --key (a private CA, a client certificate for mutual TLS) are stored in
// the profile by init and may be given to any command to override it. rm
// and group remove ask on a terminal; elsewhere they need --yes and
// without it exit 2, so that a script never deletes by accident.
//
// Every command takes --profile DIR (or $COFFER_PROFILE): one directory per
// identity, holding its key store, encrypted at rest (internal/keyvault: OS
// keyring, else a passphrase from $COFFER_PASSPHRASE, --passphrase-file /
// $COFFER_PASSPHRASE_FILE or the terminal), and the server URL (see
// internal/profile). Exit codes: 0 ok, 1 error, 2 usage (bad flag values
// included), 3 security error,
// that is, the server was caught misbehaving (see errors.go).
//
// All cryptography and every check against the server is in clientlib; this
// command only parses, resolves names to ids and explains errors. The files:
// root.go (the app, profile loading, run), keys.go (unlocking the key
// store), identity.go, device.go (devices and recovery), contact.go,
// group.go, resource.go, session.go, checkpoint.go, heal.go (one per command
// family), tls.go (the TLS flags), confirm.go, completion.go (dynamic
// completion of GROUP, RESOURCE and HANDLE), errors.go (exit codes and the
// messages that name the fix). Name resolution and profiles live in
// internal/resolve and internal/profile, with their own tests. main is kept
// thin so that tests can run the commands in process (run).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Ctrl-C cancels the running request; get then removes its temporary
	// file instead of leaving half a download behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
