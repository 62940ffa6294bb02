package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
	"github.com/cofferhq/coffer/internal/translog"
)

// DBOptions configure DB.
type DBOptions struct {
	// LogKey is the note verifier key of the deployment's log. With it the
	// checkpoint's signature is checked; without it only its contents are,
	// and the report notes it.
	LogKey string
	// Progress receives progress lines (stderr in the CLI); nil is quiet.
	Progress io.Writer
}

// DB audits the database at url. Every query runs in read-only
// transactions that share one snapshot, so the checks see one consistent
// state of a live database, and rows are streamed: memory grows with the
// number of accounts and with the largest group, not with the tables.
// The error is for an audit that could not run; what failed is in the
// report.
func DB(ctx context.Context, url string, opts DBOptions) (*Report, error) {
	r := newReport("db")
	a := &dbAudit{r: r, p: &progress{w: opts.Progress}, accounts: map[coffer.AccountID]*accountInfo{}, memberKeys: map[[32]byte]*keyRecord{}}
	if opts.LogKey != "" {
		v, err := translog.NewVerifier(opts.LogKey)
		if err != nil {
			return nil, err
		}
		a.logKey = v
	}
	snap, err := openSnapshot(ctx, url, 8)
	if err != nil {
		return nil, err
	}
	defer snap.close()
	a.conns = snap.conns

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"schema", a.schema},
		{"accounts", a.checkAccounts},
		{"account chains", a.checkAccountChains},
		{"member keys", a.checkMemberKeys},
		{"groups", a.checkGroups},
		{"resources", a.checkResources},
		{"tokens", a.checkTokens},
		{"log", a.checkLog},
	}
	for _, s := range steps {
		if s.name != "schema" && !a.tables[tableFor(s.name)] && tableFor(s.name) != "" {
			r.Note("table %s is absent: its checks were skipped", tableFor(s.name))
			continue
		}
		a.p.phase("checking %s", s.name)
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("audit %s: %w", s.name, err)
		}
	}
	return r.finish(), nil
}

func tableFor(step string) string {
	switch step {
	case "account chains":
		return "account_links"
	case "member keys":
		return "member_keys"
	case "accounts":
		return "accounts"
	case "groups":
		return "commits"
	case "resources":
		return "resources"
	case "tokens":
		return "refresh_tokens"
	case "log":
		return "log_entries"
	}
	return ""
}

// snapshot is a set of connections whose read-only, repeatable-read
// transactions all see the snapshot the first one exported, so several
// ordered streams can be merged in one pass.
type snapshot struct {
	conns []*pgx.Conn
	txs   []pgx.Tx
}

func openSnapshot(ctx context.Context, url string, n int) (*snapshot, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	// Belt and braces: the session refuses writes too, whatever the role.
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	// Streams are read in index order; a sort of a large table would spill
	// to disk, so prefer the indexes.
	cfg.RuntimeParams["enable_sort"] = "off"
	cfg.RuntimeParams["application_name"] = "coffer-audit"
	s := &snapshot{}
	var id string
	for i := range n {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("connect: %w", err)
		}
		s.conns = append(s.conns, conn)
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			s.close()
			return nil, err
		}
		s.txs = append(s.txs, tx)
		if i == 0 {
			if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&id); err != nil {
				s.close()
				return nil, fmt.Errorf("export snapshot: %w", err)
			}
		} else if _, err := tx.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+strings.ReplaceAll(id, "'", "")+`'`); err != nil {
			s.close()
			return nil, fmt.Errorf("share snapshot: %w", err)
		}
	}
	return s, nil
}

func (s *snapshot) close() {
	for _, tx := range s.txs {
		_ = tx.Rollback(context.Background())
	}
	for _, c := range s.conns {
		c.Close(context.Background())
	}
}

type accountInfo struct {
	handle     coffer.Handle
	signingKey ed25519.PublicKey
	keys       [32]byte // SHA-256 of signing key ‖ encryption key
	// chainIdentities are, for a suite v2 account, the SHA-256 of every
	// identity its verified chain set, one per user key.
	chainIdentities map[[32]byte]bool
	// chainSigningKeys are the signing keys of those identities.
	chainSigningKeys []ed25519.PublicKey
	// memberKeys are the hashes of the suite v2 member keys of those user
	// keys.
	memberKeys [][32]byte
}

type dbAudit struct {
	r        *Report
	p        *progress
	conns    []*pgx.Conn
	logKey   *translog.Verifier
	tables   map[string]bool
	columns  map[string]bool // "table.column", of the public schema
	accounts map[coffer.AccountID]*accountInfo
	// signers holds, per group and member, the signing keys a verified
	// chain gave the member and the epoch each applies from, for the
	// members whose key in the group is not simply the account's current
	// one (it self-updated, or has not yet after a rotation). Resource
	// headers are held to the key at their epoch.
	signers map[coffer.GroupID]map[coffer.AccountID][]keyAt
	// memberKeys are the suite v2 member keys of every user key every
	// verified account chain set, old generations included (old commits
	// were signed with them): the source suite v2 group chains are
	// verified with. Written only while the account chains are checked,
	// before any chain is verified. Kept encoded: a parsed hybrid key
	// holds its expanded ML-DSA matrix, about 40 KB.
	memberKeys map[[32]byte]*keyRecord
	// v2Signers holds, per suite v2 group whose chain verified, each
	// member's keys hashes and the epoch each applies from.
	v2Signers map[coffer.GroupID]map[coffer.AccountID][]hashAt
}

// keyAt is a member's signing key from epoch from on.
type keyAt struct {
	from uint64
	key  ed25519.PublicKey
}

func (a *dbAudit) hasColumn(table, column string) bool { return a.columns[table+"."+column] }

