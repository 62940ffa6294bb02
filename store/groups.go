package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

var _ coffer.GroupService = (*DB)(nil)

// memberClause restricts a query to groups where $2 (the caller) is a
// current member. Every read of a group object carries it, so a non-member
// sees ENOTFOUND exactly like a missing group.
const memberClause = `EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = $1 AND m.account_id = $2)`

func notFoundGroup() error { return coffer.Errorf(coffer.ENOTFOUND, "no such group") }

// CreateGroup implements coffer.GroupService.
func (db *DB) CreateGroup(ctx context.Context, a *coffer.GroupAppend) error {
	state, err := encodeState(a.State)
	if err != nil {
		return err
	}
	if !state.all {
		// A genesis is no Clone; whatever made this one, write every row.
		if state.rows, err = a.State.StateAccounts(); err != nil {
			return err
		}
		state.all = true
	}
	now := db.now()
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkCurrentMemberKeys(ctx, tx, a); err != nil {
			return err
		}
		var metaEpoch *uint64
		if a.Meta != nil {
			metaEpoch = &a.State.Epoch
		}
		_, err := tx.Exec(ctx, `INSERT INTO groups (id, head_seq, head_hash, epoch, state, state_rows, meta_epoch, meta, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, true, $6, $7, $8, $8)`,
			a.State.Group, a.State.Seq, a.State.Head[:], a.State.Epoch, state.header, metaEpoch, a.Meta, now)
		if err != nil {
			return err
		}
		if err := writeStateRows(ctx, tx, a.State.Group, state); err != nil {
			return err
		}
		return insertCommit(ctx, tx, a, now)
	})
	if coffer.ErrorCode(err) == coffer.ECONFLICT && !memberKeysRefusal(err) {
		return coffer.Errorf(coffer.ECONFLICT, "group %s already exists", a.State.Group)
	}
	if err == nil {
		db.stateCache().put(a.State.Clone())
	}
	return err
}

// GroupState implements coffer.GroupService.
func (db *DB) GroupState(ctx context.Context, caller coffer.AccountID, g coffer.GroupID) (*coffer.GroupState, error) {
	var s *coffer.GroupState
	cache := db.stateCache()
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var (
			seq  int64
			head []byte
		)
		if err := tx.QueryRow(ctx, `SELECT head_seq, head_hash FROM groups WHERE id = $1 AND `+memberClause, g, caller).Scan(&seq, &head); err != nil {
			return err
		}
		if s = cache.get(g, uint64(seq), head); s != nil {
			return nil
		}
		loaded, inRows, err := loadState(ctx, tx, g)
		if err != nil {
			return err
		}
		s = loaded
		if inRows {
			// The caller gets a Clone of what the rows hold, so that a
			// commit applied to it lists the rows it changes. A state
			// decoded from an older checkpoint is not cached: until a
			// commit stores the group in rows, each is written whole.
			cache.put(loaded)
			s = loaded.Clone()
		}
		return nil
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return nil, notFoundGroup()
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// AppendCommit implements coffer.GroupService. The UPDATE … WHERE head_seq
// is the compare-and-swap and the commits primary key (group_id, seq) is
// the invariant behind it: of two racing appenders exactly one wins, with
// no lock held across the verification the server did before calling.
func (db *DB) AppendCommit(ctx context.Context, caller coffer.AccountID, a *coffer.GroupAppend) (uint64, error) {
	state, err := encodeState(a.State)
	if err != nil {
		return 0, err
	}
	var (
		head   uint64
		inRows bool
	)
	now := db.now()
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkCurrentMemberKeys(ctx, tx, a); err != nil {
			return err
		}
		if a.WrapStream != nil {
			// First, as they arrive: the links and meta the update below
			// stores may follow the wraps in the request.
			if err := copyWrapStream(ctx, tx, a); err != nil {
				return err
			}
		}
		metaSet := a.Meta != nil
		// Only the changed rows are written when the group is stored in
		// rows already (state_rows); otherwise every row must be.
		tag, err := tx.Exec(ctx, `UPDATE groups SET head_seq = $3, head_hash = $4, epoch = $5, state = $6, state_rows = true,
				meta_epoch = CASE WHEN $7 THEN $5 ELSE meta_epoch END,
				meta = CASE WHEN $7 THEN $8 ELSE meta END,
				updated_at = $9
			WHERE id = $1 AND head_seq = $10 AND (state_rows OR $11) AND `+memberClause,
			a.State.Group, caller, a.State.Seq, a.State.Head[:], a.State.Epoch, state.header, metaSet, a.Meta, now, a.PrevSeq, state.all)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			err := tx.QueryRow(ctx, `SELECT head_seq, state_rows FROM groups WHERE id = $1 AND `+memberClause, a.State.Group, caller).Scan(&head, &inRows)
			if err != nil {
				return err
			}
			return coffer.Errorf(coffer.ECONFLICT, "the group's head moved to seq %d: re-sync and retry", head)
		}
		if err := writeStateRows(ctx, tx, a.State.Group, state); err != nil {
			return err
		}
		return insertCommit(ctx, tx, a, now)
	})
	if memberKeysRefusal(err) {
		return 0, err
	}
	switch coffer.ErrorCode(err) {
	case coffer.ENOTFOUND:
		return 0, notFoundGroup()
	case coffer.ECONFLICT:
		if head == 0 { // the commits key caught the race
			_ = db.pool.QueryRow(ctx, `SELECT head_seq FROM groups WHERE id = $1`, a.State.Group).Scan(&head)
		} else if head == a.PrevSeq && !inRows {
			// A state at the head that was not loaded from rows, though the
			// group is not stored in rows yet (another process's cache):
			// the retry loads it from the database and writes every row.
			db.stateCache().remove(a.State.Group)
		}
		return head, coffer.Errorf(coffer.ECONFLICT, "the group's head moved to seq %d: re-sync and retry", head)
	}
	if err == nil {
		// The next commit's verification starts from here instead of
		// reading the state back.
		db.stateCache().put(a.State.Clone())
	}
	return a.State.Seq, err
}

