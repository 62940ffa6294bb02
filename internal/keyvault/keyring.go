package keyvault

import (
	"fmt"
	"os"
	"runtime"

	"github.com/zalando/go-keyring"
)

// Keyring is an OS keyring as the vault uses it: one string secret per
// (service, user) item.
type Keyring interface {
	Get(service, user string) (string, error)
	Set(service, user, secret string) error
}

// OSKeyring is the keyring go-keyring serves: the macOS Keychain, the
// Windows Credential Manager, or the freedesktop Secret Service over D-Bus.
// Use SystemKeyring to learn whether there is one; tests use it after
// go-keyring's keyring.MockInit.
type OSKeyring struct{}

func (OSKeyring) Get(service, user string) (string, error) { return keyring.Get(service, user) }
func (OSKeyring) Set(service, user, secret string) error   { return keyring.Set(service, user, secret) }

// SystemKeyring returns the OS keyring, or nil where none can be reached.
// On Linux and the BSDs the Secret Service needs a D-Bus session: without
// $DBUS_SESSION_BUS_ADDRESS or a user bus socket (a headless server, a
// container, CI) it returns nil at once, rather than let the D-Bus library
// try to launch a bus of its own. A reachable bus without a Secret Service
// fails on first use, and Open then falls back to a passphrase.
func SystemKeyring(getenv func(string) string) Keyring {
	switch runtime.GOOS {
	case "darwin", "windows":
		return OSKeyring{}
	case "linux", "freebsd", "openbsd", "netbsd", "dragonfly":
		if getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
			return OSKeyring{}
		}
		if _, err := os.Stat(fmt.Sprintf("/run/user/%d/bus", os.Getuid())); err == nil {
			return OSKeyring{}
		}
	}
	return nil
}