func keysHash(sk, ek []byte) [32]byte {
	h := sha256.New()
	h.Write(sk)
	h.Write(ek)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// schema checks every table and column of every user schema against the
// allowlist.
func (a *dbAudit) schema(ctx context.Context) error {
	rows, err := a.conns[0].Query(ctx, `SELECT c.table_schema, c.table_name, c.column_name, c.data_type
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg\_%'
		ORDER BY 1, 2, c.ordinal_position`)
	if err != nil {
		return err
	}
	type col struct{ schema, table, column, typ string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
		var c col
		return c, r.Scan(&c.schema, &c.table, &c.column, &c.typ)
	})
	if err != nil {
		return err
	}
	a.tables, a.columns = map[string]bool{}, map[string]bool{}
	unknownTables := map[string]bool{}
	for _, c := range cols {
		a.r.count("columns", 1)
		name := c.table + "." + c.column
		if c.schema == "public" {
			a.columns[name] = true
		}
		if c.schema != "public" {
			if !unknownTables[c.schema+"."+c.table] {
				unknownTables[c.schema+"."+c.table] = true
				a.r.Fail("schema", "table "+c.schema+"."+c.table, "table outside the public schema is not on the allowlist")
			}
			continue
		}
		cls, ok := allowlist[c.table]
		if !ok {
			if !unknownTables[c.table] {
				unknownTables[c.table] = true
				a.r.Fail("schema", "table "+c.table, "unknown table: not on the classified allowlist")
			}
			a.r.Fail("schema", "column "+name, "unknown column (%s) of an unknown table", c.typ)
			continue
		}
		a.tables[c.table] = true
		want, ok := cls[c.column]
		if !ok {
			a.r.Fail("schema", "column "+name, "unknown column (%s): not on the classified allowlist", c.typ)
			continue
		}
		if want.Type != c.typ {
			a.r.Fail("schema", "column "+name, "has type %s, the allowlist says %s (%s)", c.typ, want.Type, want.Class)
		}
	}
	// A table with no columns has no row above.
	rows, err = a.conns[0].Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg\_%'`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var t [2]string
		return t, r.Scan(&t[0], &t[1])
	})
	if err != nil {
		return err
	}
	for _, t := range tables {
		a.r.count("tables", 1)
		if t[0] == "public" && allowlist[t[1]] == nil && !unknownTables[t[1]] {
			a.r.Fail("schema", "table "+t[1], "unknown table: not on the classified allowlist")
		}
	}
	return nil
}

