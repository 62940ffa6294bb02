package coffer

import "context"

// MaxDeviceStateSize bounds the ciphertext of an account's device state
// (verified contacts, pinned keys, anti-rollback heads), so that one
// account cannot grow the table without limit. 1 MiB holds thousands of
// contacts and groups.
const MaxDeviceStateSize = 1 << 20

// DeviceState is the opaque blob in which a suite v2 account's devices
// share what they verified. The server stores and returns it as is: it is
// encrypted under a key derived from the user key, which the server never
// has. Version 0 with no ciphertext means none was stored yet.
type DeviceState struct {
	Version    uint64
	Ciphertext []byte
}

// DeviceStateService stores each suite v2 account's device state.
type DeviceStateService interface {
	// DeviceState returns the account's blob (Version 0 when there is
	// none). EFORBIDDEN for a suite v1 account.
	DeviceState(ctx context.Context, account AccountID) (*DeviceState, error)
	// PutDeviceState replaces the account's blob with s if the stored
	// version is s.Version-1; otherwise ECONFLICT and the stored version.
	// EFORBIDDEN for a suite v1 account.
	PutDeviceState(ctx context.Context, account AccountID, s *DeviceState) (current uint64, err error)
}
