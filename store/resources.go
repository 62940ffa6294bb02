package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cofferhq/coffer"
)

var _ coffer.ResourceService = (*DB)(nil)

func notFoundResource() error { return coffer.Errorf(coffer.ENOTFOUND, "no such resource") }
func notFoundUpload() error   { return coffer.Errorf(coffer.ENOTFOUND, "no such upload") }

// roleOf returns the caller's current role in g: ENOTFOUND for a
// non-member, so that a group is invisible to outsiders. With lock, the
// membership row is held FOR SHARE until the transaction ends, so a
// concurrent removal or demotion waits for a write that was authorized
// under the old role to land first, and never crosses it.
func roleOf(ctx context.Context, tx pgx.Tx, g coffer.GroupID, caller coffer.AccountID, lock bool) (coffer.Role, error) {
	q := `SELECT role FROM group_members WHERE group_id = $1 AND account_id = $2`
	if lock {
		q += ` FOR SHARE`
	}
	var role int16
	err := tx.QueryRow(ctx, q, g, caller).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return coffer.RoleNone, notFoundGroup()
	}
	return coffer.Role(role), err
}

// needWriter returns EFORBIDDEN unless the caller is a writer or above.
func needWriter(ctx context.Context, tx pgx.Tx, g coffer.GroupID, caller coffer.AccountID, lock bool) (coffer.Role, error) {
	role, err := roleOf(ctx, tx, g, caller, lock)
	if err != nil {
		return role, err
	}
	if role < coffer.RoleWriter {
		return role, coffer.Errorf(coffer.EFORBIDDEN, "writing resources needs the writer role; you are a %s", role)
	}
	return role, nil
}

// mayChange checks that a writer may delete or replace a resource whose
// current version was written by author: its own, or anyone's as an admin.
func mayChange(role coffer.Role, caller, author coffer.AccountID) error {
	if author != caller && role < coffer.RoleAdmin {
		return coffer.Errorf(coffer.EFORBIDDEN, "only the resource's author or an admin may delete or replace it")
	}
	return nil
}

// binUUID passes an id to pgx as 16 binary bytes. The ids' driver.Valuer
// sends text, which costs formatting here and parsing in PostgreSQL; on
// the hottest read that is worth avoiding.
func binUUID[T ~[16]byte](id T) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

// ts is the clock rounded to PostgreSQL's microseconds, so that a time
// handed back in a cursor compares equal to the stored one.
func (db *DB) ts() time.Time { return db.now().Truncate(time.Microsecond) }

// CreateUpload implements coffer.ResourceService.
func (db *DB) CreateUpload(ctx context.Context, caller coffer.AccountID, u *coffer.Upload, maxPerGroup int64) error {
	now := db.ts()
	u.Author, u.Created, u.Updated = caller, now, now
	return db.inTx(ctx, func(tx pgx.Tx) error {
		role, err := needWriter(ctx, tx, u.Group, caller, false)
		if err != nil {
			return err
		}
		cur, err := currentVersion(ctx, tx, u.Group, u.Resource, false)
		if err != nil {
			return err
		}
		// The groups row lock serializes the group's upload creations, so
		// that the count below holds when the insert lands. The count is a
		// statement of its own, after the lock: under READ COMMITTED a
		// subquery in the locking statement would read the snapshot taken
		// before waiting for the lock, and miss the uploads that the
		// previous holder inserted.
		var count, pending int64
		if err := tx.QueryRow(ctx, `SELECT resource_count FROM groups WHERE id = $1 FOR UPDATE`, u.Group).Scan(&count); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM uploads WHERE group_id = $1`, u.Group).Scan(&pending); err != nil {
			return err
		}
		if u.Version == 1 {
			if cur != nil {
				return coffer.Errorf(coffer.ECONFLICT, "resource %s already exists", u.Resource)
			}
			// A pending upload of a new resource takes a place, so the
			// limit also bounds how many a group can park.
			if count+pending >= maxPerGroup {
				return pendingLimitError(maxPerGroup, count, pending)
			}
		} else {
			if pending >= maxPerGroup {
				return pendingLimitError(maxPerGroup, count, pending)
			}
			if cur == nil {
				return notFoundResource()
			}
			if err := mayChange(role, caller, cur.author); err != nil {
				return err
			}
			if cur.version != u.Version-1 {
				return preconditionError(cur.version)
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO uploads (id, resource_id, group_id, author_id, version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6)`, u.ID, u.Resource, u.Group, caller, int64(u.Version), now)
		return err
	})
}