func (a *dbAudit) checkAccounts(ctx context.Context) error {
	rows, err := a.conns[0].Query(ctx, `SELECT id, handle, identity, self_signature, signing_key, encryption_key FROM accounts ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                 coffer.AccountID
			handle             string
			ident, sig, sk, ek []byte
		)
		if err := rows.Scan(&id, &handle, &ident, &sig, &sk, &ek); err != nil {
			return err
		}
		a.r.count("accounts", 1)
		a.p.tick("accounts: %d", a.r.Stats["accounts"])
		obj := "account " + id.String()
		if len(sig) != coffer.SignatureSize {
			a.r.Fail("account", obj, "self-signature is %d bytes, want %d", len(sig), coffer.SignatureSize)
		}
		if len(sk) != coffer.SigningKeySize {
			a.r.Fail("account", obj, "signing_key is %d bytes, want %d", len(sk), coffer.SigningKeySize)
		}
		if err := coffer.CheckEncryptionKey(ek); err != nil {
			a.r.Fail("account", obj, "encryption_key: %s", coffer.ErrorMessage(err))
		}
		pub, err := coffer.ParsePublicIdentity(ident)
		if err != nil {
			a.r.Fail("account", obj, "public identity does not parse: %s", coffer.ErrorMessage(err))
			continue
		}
		if err := pub.VerifySelfSignature(sig); err != nil {
			a.r.Fail("account", obj, "self-signature does not verify")
		}
		if string(pub.Handle) != handle || !bytes.Equal(pub.SigningKey, sk) || !bytes.Equal(pub.EncryptionKey, ek) {
			a.r.Fail("account", obj, "handle or key columns differ from the signed identity")
		}
		a.accounts[id] = &accountInfo{handle: pub.Handle, signingKey: pub.SigningKey, keys: keysHash(pub.SigningKey, pub.EncryptionKey)}
	}
	return rows.Err()
}

// stream is an ordered result set read one row ahead, for merge joins.
type stream struct {
	rows pgx.Rows
	ok   bool
	err  error
}

func newStream(ctx context.Context, conn *pgx.Conn, sql string) (*stream, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	s := &stream{rows: rows}
	s.ok = rows.Next()
	return s, nil
}

func (s *stream) next() {
	s.ok = s.rows.Next()
	if !s.ok {
		s.err = s.rows.Err()
	}
}

func (s *stream) close() error {
	s.rows.Close()
	if s.err != nil {
		return s.err
	}
	return s.rows.Err()
}

func cmpID(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) }

// groupRow is a groups row.
type groupRow struct {
	id        coffer.GroupID
	headSeq   int64
	headHash  []byte
	epoch     int64
	state     []byte
	stateRows bool
	metaEpoch *int64
	meta      []byte
}

// checkGroups verifies every group's chain and everything derived from it,
// merging six ordered streams (commits, groups, members, wraps, links,
// state rows) that share one snapshot.
func (a *dbAudit) checkGroups(ctx context.Context) error {
	commits, err := newStream(ctx, a.conns[1], `SELECT group_id, seq, body, signature, hash, author_id, epoch
		FROM commits ORDER BY group_id, seq`)
	if err != nil {
		return err
	}
	defer commits.close()
	groups, err := newStream(ctx, a.conns[2], `SELECT id, head_seq, head_hash, epoch, state, state_rows, meta_epoch, meta FROM groups ORDER BY id`)
	if err != nil {
		return err
	}
	defer groups.close()
	members, err := newStream(ctx, a.conns[3], `SELECT group_id, account_id, role FROM group_members ORDER BY group_id, account_id`)
	if err != nil {
		return err
	}
	defer members.close()
	wraps, err := newStream(ctx, a.conns[4], `SELECT group_id, member_id, epoch, wrap FROM wrapped_keys ORDER BY group_id, member_id, epoch`)
	if err != nil {
		return err
	}
	defer wraps.close()
	links, err := newStream(ctx, a.conns[5], `SELECT group_id, epoch, link FROM history_links ORDER BY group_id, epoch`)
	if err != nil {
		return err
	}
	defer links.close()
	stateRows, err := newStream(ctx, a.conns[6], `SELECT group_id, account_id, member, roles FROM group_state_accounts ORDER BY group_id, account_id`)
	if err != nil {
		return err
	}
	defer stateRows.close()
	treeNodes, err := newStream(ctx, a.conns[7], `SELECT group_id, node, public_key, taint FROM tree_nodes ORDER BY group_id, node`)
	if err != nil {
		return err
	}
	defer treeNodes.close()

	for commits.ok || groups.ok {
		// The next group is the smaller id of the two main streams.
		var g coffer.GroupID
		var cg, gg coffer.GroupID
		if commits.ok {
			if err := commits.rows.Scan(&cg, nil, nil, nil, nil, nil, nil); err != nil {
				return err
			}
		}
		if groups.ok {
			if err := groups.rows.Scan(&gg, nil, nil, nil, nil, nil, nil, nil); err != nil {
				return err
			}
		}
		switch {
		case !groups.ok || commits.ok && cmpID(cg, gg) < 0:
			g = cg
		default:
			g = gg
		}
		if err := a.checkGroup(g, commits, groups, members, wraps, links, stateRows, treeNodes); err != nil {
			return err
		}
		a.p.tick("groups: %d, commits: %d, wraps: %d", a.r.Stats["groups"], a.r.Stats["commits"], a.r.Stats["wrapped_keys"])
	}
	// Rows of groups after the last group that has commits or a row.
	for _, s := range []struct {
		st   *stream
		what string
		cols int
	}{{members, "group_members", 3}, {wraps, "wrapped_keys", 4}, {links, "history_links", 3}, {stateRows, "group_state_accounts", 4}, {treeNodes, "tree_nodes", 4}} {
		for s.st.ok {
			var g coffer.GroupID
			dest := make([]any, s.cols)
			dest[0] = &g
			if err := s.st.rows.Scan(dest...); err != nil {
				return err
			}
			a.r.Fail("group", "group "+g.String(), "%s row of a group that has no commits", s.what)
			s.st.next()
		}
	}
	for _, s := range []*stream{commits, groups, members, wraps, links, stateRows, treeNodes} {
		if err := s.close(); err != nil {
			return err
		}
	}
	return nil
}

func (a *dbAudit) checkGroup(g coffer.GroupID, commits, groups, members, wraps, links, stateRows, treeNodes *stream) error {
	obj := "group " + g.String()
	a.r.count("groups", 1)

	// The chain.
	var chain []coffer.SignedCommit
	for commits.ok {
		var (
			cg         coffer.GroupID
			seq, epoch int64
			sc         coffer.SignedCommit
			hash       []byte
			author     coffer.AccountID
		)
		if err := commits.rows.Scan(&cg, &seq, &sc.Body, &sc.Signature, &hash, &author, &epoch); err != nil {
			return err
		}
		if cg != g {
			break
		}
		a.r.count("commits", 1)
		cobj := fmt.Sprintf("%s commit %d", obj, seq)
		if seq != int64(len(chain))+1 {
			a.r.Fail("chain", cobj, "commits are not numbered 1, 2, 3, …: expected seq %d", len(chain)+1)
		}
		if want := signatureSize(sc.Body); len(sc.Signature) != want {
			a.r.Fail("chain", cobj, "signature is %d bytes, want %d", len(sc.Signature), want)
		}
		if h := sc.Hash(); !bytes.Equal(hash, h[:]) {
			a.r.Fail("chain", cobj, "stored hash is not the commit's hash")
		}
		if c, err := coffer.ParseCommit(sc.Body); err == nil && (c.Author != author || c.Epoch != uint64(epoch) || c.Seq != uint64(seq)) {
			a.r.Fail("chain", cobj, "author, epoch or seq columns differ from the signed body")
		}
		chain = append(chain, sc)
		commits.next()
	}
	var state *coffer.GroupState
	if len(chain) == 0 {
		a.r.Fail("group", obj, "group row without commits")
	} else {
		var err error
		state, err = coffer.VerifyChainWith(&coffer.GroupState{Group: g}, chain, &keySource{recs: a.memberKeys})
		if err != nil {
			rule := ""
			var ce *coffer.Error
			if errors.As(err, &ce) && ce.Rule != "" {
				rule = " (rule " + ce.Rule + ")"
			}
			a.r.Fail("chain", obj, "chain does not verify: %s%s", coffer.ErrorMessage(err), rule)
			state = nil
		}
	}
	if state != nil {
		a.checkAddedKeys(obj, chain)
		a.recordSigners(g, chain)
	}

	// The group row caches the verified head and state.
	var row *groupRow
	if groups.ok {
		var gr groupRow
		if err := groups.rows.Scan(&gr.id, &gr.headSeq, &gr.headHash, &gr.epoch, &gr.state, &gr.stateRows, &gr.metaEpoch, &gr.meta); err != nil {
			return err
		}
		if gr.id == g {
			row = &gr
			groups.next()
		}
	}
	switch {
	case row == nil:
		a.r.Fail("group", obj, "commits without a groups row")
	case state != nil:
		if row.headSeq != int64(state.Seq) || !bytes.Equal(row.headHash, state.Head[:]) || row.epoch != int64(state.Epoch) {
			a.r.Fail("group", obj, "groups.head_seq/head_hash/epoch (%d/%x/%d) differ from the verified chain (%d/%x/%d)",
				row.headSeq, short(row.headHash), row.epoch, state.Seq, state.Head[:4], state.Epoch)
		}
		if row.stateRows {
			if want, err := state.MarshalBinaryRows(); err != nil || !bytes.Equal(want, row.state) {
				a.r.Fail("group", obj, "groups.state is not the header of the verifier's state after the chain")
			}
		} else if want, err := state.MarshalBinaryDetached(); err != nil || !bytes.Equal(want, row.state) {
			a.r.Fail("group", obj, "groups.state is not the verifier's state after the chain")
		}
	}
	if err := a.checkStateRows(g, state, row, stateRows); err != nil {
		return err
	}
	if err := a.checkTreeNodes(g, state, treeNodes); err != nil {
		return err
	}
	if row != nil && row.meta != nil {
		a.r.count("metadata_ciphertexts", 1)
		if why := checkCiphertext(row.meta); why != "" {
			a.r.Fail("metadata", obj+" column groups.meta", "not a ciphertext: %s", why)
		}
		if row.metaEpoch == nil || *row.metaEpoch < 1 || *row.metaEpoch > row.epoch {
			a.r.Fail("metadata", obj+" column groups.meta_epoch", "metadata epoch is not an epoch of the group")
		}
	}

	// Current members are exactly the verified chain's.
	seen := map[coffer.AccountID]bool{}
	for members.ok {
		var (
			mg, m coffer.AccountID
			role  int16
		)
		if err := members.rows.Scan((*coffer.GroupID)(&mg), &m, &role); err != nil {
			return err
		}
		if coffer.GroupID(mg) != g {
			if cmpID(mg, g) < 0 {
				a.r.Fail("member", "group "+coffer.GroupID(mg).String(), "group_members row of a group without commits")
				members.next()
				continue
			}
			break
		}
		seen[m] = true
		if state != nil {
			if cur := state.Members[m]; cur == nil || int16(cur.Role) != role {
				a.r.Fail("member", fmt.Sprintf("%s member %s", obj, m), "group_members says role %s, the verified chain says %s",
					coffer.Role(role), roleOf(state, m))
			}
		}
		members.next()
	}
	if state != nil {
		for id := range state.Members {
			if !seen[id] {
				a.r.Fail("member", fmt.Sprintf("%s member %s", obj, id), "a member of the verified chain is missing from group_members")
			}
		}
	}

	// Every wrap is the right size and belongs to a member of its epoch.
	current := map[coffer.AccountID]bool{}
	for wraps.ok {
		var (
			wg    coffer.GroupID
			m     coffer.AccountID
			epoch int64
			wrap  []byte
		)
		if err := wraps.rows.Scan(&wg, &m, &epoch, &wrap); err != nil {
			return err
		}
		if wg != g {
			if cmpID(wg, g) < 0 {
				a.r.Fail("wrap", "group "+wg.String(), "wrapped_keys row of a group without commits")
				wraps.next()
				continue
			}
			break
		}
		a.r.count("wrapped_keys", 1)
		wobj := fmt.Sprintf("%s epoch %d member %s", obj, epoch, m)
		if len(wrap) != coffer.WrapSize {
			a.r.Fail("wrap", wobj, "wrapped key is %d bytes, want %d (X-Wing HPKE seal of a %d-byte key)", len(wrap), coffer.WrapSize, coffer.EpochKeySize)
		}
		if state != nil {
			if epoch < 1 || uint64(epoch) > state.Epoch || state.RoleAt(m, uint64(epoch)) == coffer.RoleNone {
				a.r.Fail("wrap", wobj, "wrapped key for an account that was not a member in that epoch")
			}
			if uint64(epoch) == state.Epoch {
				current[m] = true
			}
		}
		wraps.next()
	}
	// A tree group's members get the epoch key through the tree, not a
	// wrap each (only the committer's own devices do).
	if state != nil && state.Tree == nil {
		for id := range state.Members {
			if !current[id] {
				a.r.Fail("wrap", fmt.Sprintf("%s member %s", obj, id), "no wrap of the current epoch %d key for a current member", state.Epoch)
			}
		}
	}

	// History links.
	for links.ok {
		var (
			lg    coffer.GroupID
			epoch int64
			link  []byte
		)
		if err := links.rows.Scan(&lg, &epoch, &link); err != nil {
			return err
		}
		if lg != g {
			if cmpID(lg, g) < 0 {
				a.r.Fail("link", "group "+lg.String(), "history_links row of a group without commits")
				links.next()
				continue
			}
			break
		}
		a.r.count("history_links", 1)
		lobj := fmt.Sprintf("%s link %d", obj, epoch)
		if len(link) != coffer.HistoryLinkSize {
			a.r.Fail("link", lobj, "history link is %d bytes, want %d", len(link), coffer.HistoryLinkSize)
		}
		if state != nil {
			if !state.ShareHistory {
				a.r.Fail("link", lobj, "history link in a group that does not share history")
			}
			if epoch < 1 || uint64(epoch) >= state.Epoch {
				a.r.Fail("link", lobj, "history link for epoch %d of a group at epoch %d", epoch, state.Epoch)
			}
		}
		links.next()
	}
	return nil
}

func roleOf(s *coffer.GroupState, m coffer.AccountID) coffer.Role {
	if cur := s.Members[m]; cur != nil {
		return cur.Role
	}
	return coffer.RoleNone
}

func short(b []byte) []byte {
	if len(b) > 4 {
		return b[:4]
	}
	return b
}

// checkAddedKeys compares the keys each add or update-key op puts in the
// chain with the account's registered, self-signed keys. A difference is a
// substituted key: an admin's client wrapped the group key to a key that is
// not the member's, or a self-update took keys the account never had. A
// suite v2 account's registered keys change when it rotates its user key,
// so for one the keys may be any identity its verified chain set (the db
// audit does not know when each commit was made; the witnesses, which
// replay the log in order, check the identity at the time).
func (a *dbAudit) checkAddedKeys(obj string, chain []coffer.SignedCommit) {
	for _, sc := range chain {
		c, err := coffer.ParseCommit(sc.Body)
		if err != nil {
			continue
		}
		if c.Suite == coffer.SuiteV2 {
			a.checkAddedMemberKeys(obj, c)
			continue
		}
		for _, op := range c.Ops {
			if op.Kind != coffer.OpAdd && op.Kind != coffer.OpUpdateKey {
				continue
			}
			what := fmt.Sprintf("adds %s (%s)", op.Member, op.Handle)
			if op.Kind == coffer.OpUpdateKey {
				what = fmt.Sprintf("updates %s", op.Member)
			}
			acct := a.accounts[op.Member]
			switch {
			case acct == nil:
				a.r.Fail("chain", fmt.Sprintf("%s commit %d", obj, c.Seq), "%s, which is not a registered account", what)
			case !acct.hadKeys(op.SigningKey, op.EncryptionKey):
				a.r.Fail("chain", fmt.Sprintf("%s commit %d", obj, c.Seq), "%s with keys that differ from the account's registered keys", what)
			}
		}
	}
}

// recordSigners keeps the signing-key history of g's members whose key is
// not the account's current one throughout, the same rule the client
// applies (clientlib signerKey): an add sets the key from its epoch, an
// update-key replaces it from its epoch.
func (a *dbAudit) recordSigners(g coffer.GroupID, chain []coffer.SignedCommit) {
	hist := map[coffer.AccountID][]keyAt{}
	for _, sc := range chain {
		c, err := coffer.ParseCommit(sc.Body)
		if err != nil {
			continue
		}
		if c.Suite == coffer.SuiteV2 {
			a.recordSignersV2(g, chain)
			return
		}
		for _, op := range c.Ops {
			if op.Kind == coffer.OpAdd || op.Kind == coffer.OpUpdateKey {
				hist[op.Member] = append(hist[op.Member], keyAt{c.Epoch, op.SigningKey})
			}
		}
	}
	for m, h := range hist {
		acct := a.accounts[m]
		if acct == nil || len(h) == 0 {
			continue
		}
		same := true
		for _, k := range h {
			same = same && bytes.Equal(k.key, acct.signingKey)
		}
		if same {
			continue
		}
		if a.signers == nil {
			a.signers = map[coffer.GroupID]map[coffer.AccountID][]keyAt{}
		}
		if a.signers[g] == nil {
			a.signers[g] = map[coffer.AccountID][]keyAt{}
		}
		a.signers[g][m] = h
	}
}

// signerAt returns author's signing key at epoch in g: the one the group's
// verified chain set last at or before epoch, or the account's current key
// when the chain gave the author no other. Nil when the author had no key
// in g by then.
func (a *dbAudit) signerAt(g coffer.GroupID, author coffer.AccountID, epoch uint64, acct *accountInfo) ed25519.PublicKey {
	h, ok := a.signers[g][author]
	if !ok {
		return acct.signingKey
	}
	var key ed25519.PublicKey
	for _, k := range h {
		if k.from <= epoch {
			key = k.key
		}
	}
	return key
}

// hadKeys reports whether the account is registered with these keys, or,
// for a suite v2 account, its chain set them at some user key.
func (i *accountInfo) hadKeys(sk, ek []byte) bool {
	if i.keys == keysHash(sk, ek) {
		return true
	}
	return i.chainIdentities[sha256.Sum256(coffer.PublicIdentity{Handle: i.handle, SigningKey: sk, EncryptionKey: ek}.Marshal())]
}

func (a *dbAudit) checkResources(ctx context.Context) error {
	inline := ""
	if a.hasColumn("resources", "content") {
		inline = ", content"
	}
	treeCol := ", NULL::bytea"
	if a.hasColumn("resources", "chunk_tree") {
		treeCol = ", chunk_tree"
	}
	rows, err := a.conns[0].Query(ctx, `SELECT id, group_id, version, author_id, epoch, header, header_signature, meta, content_hash, size`+treeCol+inline+`
		FROM resources ORDER BY group_id, id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	v2Keys := &headerKeys{}
	for rows.Next() {
		var (
			id                      coffer.ResourceID
			g                       coffer.GroupID
			version, epoch, size    int64
			author                  coffer.AccountID
			header, sig, meta, hash []byte
			content                 []byte
			tree                    []byte
		)
		dst := []any{&id, &g, &version, &author, &epoch, &header, &sig, &meta, &hash, &size, &tree}
		if inline != "" {
			dst = append(dst, &content)
		}
		if err := rows.Scan(dst...); err != nil {
			return err
		}
		a.r.count("resources", 1)
		obj := "resource " + id.String()
		if why := checkCiphertext(meta); why != "" {
			a.r.Fail("metadata", obj+" column resources.meta", "not a ciphertext: %s", why)
		}
		a.r.count("metadata_ciphertexts", 1)
		if len(hash) != coffer.HashSize {
			a.r.Fail("resource", obj, "content_hash is %d bytes", len(hash))
		}
		acct := a.accounts[author]
		if acct == nil {
			a.r.Fail("resource", obj, "author %s is not a registered account", author)
			continue
		}
		if hist, v2 := a.v2Signers[g]; v2 {
			h, why := v2Keys.verifyHeader(a, hist[author], uint64(epoch), coffer.SignedHeader{Body: header, Signature: sig})
			if why != "" {
				a.r.Fail("resource", obj, "%s", why)
				continue
			}
			if h.Resource != id || h.Group != g || h.Author != author || h.Version != uint64(version) ||
				h.Epoch != uint64(epoch) || size-h.ContentSize != int64(h.Chunks+1)*coffer.HashSize ||
				h.MetaHash != sha256.Sum256(meta) {
				a.r.Fail("resource", obj, "columns differ from the signed header")
			}
			continue
		}
		key := a.signerAt(g, author, uint64(epoch), acct)
		if key == nil {
			a.r.Fail("resource", obj, "author %s had no signing key in the group at epoch %d", author, epoch)
			continue
		}
		h, err := coffer.SignedHeader{Body: header, Signature: sig}.Verify(key)
		if err != nil {
			a.r.Fail("resource", obj, "header signature does not verify under the author's key at epoch %d: %s", epoch, coffer.ErrorMessage(err))
			continue
		}
		if h.Resource != id || h.Group != g || h.Author != author || h.Version != uint64(version) ||
			h.Epoch != uint64(epoch) || size-h.ContentSize != int64(h.Chunks+1)*coffer.HashSize ||
			h.MetaHash != sha256.Sum256(meta) {
			a.r.Fail("resource", obj, "columns differ from the signed header")
		}
		// The stored hashes of the chunk tree, for range reads: never beside
		// inline content.
		if tree != nil {
			a.r.count("stored_chunk_trees", 1)
			why := checkStoredTree(tree, h)
			if content != nil {
				why = "beside inline content"
			}
			if why != "" {
				a.r.Fail("content", obj+" column resources.chunk_tree", "%s", why)
			}
		}
		if content != nil {
			a.r.count("inline_contents", 1)
			if why := checkInlineContent(content, h, hash, size); why != "" {
				a.r.Fail("content", obj+" column resources.content", "%s", why)
			}
		}
	}
	if err := rows.Err(); err != nil || !a.hasColumn("uploads", "content") {
		return err
	}
	// Uploads not yet finalized: no signed header to hold them to, but
	// they must be ciphertext all the same.
	rows, err = a.conns[0].Query(ctx, `SELECT id, content FROM uploads WHERE content IS NOT NULL ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id      coffer.UploadID
			content []byte
		)
		if err := rows.Scan(&id, &content); err != nil {
			return err
		}
		a.r.count("inline_contents", 1)
		if why := checkAgeCiphertext(content); why != "" {
			a.r.Fail("content", "upload "+id.String()+" column uploads.content", "%s", why)
		}
	}
	return rows.Err()
}

func (a *dbAudit) checkTokens(ctx context.Context) error {
	for _, q := range []struct{ table, col string }{{"refresh_tokens", "token_hash"}, {"login_challenges", "challenge_hash"}} {
		if !a.tables[q.table] {
			continue
		}
		var n, bad int64
		if err := a.conns[0].QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE length(`+q.col+`) <> 32) FROM `+q.table).Scan(&n, &bad); err != nil {
			return err
		}
		a.r.count(q.table, n)
		if bad > 0 {
			a.r.Fail("schema", "column "+q.table+"."+q.col, "%d values are not 32-byte hashes", bad)
		}
	}
	return nil
}

