package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// The transparency log in PostgreSQL (see docs/PROTOCOL.md).
//
// Writers append a leaf to log_entries inside the transaction of the
// registration or commit it records (the hooks below), with a single INSERT:
// its id comes from an identity sequence, which never blocks another
// transaction. Nothing on the write path touches a shared row, so writers
// do not serialize behind the log.
//
// IntegrateLog, run by one sequencer at a time, gives pending leaves dense
// leaf indexes in id order, stores their tlog hashes in log_hashes and
// signs a checkpoint into log_head. Its exclusive lock is the log_head row,
// which only sequencers take.

var _ coffer.LogService = (*DB)(nil)

func init() {
	afterAccountCreated = logIdentity
	afterCommitStored = logCommit
}

func logIdentity(ctx context.Context, tx pgx.Tx, a *coffer.Account) error {
	leaf := translog.IdentityLeaf(a.ID, a.Identity.Marshal(), a.SelfSignature)
	return appendLeaf(ctx, tx, leaf, &a.ID, nil, 0, a.Created)
}

func logCommit(ctx context.Context, tx pgx.Tx, a *coffer.GroupAppend) error {
	leaf := translog.CommitLeaf(a.State.Group, a.Parsed.Seq, a.Commit)
	return appendLeaf(ctx, tx, leaf, nil, &a.State.Group, a.Parsed.Seq, a.Received)
}

