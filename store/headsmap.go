package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// The heads map in PostgreSQL (migration 00008). IntegrateLog folds every
// newly integrated log leaf into the map in the same transaction that signs
// the checkpoint committing to it. Rows are versioned by log size, so
// MapProofs can prove an entry in the map of any signed checkpoint.

// mapHashReader reads the map's stored hashes as of the checkpoint of log
// size asOf.
type mapHashReader struct {
	ctx   context.Context
	q     querier
	asOf  int64
	cache map[int64]tlog.Hash
}

func (r *mapHashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	var missing []int64
	for _, i := range indexes {
		if _, ok := r.cache[i]; !ok {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		if err := r.load(missing); err != nil {
			return nil, err
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for k, i := range indexes {
		h, ok := r.cache[i]
		if !ok {
			return nil, fmt.Errorf("store: map hash %d is missing at log size %d", i, r.asOf)
		}
		out[k] = h
	}
	return out, nil
}

func (r *mapHashReader) load(indexes []int64) error {
	rows, err := r.q.Query(r.ctx, `SELECT DISTINCT ON (hash_index) hash_index, hash FROM map_hashes
		WHERE hash_index = ANY($1) AND log_size <= $2 ORDER BY hash_index, log_size DESC`, indexes, r.asOf)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			i int64
			h []byte
		)
		if err := rows.Scan(&i, &h); err != nil {
			return err
		}
		r.cache[i] = tlog.Hash(h)
	}
	return rows.Err()
}

// integrateMap folds the log leaves [from, to) into the map, writing the
// changed rows at version newLogSize, and returns the map's new size and
// root. mapSize is its size before.
func integrateMap(ctx context.Context, tx pgx.Tx, from, to, mapSize, newLogSize int64) (int64, tlog.Hash, error) {
	// Pass 1: what each leaf changes. Leaves stream one at a time (a commit
	// leaf can be 32 MiB); only the small updates are kept.
	var updates []translog.MapUpdate
	if from < to {
		rows, err := tx.Query(ctx, `SELECT leaf_index, leaf FROM log_entries
			WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index`, from, to)
		if err != nil {
			return 0, tlog.Hash{}, err
		}
		for rows.Next() {
			var (
				idx int64
				raw []byte
			)
			if err := rows.Scan(&idx, &raw); err != nil {
				rows.Close()
				return 0, tlog.Hash{}, err
			}
			if idx != from+int64(len(updates)) {
				rows.Close()
				return 0, tlog.Hash{}, fmt.Errorf("store: log leaf %d is missing", from+int64(len(updates)))
			}
			l, err := translog.ParseLeaf(raw)
			if err == nil {
				var u translog.MapUpdate
				if u, err = translog.LeafUpdate(idx, raw, l); err == nil {
					updates = append(updates, u)
				}
			}
			if err != nil {
				rows.Close()
				return 0, tlog.Hash{}, fmt.Errorf("store: log leaf %d: %w", idx, err)
			}
		}
		if err := rows.Err(); err != nil {
			return 0, tlog.Hash{}, err
		}
	}

	// Pass 2: the current entries of the keys concerned.
	type current struct {
		index int64
		entry translog.MapEntry
	}
	cur := map[translog.MapKey]*current{}
	var keys [][]byte
	for _, u := range updates {
		if _, ok := cur[u.Key]; !ok {
			cur[u.Key] = nil
			keys = append(keys, u.Key.Bytes())
		}
	}
	if len(keys) > 0 {
		rows, err := tx.Query(ctx, `SELECT k.map_index, e.entry FROM map_keys k
			CROSS JOIN LATERAL (SELECT entry FROM map_entries m WHERE m.map_index = k.map_index
				ORDER BY m.log_size DESC LIMIT 1) e
			WHERE k.map_key = ANY($1)`, keys)
		if err != nil {
			return 0, tlog.Hash{}, err
		}
		for rows.Next() {
			var (
				idx int64
				raw []byte
			)
			if err := rows.Scan(&idx, &raw); err != nil {
				rows.Close()
				return 0, tlog.Hash{}, err
			}
			e, err := translog.ParseMapEntry(raw)
			if err != nil {
				rows.Close()
				return 0, tlog.Hash{}, fmt.Errorf("store: map entry %d: %w", idx, err)
			}
			cur[e.Key] = &current{index: idx, entry: e}
		}
		if err := rows.Err(); err != nil {
			return 0, tlog.Hash{}, err
		}
	}

	// Pass 3: apply in log order, with every stored hash the updates read
	// fetched in one query: the siblings on each replaced entry's path, and
	// the complete subtrees appends and the root read.
	hr := &mapHashReader{ctx: ctx, q: tx, asOf: newLogSize, cache: map[int64]tlog.Hash{}}
	appends := int64(0)
	var need []int64
	for _, c := range cur {
		if c == nil {
			appends++
			continue
		}
		need = append(need, pathSiblings(c.index, mapSize)...)
	}
	need = append(need, translog.Frontier(mapSize)...)
	if appends > 0 {
		need = append(need, translog.Frontier(mapSize+appends)...)
	}
	if len(need) > 0 {
		slices.Sort(need)
		need = slices.Compact(need)
		// Hashes that do not exist yet (subtrees the appends will complete)
		// are simply not found; the tree writes them before reading them.
		if err := hr.load(need); err != nil {
			return 0, tlog.Hash{}, err
		}
	}
	tree := translog.NewMapTree(mapSize, hr)
	var newKeys [][]any
	changed := map[int64]translog.MapEntry{}
	for _, u := range updates {
		c := cur[u.Key]
		var prev *translog.MapEntry
		if c != nil {
			prev = &c.entry
		}
		e, err := u.Apply(prev)
		if err != nil {
			return 0, tlog.Hash{}, err
		}
		if c == nil {
			i, err := tree.Append(e.Marshal())
			if err != nil {
				return 0, tlog.Hash{}, err
			}
			c = &current{index: i}
			cur[u.Key] = c
			newKeys = append(newKeys, []any{u.Key.Bytes(), i, newLogSize})
		} else if err := tree.Set(c.index, e.Marshal()); err != nil {
			return 0, tlog.Hash{}, err
		}
		c.entry = e
		changed[c.index] = e
	}
	root, err := tree.Root()
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	if len(newKeys) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"map_keys"}, []string{"map_key", "map_index", "log_size"}, pgx.CopyFromRows(newKeys)); err != nil {
			return 0, tlog.Hash{}, err
		}
	}
	if len(changed) > 0 {
		entries := make([][]any, 0, len(changed))
		for i, e := range changed {
			entries = append(entries, []any{i, newLogSize, e.Marshal()})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"map_entries"}, []string{"map_index", "log_size", "entry"}, pgx.CopyFromRows(entries)); err != nil {
			return 0, tlog.Hash{}, err
		}
		hashes := make([][]any, 0, len(tree.Dirty()))
		for i, h := range tree.Dirty() {
			hashes = append(hashes, []any{i, newLogSize, h[:]})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"map_hashes"}, []string{"hash_index", "log_size", "hash"}, pgx.CopyFromRows(hashes)); err != nil {
			return 0, tlog.Hash{}, err
		}
	}
	return tree.Size(), root, nil
}