// checkLog recomputes the transparency log from its leaves, checks each
// leaf against the account or commit it records, and compares the tree with
// the stored hashes and the signed checkpoint.
func (a *dbAudit) checkLog(ctx context.Context) error {
	var (
		size       int64
		rootBytes  []byte
		checkpoint string
	)
	if err := a.conns[0].QueryRow(ctx, `SELECT tree_size, root_hash, checkpoint FROM log_head`).Scan(&size, &rootBytes, &checkpoint); err != nil {
		return fmt.Errorf("log head: %w", err)
	}
	cp, ok := a.openCheckpoint(checkpoint)

	// Every account, account link and commit has a log entry, integrated
	// or pending.
	missing := []struct{ what, sql string }{
		{"account", `SELECT a.id::text FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM log_entries e WHERE e.account_id = a.id) LIMIT 100`},
		{"commit", `SELECT c.group_id::text || ' commit ' || c.seq FROM commits c WHERE NOT EXISTS (SELECT 1 FROM log_entries e WHERE e.group_id = c.group_id AND e.seq = c.seq) LIMIT 100`},
	}
	links := a.tables["account_links"]
	if links {
		missing = append(missing, struct{ what, sql string }{"account",
			`SELECT k.account_id::text || ' link ' || k.seq FROM account_links k WHERE NOT EXISTS (SELECT 1 FROM log_entries e WHERE e.account_id = k.account_id AND e.seq = k.seq) LIMIT 100`})
	}
	for _, q := range missing {
		rows, err := a.conns[0].Query(ctx, q.sql)
		if err != nil {
			return err
		}
		missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, m := range missing {
			a.r.Fail("log", q.what+" "+m, "is not in the transparency log")
		}
	}
	var pending int64
	if err := a.conns[0].QueryRow(ctx, `SELECT count(*) FROM log_entries WHERE leaf_index IS NULL`).Scan(&pending); err != nil {
		return err
	}
	a.r.count("log_pending_entries", pending)

	hashes, err := newStream(ctx, a.conns[1], `SELECT hash_index, hash FROM log_hashes ORDER BY hash_index`)
	if err != nil {
		return err
	}
	defer hashes.close()
	linkCols, linkJoin := `NULL::bytea, NULL::bytea, NULL::bytea`, ``
	if links {
		linkCols = `k.body, k.signature, k.device_signature`
		linkJoin = `LEFT JOIN account_links k ON k.account_id = e.account_id AND k.seq = e.seq`
	}
	leaves, err := a.conns[0].Query(ctx, `SELECT e.leaf_index, e.leaf, e.leaf_hash, e.account_id, e.group_id, e.seq,
			a.identity, a.self_signature, c.body, c.signature, `+linkCols+`
		FROM log_entries e
		LEFT JOIN accounts a ON a.id = e.account_id
		LEFT JOIN commits c ON c.group_id = e.group_id AND c.seq = e.seq
		`+linkJoin+`
		WHERE e.leaf_index IS NOT NULL ORDER BY e.leaf_index`)
	if err != nil {
		return err
	}
	defer leaves.Close()
	tree := newTreeBuilder()
	// The heads map is a pure function of the leaves: rebuild it and
	// compare it with the signed coffer-map line.
	heads := translog.NewMemoryMap()
	mapBroken := false
	hashMismatch := 0
	for leaves.Next() {
		var (
			idx            int64
			leaf, leafHash []byte
			accountID      *coffer.AccountID
			groupID        *coffer.GroupID
			seq            *int64
			ident, selfSig []byte
			body, sig      []byte
			link           coffer.SignedLink
		)
		if err := leaves.Scan(&idx, &leaf, &leafHash, &accountID, &groupID, &seq, &ident, &selfSig, &body, &sig,
			&link.Body, &link.Signature, &link.DeviceSignature); err != nil {
			return err
		}
		obj := fmt.Sprintf("log leaf %d", idx)
		if idx != tree.size {
			a.r.Fail("log", obj, "leaf indexes are not dense: expected %d", tree.size)
			return nil
		}
		a.r.count("log_leaves", 1)
		a.p.tick("log leaves: %d", tree.size)
		rh := translog.RecordHash(leaf)
		if !bytes.Equal(rh[:], leafHash) {
			a.r.Fail("log", obj, "stored leaf hash is not the hash of the stored leaf (a rewritten leaf)")
		}
		a.checkLeaf(obj, leaf, accountID, groupID, seq, ident, selfSig, body, sig, link)
		if l, err := translog.ParseLeaf(leaf); err == nil && !mapBroken {
			if err := heads.ApplyLeaf(idx, leaf, l); err != nil {
				a.r.Fail("log", obj, "the heads map cannot take this leaf: %v", err)
				mapBroken = true
			}
		}
		stored, err := tree.append(rh)
		if err != nil {
			return err
		}
		for _, sh := range stored {
			if !hashes.ok {
				hashMismatch++
				continue
			}
			var (
				i int64
				h []byte
			)
			if err := hashes.rows.Scan(&i, &h); err != nil {
				return err
			}
			if i != sh.index || !bytes.Equal(h, sh.hash[:]) {
				hashMismatch++
			}
			hashes.next()
		}
	}
	if err := leaves.Err(); err != nil {
		return err
	}
	if hashMismatch > 0 {
		a.r.Fail("log", "table log_hashes", "%d stored tree hashes differ from the hashes of the leaves: proofs served from them are wrong", hashMismatch)
	}
	for hashes.ok {
		a.r.Fail("log", "table log_hashes", "stored hashes beyond the integrated tree")
		hashes.next()
		break
	}
	root, err := tree.root()
	if err != nil {
		return err
	}
	if tree.size != size {
		a.r.Fail("log", "log_head.tree_size", "log_head says %d leaves, %d are integrated", size, tree.size)
	}
	if !bytes.Equal(rootBytes, root[:]) {
		a.r.Fail("log", "log_head.root_hash", "the stored root is not the root of the leaves")
	}
	if ok {
		if cp.Size != tree.size || cp.Root != root {
			a.r.Fail("log", "log_head.checkpoint", "the recomputed log (size %d, root %x) differs from the signed checkpoint (size %d, root %x)",
				tree.size, root[:4], cp.Size, cp.Root[:4])
		}
		a.r.count("log_checkpoint_size", cp.Size)
		mapRoot, err := heads.Root()
		if err != nil {
			return err
		}
		if !mapBroken && cp.Size == tree.size && (cp.MapSize != heads.Size() || cp.MapRoot != mapRoot) {
			a.r.Fail("log", "log_head.checkpoint", "the heads map recomputed from the leaves (%d entries, root %x) differs from the signed one (%d entries, root %x)",
				heads.Size(), mapRoot[:4], cp.MapSize, cp.MapRoot[:4])
		}
		a.r.count("heads_map_entries", heads.Size())
	}
	return nil
}