func pendingLimitError(max, count, pending int64) error {
	if pending == 0 {
		return limitError(max)
	}
	return coffer.Errorf(coffer.ELIMIT, "the group holds %d resources and %d unfinished uploads, the maximum is %d: finish or delete uploads, or delete resources", count, pending, max)
}

func limitError(max int64) error {
	return coffer.Errorf(coffer.ELIMIT, "the group holds the maximum of %d resources: delete some first", max)
}

func preconditionError(current uint64) error {
	return coffer.Errorf(coffer.EPRECONDITION, "the resource is at version %d: fetch it again and retry", current)
}

type versionRow struct {
	version uint64
	author  coffer.AccountID
	blobKey string
	header  []byte // the signed header body
}

// currentVersion returns the resource's current version, or nil if there
// is none. With lock, the row is held FOR UPDATE, which serializes racing
// replaces and deletes of one resource.
func currentVersion(ctx context.Context, tx pgx.Tx, g coffer.GroupID, id coffer.ResourceID, lock bool) (*versionRow, error) {
	q := `SELECT version, author_id, COALESCE(blob_key, ''), header FROM resources WHERE id = $1 AND group_id = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	var v versionRow
	err := tx.QueryRow(ctx, q, id, g).Scan(&v.version, &v.author, &v.blobKey, &v.header)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return &v, err
}

const uploadColumns = `id, resource_id, group_id, author_id, version, COALESCE(blob_key, ''), content, COALESCE(size, 0), content_hash, created_at, updated_at, writing_until`

func scanUpload(row pgx.Row) (*coffer.Upload, error) {
	var (
		u       coffer.Upload
		hash    []byte
		writing *time.Time
	)
	if err := row.Scan(&u.ID, &u.Resource, &u.Group, &u.Author, &u.Version, &u.BlobKey, &u.Content, &u.Size, &hash, &u.Created, &u.Updated, &writing); err != nil {
		return nil, err
	}
	copy(u.ContentHash[:], hash)
	if writing != nil {
		u.WritingUntil = *writing
	}
	return &u, nil
}

// Upload implements coffer.ResourceService. An upload is visible only to
// its author, and only while the author is still a member.
func (db *DB) Upload(ctx context.Context, caller coffer.AccountID, id coffer.UploadID) (*coffer.Upload, error) {
	var u *coffer.Upload
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		u, err = scanUpload(tx.QueryRow(ctx, `SELECT `+uploadColumns+` FROM uploads u
			WHERE id = $1 AND author_id = $2
			AND EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = u.group_id AND m.account_id = $2)`, id, caller))
		return err
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return nil, notFoundUpload()
	}
	return u, err
}

// ReserveUpload implements coffer.ResourceService. A transaction lock on
// the account serializes its reservations, so that concurrent PUTs cannot
// each see the same room. (An advisory lock, not the accounts row: the
// key space is the account id, 0x636f6666 "coff" keeps it apart from other
// users of advisory locks.)
func (db *DB) ReserveUpload(ctx context.Context, caller coffer.AccountID, id coffer.UploadID, want, maxPending int64) (int64, error) {
	var granted int64
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(x'636f6666'::int, hashtext($1::text))`, caller.String()); err != nil {
			return err
		}
		var others int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(sum(GREATEST(COALESCE(size, 0), reserved)), 0)::bigint
			FROM uploads WHERE author_id = $1 AND id <> $2`, caller, id).Scan(&others); err != nil {
			return err
		}
		granted = max(0, min(want, maxPending-others))
		tag, err := tx.Exec(ctx, `UPDATE uploads SET reserved = $3, updated_at = $4 WHERE id = $1 AND author_id = $2`,
			id, caller, granted, db.ts())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFoundUpload()
		}
		return nil
	})
	return granted, err
}

// SetUploadContent implements coffer.ResourceService.
func (db *DB) SetUploadContent(ctx context.Context, caller coffer.AccountID, id coffer.UploadID, blobKey string, size int64, hash [32]byte) (string, error) {
	var replaced string
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		// The subquery reads the old key before the update changes it.
		// The received size now counts instead of the reservation.
		return tx.QueryRow(ctx, `UPDATE uploads u SET blob_key = $3, content = NULL, size = $4, content_hash = $5, updated_at = $6, reserved = 0,
				writing_key = NULLIF(u.writing_key, $3), writing_until = CASE WHEN u.writing_key = $3 THEN NULL ELSE u.writing_until END
			FROM (SELECT id, COALESCE(blob_key, '') AS old FROM uploads WHERE id = $1 FOR UPDATE) o
			WHERE u.id = o.id AND u.author_id = $2
			RETURNING o.old`, id, caller, blobKey, size, hash[:], db.ts()).Scan(&replaced)
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return "", notFoundUpload()
	}
	return replaced, err
}

// SetUploadInline implements coffer.ResourceService. No lease is involved:
// the content arrives in this one statement.
func (db *DB) SetUploadInline(ctx context.Context, caller coffer.AccountID, id coffer.UploadID, content []byte, hash [32]byte) (string, error) {
	if len(content) > coffer.MaxInlineContentSize {
		return "", coffer.Errorf(coffer.EINVALID, "%d bytes of content is too large to keep in the row", len(content))
	}
	if content == nil {
		content = []byte{} // NULL would mean no content
	}
	var replaced string
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `UPDATE uploads u SET blob_key = NULL, content = $3, size = $4, content_hash = $5, updated_at = $6, reserved = 0
			FROM (SELECT id, COALESCE(blob_key, '') AS old FROM uploads WHERE id = $1 FOR UPDATE) o
			WHERE u.id = o.id AND u.author_id = $2
			RETURNING o.old`, id, caller, content, int64(len(content)), hash[:], db.ts()).Scan(&replaced)
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return "", notFoundUpload()
	}
	return replaced, err
}

// LeaseUpload implements coffer.ResourceService. The lease is separate
// from updated_at, the upload's last activity: a collector compares that
// with its own -upload-ttl, which may be shorter than a slow upload, and
// the lease must hold whatever the TTL.
func (db *DB) LeaseUpload(ctx context.Context, caller coffer.AccountID, id coffer.UploadID, blobKey string, d time.Duration) error {
	until := db.ts().Add(d)
	return db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE uploads SET writing_key = $3, writing_until = $4 WHERE id = $1 AND author_id = $2`,
			id, caller, blobKey, until)
		if err == nil && tag.RowsAffected() == 0 {
			return notFoundUpload()
		}
		return err
	})
}