// pathSiblings returns the stored-hash indexes of the complete subtrees
// beside leaf i's path in a tree of size n: what replacing leaf i reads.
func pathSiblings(i, n int64) []int64 {
	var out []int64
	for level := 0; level < 63; level++ {
		k := i >> level
		if (k+1)<<level > n {
			break
		}
		if sib := k ^ 1; (sib+1)<<level <= n {
			out = append(out, tlog.StoredHashIndex(level, sib))
		}
	}
	return out
}

// MaxMapProofs caps the keys of one MapProofs call.
const MaxMapProofs = 1000

// MapProofs proves the entries of keys in the map of the signed checkpoint
// of log size size. A key the map does not hold gets Index -1.
func (db *DB) MapProofs(ctx context.Context, size int64, keys []translog.MapKey) ([]translog.MapProof, error) {
	if len(keys) > MaxMapProofs {
		return nil, coffer.Errorf(coffer.ETOOLARGE, "at most %d keys per request", MaxMapProofs)
	}
	out := make([]translog.MapProof, len(keys))
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var mapSize int64
		if err := tx.QueryRow(ctx, `SELECT map_size FROM log_checkpoints WHERE tree_size = $1`, size).Scan(&mapSize); err != nil {
			if err == pgx.ErrNoRows {
				return coffer.Errorf(coffer.ENOTFOUND, "no signed checkpoint of size %d", size)
			}
			return err
		}
		raw := make([][]byte, len(keys))
		for i, k := range keys {
			raw[i] = k.Bytes()
		}
		rows, err := tx.Query(ctx, `SELECT k.map_key, k.map_index, e.entry FROM map_keys k
			CROSS JOIN LATERAL (SELECT entry FROM map_entries m WHERE m.map_index = k.map_index AND m.log_size <= $2
				ORDER BY m.log_size DESC LIMIT 1) e
			WHERE k.map_key = ANY($1) AND k.log_size <= $2`, raw, size)
		if err != nil {
			return err
		}
		type found struct {
			index int64
			entry []byte
		}
		got := map[string]found{}
		for rows.Next() {
			var (
				k []byte
				f found
			)
			if err := rows.Scan(&k, &f.index, &f.entry); err != nil {
				rows.Close()
				return err
			}
			got[string(k)] = f
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rec := &indexRecorder{}
		for i := range keys {
			out[i] = translog.MapProof{Index: -1}
			if f, ok := got[string(raw[i])]; ok && f.index < mapSize {
				out[i] = translog.MapProof{Index: f.index, Entry: f.entry}
				if err := rec.record(mapSize, f.index); err != nil {
					return err
				}
			}
		}
		hr := &mapHashReader{ctx: ctx, q: tx, asOf: size, cache: map[int64]tlog.Hash{}}
		if len(rec.need) > 0 {
			slices.Sort(rec.need)
			if err := hr.load(slices.Compact(rec.need)); err != nil {
				return err
			}
		}
		for i := range out {
			if out[i].Index < 0 {
				continue
			}
			p, err := tlog.ProveRecord(mapSize, out[i].Index, hr)
			if err != nil {
				return err
			}
			out[i].Proof = p
		}
		return nil
	})
	return out, err
}

// LogCheckpointAt returns the signed checkpoint of log size size, with the
// cosignatures stored for it if any.
func (db *DB) LogCheckpointAt(ctx context.Context, size int64) (string, error) {
	var (
		cp       string
		cosigned *string
	)
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT checkpoint, cosigned FROM log_checkpoints WHERE tree_size = $1`, size).Scan(&cp, &cosigned)
	})
	if err != nil {
		return "", err
	}
	if cosigned != nil {
		return *cosigned, nil
	}
	return cp, nil
}