// openCheckpoint parses the stored checkpoint, verifying its signature when
// a log key was given.
func (a *dbAudit) openCheckpoint(text string) (translog.Checkpoint, bool) {
	if text == "" {
		a.r.Fail("log", "log_head.checkpoint", "no signed checkpoint")
		return translog.Checkpoint{}, false
	}
	if a.logKey != nil {
		cp, err := a.logKey.Open(text)
		if err != nil {
			a.r.Fail("log", "log_head.checkpoint", "checkpoint does not verify under the log key: %v", err)
			return cp, false
		}
		return cp, true
	}
	a.r.Note("no --log-key given: the checkpoint's signature was not checked, only its contents")
	body, _, found := strings.Cut(text, "\n\n")
	if !found {
		a.r.Fail("log", "log_head.checkpoint", "checkpoint is not a signed note")
		return translog.Checkpoint{}, false
	}
	cp, err := translog.ParseCheckpointText(body + "\n")
	if err != nil {
		a.r.Fail("log", "log_head.checkpoint", "%v", err)
		return cp, false
	}
	if _, err := note.Open([]byte(text), note.VerifierList()); err != nil {
		var unv *note.UnverifiedNoteError
		if !errors.As(err, &unv) {
			a.r.Fail("log", "log_head.checkpoint", "checkpoint is not a well-formed signed note: %v", err)
		}
	}
	return cp, true
}