// ReleaseUpload implements coffer.ResourceService.
func (db *DB) ReleaseUpload(ctx context.Context, caller coffer.AccountID, id coffer.UploadID, blobKey string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE uploads SET writing_key = NULL, writing_until = NULL
			WHERE id = $1 AND author_id = $2 AND writing_key = $3`, id, caller, blobKey)
		return err
	})
}

// DeleteUpload implements coffer.ResourceService.
func (db *DB) DeleteUpload(ctx context.Context, caller coffer.AccountID, id coffer.UploadID) (string, error) {
	var key string
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `DELETE FROM uploads WHERE id = $1 AND author_id = $2 RETURNING COALESCE(blob_key, '')`,
			id, caller).Scan(&key)
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return "", notFoundUpload()
	}
	return key, err
}

// FinalizeUpload implements coffer.ResourceService.
//
// Locks are taken in one order, groups row, then membership row, then
// resource row, the same order a commit append takes the first two, and
// DeleteResource all three; so they never deadlock. The
// groups row lock makes the epoch check exact: a rotation commits either
// before (and the finalize sees the new epoch) or after the resource.
func (db *DB) FinalizeUpload(ctx context.Context, caller coffer.AccountID, id coffer.UploadID, r *coffer.Resource, maxPerGroup int64) (string, error) {
	now := db.ts()
	var replaced string
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		u, err := scanUpload(tx.QueryRow(ctx, `DELETE FROM uploads WHERE id = $1 AND author_id = $2 RETURNING `+uploadColumns, id, caller))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFoundUpload()
		}
		if err != nil {
			return err
		}
		switch {
		case u.BlobKey == "" && u.Content == nil:
			return coffer.Errorf(coffer.EINVALID, "the upload has no content yet: PUT it before finalizing")
		case u.Resource != r.ID || u.Group != r.Group || u.Version != r.Version || r.Author != caller:
			return coffer.Errorf(coffer.EINVALID, "the resource does not match the upload's resource, group, version or author")
		case u.BlobKey != r.BlobKey || u.Size != r.Size || u.ContentHash != r.ContentHash:
			return coffer.Errorf(coffer.EINVALID, "the resource does not match the upload's content")
		}
		// Inline content moves from the upload row, in this transaction.
		r.Content = u.Content

		var epoch uint64
		var count int64
		err = tx.QueryRow(ctx, `SELECT epoch, resource_count FROM groups WHERE id = $1 FOR UPDATE`, r.Group).Scan(&epoch, &count)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFoundGroup()
		}
		if err != nil {
			return err
		}
		role, err := needWriter(ctx, tx, r.Group, caller, true)
		if err != nil {
			return err
		}
		if r.Epoch != epoch {
			return coffer.Errorf(coffer.ESTALEKEY, "the group moved to epoch %d during the upload: re-sync and upload again under the new key", epoch)
		}
		cur, err := currentVersion(ctx, tx, r.Group, r.ID, true)
		if err != nil {
			return err
		}
		h, err := coffer.ParseResourceHeader(r.Header.Body)
		if err != nil {
			return err
		}
		r.Updated = now
		if r.Version == 1 {
			if cur != nil {
				return coffer.Errorf(coffer.ECONFLICT, "resource %s already exists", r.ID)
			}
			if used, err := resourceEverLogged(ctx, tx, r.Group, r.ID); err != nil {
				return err
			} else if used {
				return coffer.Errorf(coffer.ECONFLICT, "resource %s was deleted; a deleted resource id is not used again", r.ID)
			}
			if count >= maxPerGroup {
				return limitError(maxPerGroup)
			}
			if err := logResourceVersion(ctx, tx, r, h, now); err != nil {
				return err
			}
			r.Created = now
			if _, err := tx.Exec(ctx, `UPDATE groups SET resource_count = resource_count + 1 WHERE id = $1`, r.Group); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO resources (id, group_id, version, author_id, epoch, header, header_signature,
				meta, content_hash, size, blob_key, content, created_at, updated_at, chunk_tree)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11, ''), $13, $12, $12, $14)`,
				r.ID, r.Group, int64(r.Version), r.Author, int64(r.Epoch), r.Header.Body, r.Header.Signature,
				r.Meta, r.ContentHash[:], r.Size, r.BlobKey, now, r.Content, chunkTree(r))
			return err
		}
		if cur == nil {
			return notFoundResource()
		}
		if err := mayChange(role, caller, cur.author); err != nil {
			return err
		}
		if cur.version != r.Version-1 {
			return preconditionError(cur.version)
		}
		if dead, err := resourceTombstoned(ctx, tx, r.Group, r.ID); err != nil {
			return err
		} else if dead {
			return notFoundResource()
		}
		if h.Prev != coffer.HeaderHash(cur.header) {
			return coffer.Errorf(coffer.EINVALID, "the header does not name version %d's header as the one it replaces", cur.version)
		}
		if err := logResourceVersion(ctx, tx, r, h, now); err != nil {
			return err
		}
		replaced = cur.blobKey
		return tx.QueryRow(ctx, `UPDATE resources SET version = $3, author_id = $4, epoch = $5, header = $6,
			header_signature = $7, meta = $8, content_hash = $9, size = $10, blob_key = NULLIF($11, ''), content = $13, updated_at = $12,
			chunk_tree = $14
			WHERE id = $1 AND group_id = $2 RETURNING created_at`,
			r.ID, r.Group, int64(r.Version), r.Author, int64(r.Epoch), r.Header.Body, r.Header.Signature,
			r.Meta, r.ContentHash[:], r.Size, r.BlobKey, now, r.Content, chunkTree(r)).Scan(&r.Created)
	})
	if err != nil {
		return "", err
	}
	return replaced, nil
}

