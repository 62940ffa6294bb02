package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

// Device state (migration 00014): one opaque blob per suite v2 account,
// replaced by compare-and-swap on its version.

var _ coffer.DeviceStateService = (*DB)(nil)

// chainAccount checks that account exists and has an account chain. lock
// takes the row lock that serializes the account's writes.
func chainAccount(ctx context.Context, tx pgx.Tx, account coffer.AccountID, lock bool) error {
	q := `SELECT chain_seq FROM accounts WHERE id = $1`
	if lock {
		q += ` FOR NO KEY UPDATE`
	}
	var seq int64
	if err := tx.QueryRow(ctx, q, account.String()).Scan(&seq); err != nil {
		return err
	}
	if seq == 0 {
		return coffer.Errorf(coffer.EFORBIDDEN, "device state is for suite v2 accounts, and this account has no account chain")
	}
	return nil
}

// DeviceState implements coffer.DeviceStateService.
func (db *DB) DeviceState(ctx context.Context, account coffer.AccountID) (*coffer.DeviceState, error) {
	out := &coffer.DeviceState{}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := chainAccount(ctx, tx, account, false); err != nil {
			return err
		}
		var v int64
		err := tx.QueryRow(ctx, `SELECT version, ciphertext FROM device_states WHERE account_id = $1`, account.String()).Scan(&v, &out.Ciphertext)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		out.Version = uint64(v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutDeviceState implements coffer.DeviceStateService. The account row
// lock serializes writers, so the version read is the one replaced.
func (db *DB) PutDeviceState(ctx context.Context, account coffer.AccountID, s *coffer.DeviceState) (uint64, error) {
	if s.Version < 1 || s.Version > 1<<62 {
		return 0, coffer.Errorf(coffer.EINVALID, "version must be at least 1")
	}
	if len(s.Ciphertext) > coffer.MaxDeviceStateSize {
		return 0, coffer.Errorf(coffer.ETOOLARGE, "device state is larger than %d bytes", coffer.MaxDeviceStateSize)
	}
	var cur int64
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := chainAccount(ctx, tx, account, true); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT version FROM device_states WHERE account_id = $1`, account.String()).Scan(&cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if uint64(cur) != s.Version-1 {
			return coffer.Errorf(coffer.ECONFLICT, "device state is at version %d: write version %d", cur, cur+1)
		}
		_, err = tx.Exec(ctx, `INSERT INTO device_states (account_id, version, ciphertext, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (account_id) DO UPDATE SET version = EXCLUDED.version, ciphertext = EXCLUDED.ciphertext, updated_at = EXCLUDED.updated_at`,
			account.String(), int64(s.Version), s.Ciphertext, db.now())
		return err
	})
	if err != nil {
		return uint64(cur), err
	}
	return s.Version, nil
}