// checkLeaf checks a leaf's encoding and signature, and that it records
// exactly the account or commit row it is indexed under.
func (a *dbAudit) checkLeaf(obj string, leaf []byte, accountID *coffer.AccountID, groupID *coffer.GroupID, seq *int64, ident, selfSig, body, sig []byte, link coffer.SignedLink) {
	l, err := translog.ParseLeaf(leaf)
	if err != nil {
		a.r.Fail("log", obj, "%v", err)
		return
	}
	switch l.Kind {
	case translog.KindIdentity:
		if accountID == nil || *accountID != l.Account {
			a.r.Fail("log", obj, "identity leaf indexed under another account")
		}
		if info := a.accounts[l.Account]; info != nil && info.chainIdentities != nil {
			// A suite v2 account logs an identity per user key: each must
			// verify and be one its verified chain set.
			id, err := l.VerifyIdentity()
			if err != nil || !info.chainIdentities[sha256.Sum256(id.Marshal())] {
				a.r.Fail("log", obj, "identity leaf of account %s is not an identity its chain set", l.Account)
			}
			return
		}
		if ident != nil && !bytes.Equal(leaf, translog.IdentityLeaf(l.Account, ident, selfSig)) {
			a.r.Fail("log", obj, "leaf differs from the accounts row it records")
		}
		if ident == nil {
			// The account row is gone; the leaf must still verify alone.
			if _, err := l.VerifyIdentity(); err != nil {
				a.r.Fail("log", obj, "identity leaf does not verify: %v", err)
			}
		}
	case translog.KindAccountLink:
		if accountID == nil || seq == nil || *accountID != l.Account || uint64(*seq) != l.Seq {
			a.r.Fail("log", obj, "account-link leaf indexed under another link")
		}
		if _, err := l.ParseAccountLink(); err != nil {
			a.r.Fail("log", obj, "account-link leaf: %v", err)
			return
		}
		// The stored chain was verified above; equal bytes carry it over.
		if link.Body == nil {
			a.r.Fail("log", obj, "account-link leaf of a link that is not stored")
		} else if !bytes.Equal(leaf, translog.AccountLinkLeaf(l.Account, l.Seq, link)) {
			a.r.Fail("log", obj, "leaf differs from the account_links row it records")
		}
	case translog.KindCommit:
		if groupID == nil || seq == nil || *groupID != l.Group || uint64(*seq) != l.Seq {
			a.r.Fail("log", obj, "commit leaf indexed under another commit")
		}
		c, err := l.ParseCommit()
		if err != nil {
			a.r.Fail("log", obj, "commit leaf: %v", err)
			return
		}
		if body != nil {
			// The row's chain was verified above; equal bytes carry it over.
			if !bytes.Equal(leaf, translog.CommitLeaf(l.Group, l.Seq, coffer.SignedCommit{Body: body, Signature: sig})) {
				a.r.Fail("log", obj, "leaf differs from the commits row it records")
			}
			return
		}
		// The commit row is gone, and with it the group's chain: check the
		// signature under a key the author's account had (its registered
		// key, or for a suite v2 account any its verified chain set: a
		// commit is signed with the key the author had in the group, which
		// lags a rotation until the self-update), or the key the genesis
		// adds it with. A suite v2 commit is signed with the hybrid keys
		// of some user key of the author's account.
		if c.Suite == coffer.SuiteV2 {
			if !a.signedByAccount(c, l.Commit) {
				a.r.Fail("log", obj, "commit signature does not verify under the member keys of any user key of the author's account")
			}
			return
		}
		var keys []ed25519.PublicKey
		if acct := a.accounts[c.Author]; acct != nil {
			keys = append([]ed25519.PublicKey{acct.signingKey}, acct.chainSigningKeys...)
		} else if c.Seq == 1 && len(c.Ops) > 0 {
			keys = []ed25519.PublicKey{c.Ops[0].SigningKey}
		}
		ok := false
		for _, k := range keys {
			ok = ok || coffer.VerifySignature(k, coffer.LabelCommit, l.Commit.Body, l.Commit.Signature)
		}
		if !ok {
			a.r.Fail("log", obj, "commit signature does not verify under the author's key")
		}
	}
}