const resourceColumns = `r.id, r.group_id, r.version, r.author_id, r.epoch, r.header, r.header_signature,
	r.meta, r.content_hash, r.size, COALESCE(r.blob_key, ''), r.created_at, r.updated_at`

func scanResource(row pgx.Row, extra ...any) (coffer.Resource, error) {
	var (
		r    coffer.Resource
		hash []byte
	)
	err := row.Scan(append([]any{&r.ID, &r.Group, &r.Version, &r.Author, &r.Epoch, &r.Header.Body, &r.Header.Signature,
		&r.Meta, &hash, &r.Size, &r.BlobKey, &r.Created, &r.Updated}, extra...)...)
	copy(r.ContentHash[:], hash)
	return r, err
}

// Resources implements coffer.ResourceService. The (group_id, created_at
// DESC, id DESC) index serves the query as a range scan.
//
// Like Resource, it runs without BEGIN and COMMIT: one statement is its own
// transaction, and the two round trips saved matter on the read path. Only
// an empty page costs a second statement, to tell an empty group from one
// the caller may not see.
func (db *DB) Resources(ctx context.Context, caller coffer.AccountID, g coffer.GroupID, after coffer.ResourceCursor, limit int) ([]coffer.Resource, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if after.Created.IsZero() {
		rows, err = db.pool.Query(ctx, `SELECT `+resourceColumns+` FROM resources r WHERE r.group_id = $1 AND `+memberClause+`
			ORDER BY r.created_at DESC, r.id DESC LIMIT $3`, g, caller, limit)
	} else {
		rows, err = db.pool.Query(ctx, `SELECT `+resourceColumns+` FROM resources r WHERE r.group_id = $1 AND `+memberClause+`
			AND (r.created_at, r.id) < ($3, $4)
			ORDER BY r.created_at DESC, r.id DESC LIMIT $5`, g, caller, after.Created, after.ID, limit)
	}
	if err != nil {
		return nil, mapError(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.Resource, error) { return scanResource(r) })
	if err != nil {
		return nil, mapError(err)
	}
	if len(out) == 0 {
		var member bool
		if err := db.pool.QueryRow(ctx, `SELECT `+memberClause, g, caller).Scan(&member); err != nil {
			return nil, mapError(err)
		}
		if !member {
			return nil, notFoundGroup()
		}
	}
	return out, nil
}