func appendLeaf(ctx context.Context, tx pgx.Tx, leaf []byte, account *coffer.AccountID, g *coffer.GroupID, seq uint64, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	h := translog.RecordHash(leaf)
	var seqArg *int64
	if g != nil {
		s := int64(seq)
		seqArg = &s
	}
	_, err := tx.Exec(ctx, `INSERT INTO log_entries (leaf, leaf_hash, account_id, group_id, seq, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, leaf, h[:], account, g, seqArg, at.UTC())
	return err
}

// LogSigner signs checkpoints. *translog.Signer implements it. Ed25519
// signatures are deterministic, so signing the same checkpoint twice gives
// the same note; IntegrateLog uses that to notice a changed key or origin.
type LogSigner interface {
	Sign(cp translog.Checkpoint) (string, error)
}

// DefaultCheckpointRefresh is how often IntegrateLog re-signs a tree that
// did not grow, so that a quiet log's checkpoint still carries a recent
// time for witnesses to cosign and clients to call fresh.
const DefaultCheckpointRefresh = 10 * time.Second

// IntegrateLog integrates up to max pending leaves into the tree and the
// heads map, stores their hashes and a new signed checkpoint, all in one
// transaction, and returns how many it integrated. With nothing pending it
// re-signs the current tree only if the stored checkpoint is not signer's
// (first start, or a new key or origin) or is older than
// db.CheckpointRefresh. Concurrent callers (replicas) take turns on the
// log_head row lock.
func (db *DB) IntegrateLog(ctx context.Context, signer LogSigner, max int) (int, error) {
	var n int
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var (
			size       int64
			rootBytes  []byte
			checkpoint string
			mapLogSize int64
			mapSize    int64
			signedAt   time.Time
		)
		if err := tx.QueryRow(ctx, `SELECT tree_size, root_hash, checkpoint, map_log_size, map_size, updated_at FROM log_head FOR UPDATE`).
			Scan(&size, &rootBytes, &checkpoint, &mapLogSize, &mapSize, &signedAt); err != nil {
			return fmt.Errorf("log head: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT id, leaf_hash FROM log_entries
			WHERE leaf_index IS NULL ORDER BY id LIMIT $1`, max)
		if err != nil {
			return err
		}
		var (
			ids    []int64
			hashes []tlog.Hash
		)
		for rows.Next() {
			var (
				id int64
				h  []byte
			)
			if err := rows.Scan(&id, &h); err != nil {
				rows.Close()
				return err
			}
			if len(h) != tlog.HashSize {
				rows.Close()
				return fmt.Errorf("log entry %d: leaf hash of %d bytes", id, len(h))
			}
			ids = append(ids, id)
			hashes = append(hashes, tlog.Hash(h))
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			cp := translog.Checkpoint{Size: size, Root: tlog.Hash(rootBytes), MapSize: mapSize, Time: signedAt.Unix()}
			if mapLogSize < size {
				// A log from before the heads map: build the map first.
				var err error
				if cp.MapSize, cp.MapRoot, err = integrateMap(ctx, tx, mapLogSize, size, mapSize, size); err != nil {
					return err
				}
			} else if cp.MapRoot, err = tlog.TreeHash(mapSize, &mapHashReader{ctx: ctx, q: tx, asOf: size, cache: map[int64]tlog.Hash{}}); err != nil {
				return err
			}
			same, err := signer.Sign(cp)
			if err != nil {
				return err
			}
			if same == checkpoint && mapLogSize == size && db.now().Sub(signedAt) < db.checkpointRefresh() {
				return nil
			}
			return db.storeCheckpoint(ctx, tx, signer, cp)
		}

		r := &hashReader{ctx: ctx, q: tx, cache: map[int64]tlog.Hash{}}
		first := tlog.StoredHashCount(size)
		var stored [][]any
		indexes := make([]int64, len(ids))
		for i, h := range hashes {
			leaf := size + int64(i)
			hs, err := tlog.StoredHashesForRecordHash(leaf, h, r)
			if err != nil {
				return err
			}
			base := tlog.StoredHashIndex(0, leaf)
			for j, x := range hs {
				r.cache[base+int64(j)] = x
				stored = append(stored, []any{base + int64(j), x[:]})
			}
			indexes[i] = leaf
		}
		if got := stored[0][0].(int64); got != first {
			return fmt.Errorf("log hashes start at %d, want %d", got, first)
		}
		newSize := size + int64(len(ids))
		root, err := tlog.TreeHash(newSize, r)
		if err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"log_hashes"}, []string{"hash_index", "hash"}, pgx.CopyFromRows(stored)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE log_entries e SET leaf_index = v.idx
			FROM unnest($1::bigint[], $2::bigint[]) AS v(id, idx) WHERE e.id = v.id`, ids, indexes); err != nil {
			return err
		}
		cp := translog.Checkpoint{Size: newSize, Root: root}
		if cp.MapSize, cp.MapRoot, err = integrateMap(ctx, tx, mapLogSize, newSize, mapSize, newSize); err != nil {
			return err
		}
		if err := db.storeCheckpoint(ctx, tx, signer, cp); err != nil {
			return err
		}
		n = len(ids)
		return nil
	})
	return n, err
}

func (db *DB) checkpointRefresh() time.Duration {
	if db.CheckpointRefresh > 0 {
		return db.CheckpointRefresh
	}
	return DefaultCheckpointRefresh
}

// storeCheckpoint signs cp at the current time and stores it as the head
// and in log_checkpoints. The time is whole seconds, as the checkpoint
// carries it, so that re-signing reproduces the stored note exactly. A
// re-signature of the same tree keeps the row's cosigned note (of the same
// tree, at an earlier time) until the witnesses cosign the new one
// (cosign.go), so a cosigned checkpoint of the newest tree stays at hand.
func (db *DB) storeCheckpoint(ctx context.Context, tx pgx.Tx, signer LogSigner, cp translog.Checkpoint) error {
	now := db.now().Truncate(time.Second)
	cp.Time = now.Unix()
	note, err := signer.Sign(cp)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE log_head SET tree_size = $1, root_hash = $2, checkpoint = $3, updated_at = $4,
		map_log_size = $1, map_size = $5`, cp.Size, cp.Root[:], note, now, cp.MapSize); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO log_checkpoints (tree_size, map_size, checkpoint, cosigned, signed_at)
		VALUES ($1, $2, $3, NULL, $4)
		ON CONFLICT (tree_size) DO UPDATE SET map_size = $2, checkpoint = $3, signed_at = $4,
			cosigned = CASE WHEN log_checkpoints.map_size = $2 THEN log_checkpoints.cosigned END`,
		cp.Size, cp.MapSize, note, now)
	return err
}

// querier is what hashReader needs of a transaction or connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// hashReader is a tlog.HashReader over log_hashes, with a cache for the
// hashes a caller already holds (the sequencer's batch).
type hashReader struct {
	ctx   context.Context
	q     querier
	cache map[int64]tlog.Hash
}

func (r *hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
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
	for k, i := range indexes {
		h, ok := r.cache[i]
		if !ok {
			return nil, fmt.Errorf("store: log hash %d is missing", i)
		}
		out[k] = h
	}
	return out, nil
}

func (r *hashReader) load(indexes []int64) error {
	rows, err := r.q.Query(r.ctx, `SELECT hash_index, hash FROM log_hashes WHERE hash_index = ANY($1)`, indexes)
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
		if len(h) != tlog.HashSize {
			return fmt.Errorf("store: log hash %d has %d bytes", i, len(h))
		}
		r.cache[i] = tlog.Hash(h)
	}
	return rows.Err()
}

// indexRecorder is a tlog.HashReader that only records which hashes a proof
// needs, so that many proofs can fetch their hashes in one query. It stops
// the proof there: tlog.ProveRecord asks for all of a proof's hashes in one
// call, and what it would compute from placeholders (hashing them, for a
// tree whose size is not a power of two) is thrown away. Were a proof to
// ask in several calls, the hashReader of the second pass still loads what
// it lacks.
type indexRecorder struct{ need []int64 }

// errIndexesRecorded ends a proof of an indexRecorder.
var errIndexesRecorded = errors.New("store: proof indexes recorded")

func (r *indexRecorder) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	r.need = append(r.need, indexes...)
	return nil, errIndexesRecorded
}

// record records the hashes of the proof of leaf index in the tree of size.
func (r *indexRecorder) record(size, index int64) error {
	if _, err := tlog.ProveRecord(size, index, r); err != nil && !errors.Is(err, errIndexesRecorded) {
		return err
	}
	return nil
}

// LogCheckpoint implements coffer.LogService.
func (db *DB) LogCheckpoint(ctx context.Context) (string, error) {
	var cp string
	err := mapError(db.pool.QueryRow(ctx, `SELECT checkpoint FROM log_head`).Scan(&cp))
	if err == nil && cp == "" {
		return "", coffer.Errorf(coffer.EUNAVAILABLE, "the log has no signed checkpoint yet")
	}
	return cp, err
}

// treeSize reads the integrated tree size in tx.
func treeSize(ctx context.Context, tx pgx.Tx) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, `SELECT tree_size FROM log_head`).Scan(&n)
	return n, err
}

// maxLeafBytes caps one page of leaves.
const maxLeafBytes = 8 << 20

// LogLeaves implements coffer.LogService.
func (db *DB) LogLeaves(ctx context.Context, start int64, limit int) ([][]byte, error) {
	if start < 0 || limit <= 0 {
		return nil, coffer.Errorf(coffer.EINVALID, "start must be >= 0 and limit > 0")
	}
	var out [][]byte
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		n, err := treeSize(ctx, tx)
		if err != nil {
			return err
		}
		if start > n {
			return coffer.Errorf(coffer.ENOTFOUND, "the tree has %d leaves", n)
		}
		rows, err := tx.Query(ctx, `SELECT leaf_index, leaf FROM log_entries
			WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index LIMIT $3`, start, n, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		total := 0
		for rows.Next() {
			var (
				i    int64
				leaf []byte
			)
			if err := rows.Scan(&i, &leaf); err != nil {
				return err
			}
			if i != start+int64(len(out)) {
				return fmt.Errorf("store: log leaf %d is missing", start+int64(len(out)))
			}
			// Always return at least one leaf, however large.
			if len(out) > 0 && total+len(leaf) > maxLeafBytes {
				break
			}
			total += len(leaf)
			out = append(out, leaf)
		}
		return rows.Err()
	})
	return out, err
}

func checkSize(ctx context.Context, tx pgx.Tx, size int64) error {
	n, err := treeSize(ctx, tx)
	if err != nil {
		return err
	}
	if size > n {
		return coffer.Errorf(coffer.ENOTFOUND, "no tree of size %d: the log has %d leaves", size, n)
	}
	return nil
}

// LogInclusionProof implements coffer.LogService.
func (db *DB) LogInclusionProof(ctx context.Context, index, size int64) ([][32]byte, error) {
	if index < 0 || size <= index {
		return nil, coffer.Errorf(coffer.EINVALID, "need 0 <= index < size")
	}
	var proof tlog.RecordProof
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkSize(ctx, tx, size); err != nil {
			return err
		}
		var err error
		proof, err = tlog.ProveRecord(size, index, &hashReader{ctx: ctx, q: tx, cache: map[int64]tlog.Hash{}})
		return err
	})
	return toArrays(proof), err
}

// LogConsistencyProof implements coffer.LogService.
func (db *DB) LogConsistencyProof(ctx context.Context, older, newer int64) ([][32]byte, error) {
	if older < 0 || newer < older {
		return nil, coffer.Errorf(coffer.EINVALID, "need 0 <= old <= new")
	}
	var proof tlog.TreeProof
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkSize(ctx, tx, newer); err != nil {
			return err
		}
		if older == 0 || older == newer {
			return nil
		}
		var err error
		proof, err = tlog.ProveTree(newer, older, &hashReader{ctx: ctx, q: tx, cache: map[int64]tlog.Hash{}})
		return err
	})
	return toArrays(proof), err
}

// MaxLogProofs caps the references of one LogProofs call, and
// MaxVersionProofs the resource versions among them (each is found by
// reading its resource's leaves).
const (
	MaxLogProofs     = 1000
	MaxVersionProofs = 64
)

// versionScan bounds how many of a resource's newest leaves versionLeaf
// reads. A reader asks for the version just before the one the map names
// as current in the tree of size, whose leaf is at most a leaf or two from
// the top; the bound keeps a request for an old version of a long-lived
// resource (anyone may ask) from reading its whole history.
const versionScan = 64

// versionLeaf finds the leaf of version of resource r of g among the first
// size leaves, newest first, within the newest versionScan leaves of the
// resource (migration 00012 orders the index so). It returns -1 when there
// is no such leaf.
func versionLeaf(ctx context.Context, q pgx.Tx, g coffer.GroupID, r coffer.ResourceID, version uint64, size int64) (int64, []byte, error) {
	rows, err := q.Query(ctx, `SELECT leaf_index, leaf FROM log_entries
		WHERE group_id = $1 AND resource_id = $2 AND leaf_index IS NOT NULL AND leaf_index < $3
		ORDER BY leaf_index DESC LIMIT $4`, g, r, size, versionScan)
	if err != nil {
		return -1, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			idx  int64
			leaf []byte
		)
		if err := rows.Scan(&idx, &leaf); err != nil {
			return -1, nil, err
		}
		l, err := translog.ParseLeaf(leaf)
		if err != nil {
			return -1, nil, fmt.Errorf("store: log leaf %d: %w", idx, err)
		}
		if l.Kind != translog.KindResourceVersion {
			continue
		}
		switch {
		case l.Version.Version == version:
			return idx, leaf, nil
		case l.Version.Version < version:
			return -1, nil, nil // versions only grow along the log
		}
	}
	return -1, nil, rows.Err()
}

// LogProofs implements coffer.LogService. It finds the leaf of every
// reference and proves it in the tree of the given size, reading the hashes
// of all proofs in one query.
func (db *DB) LogProofs(ctx context.Context, size int64, refs []coffer.LogRef) ([]coffer.LogProof, error) {
	if len(refs) > MaxLogProofs {
		return nil, coffer.Errorf(coffer.ETOOLARGE, "at most %d references per request", MaxLogProofs)
	}
	if size <= 0 {
		return nil, coffer.Errorf(coffer.EINVALID, "size must be positive")
	}
	out := make([]coffer.LogProof, len(refs))
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkSize(ctx, tx, size); err != nil {
			return err
		}
		var (
			// Ids as [16]byte, which pgx writes as binary uuids; an id
			// type goes through its driver.Valuer, a string per element.
			accounts [][16]byte
			groups   [][16]byte
			seqs     []int64
		)
		type key struct {
			a       coffer.AccountID
			g       coffer.GroupID
			seq     uint64
			r       coffer.ResourceID
			version uint64
		}
		found := map[key]int64{}
		leaves := map[key][]byte{}
		versions := 0
		for _, r := range refs {
			switch {
			case r.Group.IsZero():
				accounts = append(accounts, [16]byte(r.Account))
			case !r.Resource.IsZero():
				if versions++; versions > MaxVersionProofs {
					return coffer.Errorf(coffer.ETOOLARGE, "at most %d resource versions per request", MaxVersionProofs)
				}
				k := key{g: r.Group, r: r.Resource, version: r.Version}
				idx, leaf, err := versionLeaf(ctx, tx, r.Group, r.Resource, r.Version, size)
				if err != nil {
					return err
				}
				if idx >= 0 {
					found[k], leaves[k] = idx, leaf
				}
			default:
				groups = append(groups, [16]byte(r.Group))
				seqs = append(seqs, int64(r.Seq))
			}
		}
		if len(accounts) > 0 {
			// An account's identity is its newest identity leaf (seq is
			// NULL; account-link leaves carry theirs): a rotation logs a
			// new one, and until the sequencer places it the account's
			// identity is not yet included, rather than the retired one.
			rows, err := tx.Query(ctx, `SELECT account_id, leaf_index FROM (
				SELECT DISTINCT ON (account_id) account_id, leaf_index FROM log_entries
				WHERE account_id = ANY($1) AND seq IS NULL ORDER BY account_id, id DESC) newest
				WHERE leaf_index IS NOT NULL`, accounts)
			if err != nil {
				return err
			}
			for rows.Next() {
				var (
					a coffer.AccountID
					i int64
				)
				if err := rows.Scan(&a, &i); err != nil {
					rows.Close()
					return err
				}
				found[key{a: a}] = i
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		if len(groups) > 0 {
			rows, err := tx.Query(ctx, `SELECT e.group_id, e.seq, e.leaf_index FROM log_entries e
				JOIN unnest($1::uuid[], $2::bigint[]) AS r(g, s) ON e.group_id = r.g AND e.seq = r.s
				WHERE e.leaf_index IS NOT NULL`, groups, seqs)
			if err != nil {
				return err
			}
			for rows.Next() {
				var (
					g coffer.GroupID
					s int64
					i int64
				)
				if err := rows.Scan(&g, &s, &i); err != nil {
					rows.Close()
					return err
				}
				found[key{g: g, seq: uint64(s)}] = i
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		// First pass: which hashes do the proofs need?
		rec := &indexRecorder{}
		for i, r := range refs {
			k := key{a: r.Account}
			switch {
			case !r.Resource.IsZero():
				k = key{g: r.Group, r: r.Resource, version: r.Version}
			case !r.Group.IsZero():
				k = key{g: r.Group, seq: r.Seq}
			}
			out[i] = coffer.LogProof{Ref: r, Index: -1}
			if idx, ok := found[k]; ok && idx < size {
				out[i].Index, out[i].Leaf = idx, leaves[k]
				if err := rec.record(size, idx); err != nil {
					return err
				}
			}
		}
		// Second pass, with every hash fetched at once.
		hr := &hashReader{ctx: ctx, q: tx, cache: map[int64]tlog.Hash{}}
		if len(rec.need) > 0 {
			// Proofs of nearby leaves share most of their hashes.
			slices.Sort(rec.need)
			if err := hr.load(slices.Compact(rec.need)); err != nil {
				return err
			}
		}
		for i := range out {
			if out[i].Index < 0 {
				continue
			}
			p, err := tlog.ProveRecord(size, out[i].Index, hr)
			if err != nil {
				return err
			}
			out[i].Proof = toArrays(p)
		}
		return nil
	})
	return out, err
}

func toArrays(hs []tlog.Hash) [][32]byte {
	if hs == nil {
		return nil
	}
	out := make([][32]byte, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

// BackfillLog appends a pending leaf for every account and commit that has
// none: the data of a database created before the log existed. It is a
// no-op on a database whose every write went through the hooks.
func (db *DB) BackfillLog(ctx context.Context) (int, error) {
	var n int
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT a.id, a.identity, a.self_signature, a.created_at FROM accounts a
			WHERE NOT EXISTS (SELECT 1 FROM log_entries e WHERE e.account_id = a.id) ORDER BY a.created_at, a.id`)
		if err != nil {
			return err
		}
		type acct struct {
			id            coffer.AccountID
			identity, sig []byte
			at            time.Time
		}
		accts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (acct, error) {
			var a acct
			return a, r.Scan(&a.id, &a.identity, &a.sig, &a.at)
		})
		if err != nil {
			return err
		}
		for _, a := range accts {
			if err := appendLeaf(ctx, tx, translog.IdentityLeaf(a.id, a.identity, a.sig), &a.id, nil, 0, a.at); err != nil {
				return err
			}
		}
		n += len(accts)
		rows, err = tx.Query(ctx, `SELECT c.group_id, c.seq, c.body, c.signature, c.created_at FROM commits c
			WHERE NOT EXISTS (SELECT 1 FROM log_entries e WHERE e.group_id = c.group_id AND e.seq = c.seq)
			ORDER BY c.created_at, c.group_id, c.seq`)
		if err != nil {
			return err
		}
		type cm struct {
			g   coffer.GroupID
			seq int64
			sc  coffer.SignedCommit
			at  time.Time
		}
		cms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cm, error) {
			var c cm
			return c, r.Scan(&c.g, &c.seq, &c.sc.Body, &c.sc.Signature, &c.at)
		})
		if err != nil {
			return err
		}
		for _, c := range cms {
			if err := appendLeaf(ctx, tx, translog.CommitLeaf(c.g, uint64(c.seq), c.sc), nil, &c.g, uint64(c.seq), c.at); err != nil {
				return err
			}
		}
		n += len(cms)
		return nil
	})
	return n, err
}