// insertCommit stores the commit, applies its membership changes to
// group_members, and stores its wraps and links, all in tx.
func insertCommit(ctx context.Context, tx pgx.Tx, a *coffer.GroupAppend, now time.Time) error {
	c, g := a.Parsed, a.State.Group
	hash := a.Commit.Hash()
	if _, err := tx.Exec(ctx, `INSERT INTO commits (group_id, seq, body, signature, hash, author_id, epoch, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		g, c.Seq, a.Commit.Body, a.Commit.Signature, hash[:], c.Author, c.Epoch, now); err != nil {
		return err
	}
	for _, op := range c.Ops {
		var err error
		switch op.Kind {
		case coffer.OpAdd:
			_, err = tx.Exec(ctx, `INSERT INTO group_members (group_id, account_id, role) VALUES ($1, $2, $3)`, g, op.Member, int16(op.Role))
		case coffer.OpRemove, coffer.OpLeave:
			_, err = tx.Exec(ctx, `DELETE FROM group_members WHERE group_id = $1 AND account_id = $2`, g, op.Member)
		case coffer.OpSetRole:
			_, err = tx.Exec(ctx, `UPDATE group_members SET role = $3 WHERE group_id = $1 AND account_id = $2`, g, op.Member, int16(op.Role))
		}
		if err != nil {
			return err
		}
	}
	if len(a.Wraps) > 0 {
		rows := make([][]any, len(a.Wraps))
		for i, w := range a.Wraps {
			rows[i] = []any{g, int64(w.Epoch), w.Member, w.Data}
		}
		// COPY keeps a 10,000-member rotation to one round trip.
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"wrapped_keys"},
			[]string{"group_id", "epoch", "member_id", "wrap"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	for _, l := range a.Links {
		if _, err := tx.Exec(ctx, `INSERT INTO history_links (group_id, epoch, link) VALUES ($1, $2, $3)`, g, int64(l.Epoch), l.Data); err != nil {
			return err
		}
	}
	if err := storeTree(ctx, tx, a); err != nil {
		return err
	}
	return afterCommitStored(ctx, tx, a)
}

// afterCommitStored is a hook, run in the commit's transaction, for work
// that must be atomic with it (the transparency log appends here).
var afterCommitStored = func(ctx context.Context, tx pgx.Tx, a *coffer.GroupAppend) error { return nil }

const groupColumns = `g.id, g.head_seq, g.head_hash, g.epoch, COALESCE(g.meta_epoch, 0), g.meta, m.role`

func scanGroup(row pgx.Row) (coffer.GroupInfo, error) {
	var (
		gi   coffer.GroupInfo
		hash []byte
		role int16
	)
	if err := row.Scan(&gi.ID, &gi.HeadSeq, &hash, &gi.Epoch, &gi.MetaEpoch, &gi.Meta, &role); err != nil {
		return gi, err
	}
	copy(gi.HeadHash[:], hash)
	gi.Role = coffer.Role(role)
	return gi, nil
}

// Groups implements coffer.GroupService.
func (db *DB) Groups(ctx context.Context, caller coffer.AccountID, after coffer.GroupID, limit int) ([]coffer.GroupInfo, error) {
	var out []coffer.GroupInfo
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+groupColumns+` FROM groups g
			JOIN group_members m ON m.group_id = g.id AND m.account_id = $1
			WHERE g.id > $2 ORDER BY g.id LIMIT $3`, caller, after, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.GroupInfo, error) { return scanGroup(r) })
		return err
	})
	return out, err
}

// Group implements coffer.GroupService.
func (db *DB) Group(ctx context.Context, caller coffer.AccountID, g coffer.GroupID) (*coffer.GroupInfo, error) {
	var gi coffer.GroupInfo
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		gi, err = scanGroup(tx.QueryRow(ctx, `SELECT `+groupColumns+` FROM groups g
			JOIN group_members m ON m.group_id = g.id AND m.account_id = $2 WHERE g.id = $1`, g, caller))
		return err
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return nil, notFoundGroup()
	}
	return &gi, err
}

// CommitPageBytes bounds the bodies and signatures of one page of
// commits. A page of 1,000 commits is usually small, but a tree group's
// bulk adds carry every new leaf's key: 40 such commits of a 100,000-member
// group made a 250 MB page, over what a client accepts in one response. A
// page stops before the commit that would pass the bound, and always holds
// at least one commit (coffer.MaxCommitSize keeps that one under it, in
// either encoding, within the client's response limit).
const CommitPageBytes = 2 * coffer.MaxCommitSize

// Commits implements coffer.GroupService. It returns at most limit
// commits, fewer when their bytes would pass CommitPageBytes.
func (db *DB) Commits(ctx context.Context, caller coffer.AccountID, g coffer.GroupID, after uint64, limit int) ([]coffer.SignedCommit, error) {
	var out []coffer.SignedCommit
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkMember(ctx, tx, g, caller); err != nil {
			return err
		}
		// The sizes come first so the page is cut without reading the
		// bodies it leaves out.
		rows, err := tx.Query(ctx, `SELECT octet_length(body) + octet_length(signature) FROM commits
			WHERE group_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, g, int64(after), limit)
		if err != nil {
			return err
		}
		sizes, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		n, total := 0, int64(0)
		for _, size := range sizes {
			if n > 0 && total+size > CommitPageBytes {
				break
			}
			total += size
			n++
		}
		if n == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `SELECT body, signature FROM commits
			WHERE group_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, g, int64(after), n)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.SignedCommit, error) {
			var sc coffer.SignedCommit
			err := r.Scan(&sc.Body, &sc.Signature)
			return sc, err
		})
		return err
	})
	return out, err
}

// Keys implements coffer.GroupService.
func (db *DB) Keys(ctx context.Context, caller coffer.AccountID, g coffer.GroupID) ([]coffer.Wrap, []coffer.HistoryLink, error) {
	var (
		wraps []coffer.Wrap
		links []coffer.HistoryLink
	)
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkMember(ctx, tx, g, caller); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT epoch, wrap FROM wrapped_keys
			WHERE group_id = $1 AND member_id = $2 ORDER BY epoch`, g, caller)
		if err != nil {
			return err
		}
		wraps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.Wrap, error) {
			w := coffer.Wrap{Member: caller}
			err := r.Scan(&w.Epoch, &w.Data)
			return w, err
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT epoch, link FROM history_links WHERE group_id = $1 ORDER BY epoch`, g)
		if err != nil {
			return err
		}
		links, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.HistoryLink, error) {
			var l coffer.HistoryLink
			err := r.Scan(&l.Epoch, &l.Data)
			return l, err
		})
		return err
	})
	return wraps, links, err
}

func checkMember(ctx context.Context, tx pgx.Tx, g coffer.GroupID, caller coffer.AccountID) error {
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT `+memberClause, g, caller).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return notFoundGroup()
	}
	return nil
}
