package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

// Pairings (migration 00013): a device asking to join an account waits
// here, under the id its pairing code hashes to, until a device of the
// account approves it or ten minutes pass. Expired rows are deleted by the
// next CreatePairing and are never served.

// CreatePairing implements coffer.AccountChainService. The account row
// lock serializes the pairings of one handle, so the count holds.
func (db *DB) CreatePairing(ctx context.Context, p *coffer.Pairing, maxOpen int) error {
	now := db.now()
	if p.Created.IsZero() {
		p.Created = now
	}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM pairings WHERE expires_at <= $1`, now); err != nil {
			return err
		}
		var seq int64
		if err := tx.QueryRow(ctx, `SELECT chain_seq FROM accounts WHERE handle = $1 FOR NO KEY UPDATE`, string(p.Handle)).Scan(&seq); err != nil {
			return err
		}
		if seq == 0 {
			return coffer.Errorf(coffer.ENOTFOUND, "no account with an account chain has handle %q", p.Handle)
		}
		var open int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pairings WHERE handle = $1 AND expires_at > $2`, string(p.Handle), now).Scan(&open); err != nil {
			return err
		}
		if open >= maxOpen {
			return coffer.Errorf(coffer.ELIMIT, "handle %q already has %d open pairings, the most it may have: approve or wait for one to expire", p.Handle, open)
		}
		_, err := tx.Exec(ctx, `INSERT INTO pairings (id, handle, device_id, device_name, signing_key, encryption_key, mac, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			p.ID, string(p.Handle), p.Device.ID.String(), p.Device.Name, p.Device.SigningKey.Bytes(), p.Device.EncryptionKey, p.MAC, p.Created, p.Expires)
		return err
	})
	switch coffer.ErrorCode(err) {
	case coffer.ENOTFOUND:
		return coffer.Errorf(coffer.ENOTFOUND, "no account with an account chain has handle %q", p.Handle)
	case coffer.ECONFLICT:
		return coffer.Errorf(coffer.ECONFLICT, "a pairing with this id is already open")
	}
	return err
}

// Pairing implements coffer.AccountChainService.
func (db *DB) Pairing(ctx context.Context, id string) (*coffer.Pairing, error) {
	var p *coffer.Pairing
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var (
			handle, device string
			sk, body, sig  []byte
			pp             coffer.Pairing
			created, exp   time.Time
		)
		err := tx.QueryRow(ctx, `SELECT id, handle, device_id::text, device_name, signing_key, encryption_key, mac,
				approval_body, approval_signature, approval_mac, created_at, expires_at
			FROM pairings WHERE id = $1 AND expires_at > $2`, id, db.now()).
			Scan(&pp.ID, &handle, &device, &pp.Device.Name, &sk, &pp.Device.EncryptionKey, &pp.MAC, &body, &sig, &pp.ApprovalMAC, &created, &exp)
		if err != nil {
			return err
		}
		if pp.Device.ID, err = coffer.ParseDeviceID(device); err != nil {
			return err
		}
		if pp.Device.SigningKey, err = coffer.ParseHybridPublicKey(sk); err != nil {
			return err
		}
		pp.Handle, pp.Created, pp.Expires = coffer.Handle(handle), created, exp
		if body != nil {
			pp.Approval = &coffer.SignedLink{Body: body, Signature: sig}
		}
		p = &pp
		return nil
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return nil, coffer.Errorf(coffer.ENOTFOUND, "no such pairing, or it expired")
	}
	return p, err
}

// ApprovePairing implements coffer.AccountChainService. The owner check is
// in the query: the caller's handle must be the pairing's.
func (db *DB) ApprovePairing(ctx context.Context, caller coffer.AccountID, id string, link coffer.SignedLink, mac []byte) error {
	now := db.now()
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var approved bool
		err := tx.QueryRow(ctx, `SELECT p.approval_body IS NOT NULL FROM pairings p JOIN accounts a ON a.handle = p.handle
			WHERE p.id = $1 AND a.id = $2 AND p.expires_at > $3 FOR UPDATE OF p`, id, caller, now).Scan(&approved)
		if err != nil {
			return err
		}
		if approved {
			return coffer.Errorf(coffer.ECONFLICT, "the pairing is already approved")
		}
		_, err = tx.Exec(ctx, `UPDATE pairings SET approval_body = $2, approval_signature = $3, approval_mac = $4 WHERE id = $1`,
			id, link.Body, link.Signature, mac)
		return err
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return coffer.Errorf(coffer.ENOTFOUND, "no such pairing of your account, or it expired")
	}
	return err
}
