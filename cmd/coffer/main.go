// Command coffer is the command-line client of Coffer, for group owners and
// members: it creates an identity, verifies contacts by safety number,
// manages groups and puts and gets end-to-end encrypted files.
//
//	coffer init --server URL --handle NAME
//	coffer whoami [--json] [--qr]
//	coffer contact verify HANDLE SAFETY_NUMBER
//	coffer contact list [--json]
//	coffer group create NAME [--no-history]
//	coffer group ls | members GROUP | log GROUP        [--json]
//	coffer group add GROUP HANDLE [--role reader|writer|admin]
//	coffer group remove GROUP HANDLE | rotate GROUP | role GROUP HANDLE ROLE
//	coffer put GROUP FILE [--name NAME]
//	coffer get GROUP RESOURCE [-o FILE]
//	coffer ls GROUP [--json]
//	coffer rm GROUP RESOURCE
//	coffer completion bash|zsh|fish|powershell
//
// Every command takes --profile DIR (or $COFFER_PROFILE): one directory per
// identity, holding a clientlib.FileKeyStore and the server URL (see
// internal/profile). Exit codes: 0 ok, 1 error, 2 usage, 3 security error,
// that is, the server was caught misbehaving (see errors.go).
//
// All cryptography and every check against the server is in clientlib; this
// command only parses, resolves names to ids and explains errors. The files:
// root.go (the app, profile loading, run), identity.go, contact.go,
// group.go, resource.go (one per command family), completion.go (dynamic
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
