package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// Resources in the transparency log. FinalizeUpload and DeleteResource
// append the version's or the tombstone's leaf in their own transaction,
// after the checks that coffer.CheckLoggedVersion and
// coffer.CheckLoggedDelete replay, and under the groups row lock that
// commits take too: so the leaf lands after every commit it was checked
// against and before any later one, and the group head in force at its
// place in the log is the one the store checked.

// logResourceVersion appends the leaf of a finalized version.
func logResourceVersion(ctx context.Context, tx pgx.Tx, r *coffer.Resource, h *coffer.ResourceHeader, at time.Time) error {
	leaf := translog.ResourceVersionLeaf(coffer.LoggedVersionOf(h, r.Header.Body))
	return appendResourceLeaf(ctx, tx, leaf, r.Group, r.ID, at)
}

// logResourceDelete appends the leaf of a signed delete.
func logResourceDelete(ctx context.Context, tx pgx.Tx, g coffer.GroupID, id coffer.ResourceID, sd coffer.SignedDelete, at time.Time) error {
	return appendResourceLeaf(ctx, tx, translog.ResourceDeleteLeaf(sd), g, id, at)
}

func appendResourceLeaf(ctx context.Context, tx pgx.Tx, leaf []byte, g coffer.GroupID, id coffer.ResourceID, at time.Time) error {
	h := translog.RecordHash(leaf)
	_, err := tx.Exec(ctx, `INSERT INTO log_entries (leaf, leaf_hash, group_id, resource_id, created_at)
		VALUES ($1, $2, $3, $4, $5)`, leaf, h[:], g, id, at.UTC())
	return err
}

// resourceEverLogged reports whether the log holds a leaf of resource id in
// g. A deleted resource stays deleted in the log (its tombstone is final),
// so its id is never created again.
func resourceEverLogged(ctx context.Context, tx pgx.Tx, g coffer.GroupID, id coffer.ResourceID) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM log_entries WHERE group_id = $1 AND resource_id = $2)`, g, id).Scan(&ok)
	return ok, err
}

// resourceTombstoned reports whether the log holds a tombstone of resource
// id in g. A row the database still holds for it (restored by hand, say)
// must not get another version: the log would hold a leaf after the
// tombstone, which the heads map refuses.
func resourceTombstoned(ctx context.Context, tx pgx.Tx, g coffer.GroupID, id coffer.ResourceID) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM log_entries WHERE group_id = $1 AND resource_id = $2
		AND get_byte(leaf, $3) = $4)`, g, id, len(coffer.SignedMessage(coffer.LabelLogLeaf, nil)), int(translog.KindResourceDelete)).Scan(&ok)
	return ok, err
}