// treeBuilder recomputes a tlog tree from record hashes, keeping only the
// hashes that later appends and the root still read (O(log n) memory).
type treeBuilder struct {
	size  int64
	known map[int64]tlog.Hash
}

type storedHash struct {
	index int64
	hash  tlog.Hash
}

func newTreeBuilder() *treeBuilder { return &treeBuilder{known: map[int64]tlog.Hash{}} }

func (t *treeBuilder) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, ix := range indexes {
		h, ok := t.known[ix]
		if !ok {
			return nil, fmt.Errorf("audit: tree hash %d not kept", ix)
		}
		out[i] = h
	}
	return out, nil
}

// append adds a record hash and returns the stored hashes it creates, in
// stored-index order.
func (t *treeBuilder) append(h tlog.Hash) ([]storedHash, error) {
	hs, err := tlog.StoredHashesForRecordHash(t.size, h, t)
	if err != nil {
		return nil, err
	}
	base := tlog.StoredHashIndex(0, t.size)
	out := make([]storedHash, len(hs))
	for i, x := range hs {
		out[i] = storedHash{base + int64(i), x}
		t.known[base+int64(i)] = x
	}
	t.size++
	// Keep only the complete subtrees of the new size: the only earlier
	// hashes an append or TreeHash reads.
	if len(t.known) > 256 {
		keep := map[int64]tlog.Hash{}
		for _, ix := range translog.Frontier(t.size) {
			keep[ix] = t.known[ix]
		}
		t.known = keep
	}
	return out, nil
}

