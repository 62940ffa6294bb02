package cofferd

// UsageError is a command line cofferd cannot make sense of: an unknown
// argument or a bad flag. cmd/cofferd exits 2 for it, as flag does.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Subcommands lists cofferd's subcommands, for help and errors.
var Subcommands = []string{"migrate", "genkey", "logkey", "healthcheck", "version"}

const usageHead = `Usage:
  cofferd [flags]                 run the server
  cofferd migrate [flags]         apply database migrations and exit
  cofferd genkey FILE...          create Ed25519 key files that do not exist yet
  cofferd logkey [flags]          print the transparency log's verifier key
  cofferd healthcheck [flags]     probe a running server's /readyz (exit 0 when ready)
  cofferd version                 print build information (also: cofferd -version)

Run "cofferd SUBCOMMAND -help" for a subcommand's own help.

Development: cofferd -dev (private PostgreSQL and keys under -data).
Production needs -database-url, -jwt-key, -log-key, -log-origin, -origin
and -blob-dir (see README.md and docs/OPERATIONS.md).

Every flag can also be set as COFFER_<FLAG> (e.g. COFFER_DATABASE_URL); a flag
on the command line wins. Flags take one or two dashes (-dev or --dev).

Flags:
`

const migrateUsageHead = `Usage: cofferd migrate [-database-url URL | -dev -data DIR]

Applies the embedded database migrations under a lock and exits, so that
replicas can start with -migrate=false. It takes the server's flags; only the
database settings matter.

Flags:
`