// Resource implements coffer.ResourceService. Membership is part of the
// one query: a non-member and a missing resource look the same. It is the
// hottest read (once per read of a resource), so it runs as a single statement
// without BEGIN and COMMIT.
func (db *DB) Resource(ctx context.Context, caller coffer.AccountID, g coffer.GroupID, id coffer.ResourceID) (*coffer.Resource, error) {
	var content []byte
	r, err := scanResource(db.pool.QueryRow(ctx, `SELECT `+resourceColumns+`, r.content FROM resources r
		WHERE r.group_id = $1 AND r.id = $3 AND `+memberClause, binUUID(g), binUUID(caller), binUUID(id)), &content)
	r.Content = content
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFoundResource()
	}
	if err != nil {
		return nil, mapError(err)
	}
	return &r, nil
}

// DeleteResource implements coffer.ResourceService.
func (db *DB) DeleteResource(ctx context.Context, caller coffer.AccountID, g coffer.GroupID, id coffer.ResourceID, del coffer.SignedDelete) (string, error) {
	d, err := coffer.ParseResourceDelete(del.Body)
	if err != nil {
		return "", err
	}
	if d.Group != g || d.Resource != id || d.Deleter != caller {
		return "", coffer.Errorf(coffer.EINVALID, "the signed delete names another group, resource or deleter")
	}
	var key string
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		// The groups row first, in the lock order of FinalizeUpload.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM groups WHERE id = $1 FOR UPDATE`, g); err != nil {
			return err
		}
		// Members learn that the resource does not exist before readers
		// learn that they may not delete.
		role, err := roleOf(ctx, tx, g, caller, true)
		if err != nil {
			return err
		}
		cur, err := currentVersion(ctx, tx, g, id, true)
		if err != nil {
			return err
		}
		if cur == nil {
			return notFoundResource()
		}
		if role < coffer.RoleWriter {
			return coffer.Errorf(coffer.EFORBIDDEN, "deleting resources needs the writer role; you are a %s", role)
		}
		if err := mayChange(role, caller, cur.author); err != nil {
			return err
		}
		if cur.version != d.Version {
			return preconditionError(cur.version)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM resources WHERE id = $1 AND group_id = $2`, id, g); err != nil {
			return err
		}
		if err := logResourceDelete(ctx, tx, g, id, del, db.ts()); err != nil {
			return err
		}
		key = cur.blobKey
		_, err = tx.Exec(ctx, `UPDATE groups SET resource_count = resource_count - 1 WHERE id = $1`, g)
		return err
	})
	return key, err
}

// CollectUploads deletes uploads that saw no activity for olderThan (the
// client went away before finalizing) and then their blobs. It returns how
// many uploads it removed. cofferd runs it periodically; tests call it.
//
// A blob whose deletion fails stays behind unreferenced, and SweepBlobs
// removes it later.
func (db *DB) CollectUploads(ctx context.Context, blobs coffer.BlobStore, olderThan time.Duration) (int, error) {
	cutoff := db.now().Add(-olderThan)
	total := 0
	for {
		var keys []string
		n := 0
		err := db.inTx(ctx, func(tx pgx.Tx) error {
			// Batches keep each transaction short on a large backlog.
			// An upload whose content a replica is still writing is not
			// idle, however old its last recorded activity.
			rows, err := tx.Query(ctx, `DELETE FROM uploads WHERE id IN
				(SELECT id FROM uploads WHERE updated_at < $1 AND (writing_until IS NULL OR writing_until < $2) LIMIT 1000)
				RETURNING COALESCE(blob_key, ''), COALESCE(writing_key, '')`, cutoff, db.now())
			if err != nil {
				return err
			}
			keys, n = keys[:0], 0
			var blobKey, writingKey string
			_, err = pgx.ForEachRow(rows, []any{&blobKey, &writingKey}, func() error {
				n++
				keys = append(keys, blobKey)
				if writingKey != "" && writingKey != blobKey {
					// The lease lapsed: its writer crashed or gave up.
					keys = append(keys, writingKey)
				}
				return nil
			})
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		for _, k := range keys {
			if k != "" {
				if err := blobs.Delete(ctx, k); err != nil {
					return total, err
				}
			}
		}
		if n < 1000 {
			return total, nil
		}
	}
}

// SweepBlobs deletes blobs that no resource or upload references and that
// are older than grace, and returns how many it deleted. Those are the
// remains of a crash between committing a blob and recording it, or of a
// failed delete. The grace period covers the moment between a blob's
// commit and the row that records it, so it must be far longer than any
// such gap (cofferd uses an hour).
func (db *DB) SweepBlobs(ctx context.Context, blobs coffer.BlobStore, grace time.Duration) (int, error) {
	cutoff := db.now().Add(-grace)
	deleted := 0
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var used []string
		err := db.inTx(ctx, func(tx pgx.Tx) error {
			// One statement, one snapshot: a blob moving from an upload to a
			// resource in a concurrent finalize is seen in one or the other.
			// A blob being written is named by its upload's lease from
			// before it exists, so even a sweep with no grace spares it.
			rows, err := tx.Query(ctx, `SELECT blob_key FROM resources WHERE blob_key = ANY($1)
				UNION ALL SELECT blob_key FROM uploads WHERE blob_key = ANY($1)
				UNION ALL SELECT writing_key FROM uploads WHERE writing_key = ANY($1)`, batch)
			if err != nil {
				return err
			}
			used, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil {
			return err
		}
		inUse := make(map[string]bool, len(used))
		for _, k := range used {
			inUse[k] = true
		}
		for _, k := range batch {
			if !inUse[k] {
				if err := blobs.Delete(ctx, k); err != nil {
					return err
				}
				deleted++
			}
		}
		batch = batch[:0]
		return nil
	}
	err := blobs.Walk(ctx, func(key string, mod time.Time) error {
		if !mod.Before(cutoff) {
			return nil
		}
		batch = append(batch, key)
		if len(batch) == 1000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return deleted, err
}