func (t *treeBuilder) root() (tlog.Hash, error) { return tlog.TreeHash(t.size, t) }

// checkStateRows requires group g's group_state_accounts rows to be
// exactly the verifier's, when the groups row says the state is stored in
// rows, and to be absent otherwise: with the header (checked by the
// caller) they are the state cofferd restores and verifies the next
// commit from.
func (a *dbAudit) checkStateRows(g coffer.GroupID, state *coffer.GroupState, row *groupRow, stored *stream) error {
	obj := "group " + g.String()
	var want []coffer.StateAccount
	inRows := row != nil && row.stateRows
	if state != nil && inRows {
		var err error
		if want, err = state.StateAccounts(); err != nil {
			a.r.Fail("group", obj, "the verifier's state does not encode: %s", coffer.ErrorMessage(err))
			state = nil
		}
	}
	i, beside := 0, 0
	for stored.ok {
		var (
			sg coffer.GroupID
			sa coffer.StateAccount
		)
		if err := stored.rows.Scan(&sg, &sa.ID, &sa.Member, &sa.Roles); err != nil {
			return err
		}
		if sg != g {
			if cmpID(sg, g) < 0 {
				a.r.Fail("group", "group "+sg.String(), "group_state_accounts row of a group without commits")
				stored.next()
				continue
			}
			break
		}
		stored.next()
		a.r.count("group_state_accounts", 1)
		aobj := fmt.Sprintf("%s group_state_accounts account %s", obj, sa.ID)
		switch {
		case !inRows:
			beside++
		case state == nil:
		default:
			for i < len(want) && cmpID(want[i].ID, sa.ID) < 0 {
				a.r.Fail("group", fmt.Sprintf("%s group_state_accounts account %s", obj, want[i].ID), "no row for an account of the verified chain")
				i++
			}
			if i == len(want) || want[i].ID != sa.ID {
				a.r.Fail("group", aobj, "a row for an account that was never a member in the verified chain")
				continue
			}
			if !bytes.Equal(want[i].Member, sa.Member) || (want[i].Member == nil) != (sa.Member == nil) || !bytes.Equal(want[i].Roles, sa.Roles) {
				a.r.Fail("group", aobj, "the row is not the verifier's member entry and role history")
			}
			i++
		}
	}
	for ; i < len(want); i++ {
		a.r.Fail("group", fmt.Sprintf("%s group_state_accounts account %s", obj, want[i].ID), "no row for an account of the verified chain")
	}
	if beside > 0 {
		a.r.Fail("group", obj, "%d group_state_accounts rows beside a groups.state that is not stored in rows", beside)
	}
	return nil
}

// checkTreeNodes holds the tree_nodes rows of group g to the public tree of
// the verifier's state after the chain: one row per non-blank node, with
// exactly its public key and taint. cofferd verifies each commit against
// these rows (after a restart, or in another process), so a row the chain
// does not give is a tree the server would verify against in its place.
// With no verified state (the chain did not verify: reported) the rows
// are only counted.
func (a *dbAudit) checkTreeNodes(g coffer.GroupID, state *coffer.GroupState, stored *stream) error {
	obj := "group " + g.String()
	var (
		tree  *ratchettree.Tree
		width uint32
	)
	if state != nil && state.Tree != nil {
		tree, width = state.Tree, ratchettree.Width(state.Tree.Leaves())
	}
	nodeObj := func(x uint32) string { return fmt.Sprintf("%s tree_nodes node %d", obj, x) }
	// missing reports the non-blank nodes of the verified tree below end
	// that have no row.
	next := uint32(0)
	missing := func(end uint32) {
		for ; next < end && next < width; next++ {
			if tree.Present(next) {
				a.r.Fail("group", nodeObj(next), "no row for a node of the verified tree")
			}
		}
	}
	notTree := 0
	for stored.ok {
		var (
			sg         coffer.GroupID
			node       int32
			key, taint []byte
		)
		if err := stored.rows.Scan(&sg, &node, &key, &taint); err != nil {
			return err
		}
		if sg != g {
			if cmpID(sg, g) < 0 {
				a.r.Fail("group", "group "+sg.String(), "tree_nodes row of a group without commits")
				stored.next()
				continue
			}
			break
		}
		stored.next()
		a.r.count("tree_nodes", 1)
		switch {
		case state == nil:
			continue
		case tree == nil:
			notTree++
			continue
		}
		x := uint32(node)
		missing(x)
		if x >= width {
			a.r.Fail("group", nodeObj(x), "a row beyond the verified tree of %d leaves", tree.Leaves())
			continue
		}
		next = x + 1
		// The verified tree holds each key's digest (the signed commits
		// name keys by digest); the row holds the key.
		want := tree.Node(x)
		switch {
		case !tree.Present(x):
			a.r.Fail("group", nodeObj(x), "a row for a node that is blank in the verified tree")
		case ratchettree.KeyDigest(key) != want.Digest || !bytes.Equal(want.Taint, taint):
			a.r.Fail("group", nodeObj(x), "the row is not the verified tree's public key and taint")
		}
	}
	if tree != nil {
		missing(width)
	}
	if notTree > 0 {
		a.r.Fail("group", obj, "%d tree_nodes rows of a group that is not a tree group", notTree)
	}
	return nil
}
