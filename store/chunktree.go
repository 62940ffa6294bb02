package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

// The chunk tree's stored hashes of a blob-backed version live in its
// resources row (migration 00011): set by FinalizeUpload, replaced with the
// blob by a replace, deleted with the row. Range reads read only the slices
// they need; the column is stored out of line without compression, so
// PostgreSQL fetches only the pieces of it that hold them.

// chunkTree is what FinalizeUpload stores for r: nothing for inline
// content, whose one chunk is proven from the row itself.
func chunkTree(r *coffer.Resource) []byte {
	if r.Content != nil || len(r.ChunkTree) == 0 {
		return nil
	}
	return r.ChunkTree
}

// maxTreeRead bounds the hashes one ChunkTreeHashes call reads.
const maxTreeRead = 1 << 16

// ChunkTreeHashes returns the stored hashes at indexes (each a
// tlog.StoredHashIndex) of the chunk tree of resource id of g, as long as
// its current version's blob is blobKey, and the length of the stored tree
// in bytes. found is false when the row has no tree, or no longer names
// that blob (replaced or deleted meanwhile). An index past the stored tree
// is an error: the caller checked the tree's length against the header.
func (db *DB) ChunkTreeHashes(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, blobKey string, indexes []int64) (hashes [][32]byte, treeLen int64, found bool, err error) {
	if len(indexes) > maxTreeRead {
		return nil, 0, false, fmt.Errorf("store: %d stored tree hashes asked for at once", len(indexes))
	}
	var (
		n      *int64
		slices [][]byte
	)
	err = db.pool.QueryRow(ctx, `SELECT length(r.chunk_tree),
			ARRAY(SELECT substring(r.chunk_tree FROM (i * 32 + 1)::int FOR 32) FROM unnest($4::bigint[]) WITH ORDINALITY AS u(i, o) ORDER BY o)
		FROM resources r WHERE r.id = $1 AND r.group_id = $2 AND r.blob_key = $3`,
		id, g, blobKey, indexes).Scan(&n, &slices)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && n == nil) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	hashes = make([][32]byte, len(indexes))
	for i, s := range slices {
		if len(s) != 32 {
			return nil, *n, true, fmt.Errorf("store: stored tree hash %d of resource %s is not in its %d-byte tree", indexes[i], id, *n)
		}
		hashes[i] = [32]byte(s)
	}
	return hashes, *n, true, nil
}

// SetChunkTree stores the chunk tree of resource id of g, if its current
// version's blob is still blobKey and it has none yet: a version stored
// before the column existed gets its tree at its first range read.
func (db *DB) SetChunkTree(ctx context.Context, g coffer.GroupID, id coffer.ResourceID, blobKey string, tree []byte) error {
	if len(tree) == 0 || len(tree)%32 != 0 {
		return fmt.Errorf("store: a stored chunk tree of %d bytes", len(tree))
	}
	_, err := db.pool.Exec(ctx, `UPDATE resources SET chunk_tree = $4
		WHERE id = $1 AND group_id = $2 AND blob_key = $3 AND chunk_tree IS NULL`, id, g, blobKey, tree)
	return err
}
