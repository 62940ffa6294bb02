package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/store"
)

// The large-database generator for the `coffer-audit db` benchmark in
// docs/BENCHMARKS.md. It fills an empty database with real accounts (real
// X-Wing and Ed25519 keys, real self-signatures) and real signed commit
// chains, with one wrap per member and epoch and one history link per
// rotation, and a transparency log integrated and signed by the real
// sequencer code. Wraps and links are random bytes of the right size: the
// audit can check only their structure, and a million HPKE seals would
// take longer than the audit.
//
//	go test ./internal/audit -run TestGenerateLargeDB -v -timeout 1h \
//	    -audit.generate 'host=/tmp/pg user=postgres dbname=big' \
//	    -audit.groups 1000 -audit.commits 100 -audit.members 10
//
// It prints the log key to pass to `coffer-audit db --log-key`.
var (
	generateURL = flag.String("audit.generate", "", "generate a large database at this URL (it is migrated first)")
	genAccounts = flag.Int("audit.accounts", 3000, "accounts to generate")
	genGroups   = flag.Int("audit.groups", 1000, "groups to generate")
	genCommits  = flag.Int("audit.commits", 100, "commits per group (the genesis, then rotations)")
	genMembers  = flag.Int("audit.members", 10, "members per group")
)

func TestGenerateLargeDB(t *testing.T) {
	if *generateURL == "" {
		t.Skip("set -audit.generate to generate a large database")
	}
	ctx := context.Background()
	start := time.Now()
	if err := store.Migrate(ctx, *generateURL, nil); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, *generateURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	// Accounts.
	type acct struct {
		id  coffer.AccountID
		pub coffer.PublicIdentity
		key ed25519.PrivateKey
	}
	accounts := make([]acct, *genAccounts)
	var rows, leaves [][]any
	now := time.Now()
	for i := range accounts {
		dk, err := coffer.KEM().GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pk, sk, _ := ed25519.GenerateKey(rand.Reader)
		a := acct{id: coffer.NewAccountID(), key: sk,
			pub: coffer.PublicIdentity{Handle: coffer.Handle(fmt.Sprintf("user%06d", i)), SigningKey: pk, EncryptionKey: dk.PublicKey().Bytes()}}
		accounts[i] = a
		ident := a.pub.Marshal()
		sig := coffer.Sign(sk, coffer.LabelIdentity, ident)
		rows = append(rows, []any{a.id, string(a.pub.Handle), ident, sig, []byte(pk), a.pub.EncryptionKey, now})
		leaf := translog.IdentityLeaf(a.id, ident, sig)
		h := translog.RecordHash(leaf)
		leaves = append(leaves, []any{leaf, h[:], a.id, nil, nil, now})
	}
	copyRows(t, pool, "accounts", []string{"id", "handle", "identity", "self_signature", "signing_key", "encryption_key", "created_at"}, rows)
	copyRows(t, pool, "log_entries", []string{"leaf", "leaf_hash", "account_id", "group_id", "seq", "created_at"}, leaves)
	t.Logf("%d accounts in %v", len(accounts), time.Since(start))

	// A pool of random wraps, reused: only their size is auditable.
	wrapPool := make([][]byte, 256)
	for i := range wrapPool {
		wrapPool[i] = make([]byte, coffer.WrapSize)
		rand.Read(wrapPool[i])
	}
	pick := func(n int) int {
		v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
		return int(v.Int64())
	}
	var totalWraps int
	for gi := range *genGroups {
		g := coffer.NewGroupID()
		members := map[int]bool{}
		order := []int{}
		for len(order) < *genMembers {
			if i := pick(len(accounts)); !members[i] {
				members[i] = true
				order = append(order, i)
			}
		}
		owner := accounts[order[0]]
		genesis := &coffer.Commit{Group: g, Seq: 1, Epoch: 1, Author: owner.id, Time: now.UnixMilli(), ShareHistory: true}
		rand.Read(genesis.KeyCommitment[:])
		for k, i := range order {
			role := coffer.RoleReader
			if k == 0 {
				role = coffer.RoleOwner
			}
			a := accounts[i]
			genesis.Ops = append(genesis.Ops, coffer.Op{Kind: coffer.OpAdd, Member: a.id, Handle: a.pub.Handle,
				SigningKey: a.pub.SigningKey, EncryptionKey: a.pub.EncryptionKey, Role: role})
		}
		sc := coffer.SignCommit(genesis, owner.key)
		state, err := coffer.VerifyChain(nil, []coffer.SignedCommit{sc})
		if err != nil {
			t.Fatal(err)
		}
		var commits, links, logRows, memberRows [][]any
		addCommit := func(sc coffer.SignedCommit, c *coffer.Commit) {
			h := sc.Hash()
			commits = append(commits, []any{g, int64(c.Seq), sc.Body, sc.Signature, h[:], c.Author, int64(c.Epoch), now})
			leaf := translog.CommitLeaf(g, c.Seq, sc)
			lh := translog.RecordHash(leaf)
			logRows = append(logRows, []any{leaf, lh[:], nil, g, int64(c.Seq), now})
		}
		addCommit(sc, genesis)
		for seq := uint64(2); seq <= uint64(*genCommits); seq++ {
			c := &coffer.Commit{Group: g, Seq: seq, Prev: state.Head, Epoch: state.Epoch + 1, Author: owner.id,
				Time: now.UnixMilli(), ShareHistory: true, Ops: []coffer.Op{{Kind: coffer.OpRotate}}}
			rand.Read(c.KeyCommitment[:])
			sc := coffer.SignCommit(c, owner.key)
			if err := state.Apply(sc); err != nil {
				t.Fatal(err)
			}
			addCommit(sc, c)
			link := make([]byte, coffer.HistoryLinkSize)
			rand.Read(link)
			links = append(links, []any{g, int64(seq - 1), link})
		}
		for _, i := range order {
			memberRows = append(memberRows, []any{g, accounts[i].id, int16(state.Members[accounts[i].id].Role)})
		}
		st, err := state.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		meta := make([]byte, 120)
		rand.Read(meta)
		copyRows(t, pool, "groups", []string{"id", "head_seq", "head_hash", "epoch", "state", "meta_epoch", "meta", "created_at", "updated_at"},
			[][]any{{g, int64(state.Seq), state.Head[:], int64(state.Epoch), st, int64(state.Epoch), meta, now, now}})
		copyRows(t, pool, "commits", []string{"group_id", "seq", "body", "signature", "hash", "author_id", "epoch", "created_at"}, commits)
		copyRows(t, pool, "group_members", []string{"group_id", "account_id", "role"}, memberRows)
		copyRows(t, pool, "history_links", []string{"group_id", "epoch", "link"}, links)
		copyRows(t, pool, "log_entries", []string{"leaf", "leaf_hash", "account_id", "group_id", "seq", "created_at"}, logRows)
		// One wrap per member and epoch, streamed.
		n := 0
		epochs, ms := int(state.Epoch), order
		_, err = pool.CopyFrom(ctx, pgx.Identifier{"wrapped_keys"}, []string{"group_id", "epoch", "member_id", "wrap"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if n >= epochs*len(ms) {
					return nil, nil
				}
				e, m := n/len(ms)+1, accounts[ms[n%len(ms)]].id
				n++
				return []any{g, int64(e), m, wrapPool[n%len(wrapPool)]}, nil
			}))
		if err != nil {
			t.Fatal(err)
		}
		totalWraps += n
		if gi%100 == 99 {
			t.Logf("%d groups, %d wraps, %v", gi+1, totalWraps, time.Since(start))
		}
	}

	// Integrate the log with the sequencer's own code.
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := translog.NewSigner("coffer.bench", key)
	if err != nil {
		t.Fatal(err)
	}
	db := store.New(pool)
	for {
		n, err := db.IntegrateLog(ctx, signer, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated in %v: %d accounts, %d groups, %d commits, %d wraps", time.Since(start),
		len(accounts), *genGroups, *genGroups**genCommits, totalWraps)
	fmt.Fprintf(os.Stderr, "log key: %s\n", signer.VerifierKey())
	if f := os.Getenv("AUDIT_LOG_KEY_FILE"); f != "" {
		os.WriteFile(f, []byte(signer.VerifierKey()+"\n"), 0o644)
	}
}

func copyRows(t *testing.T, pool *pgxpool.Pool, table string, cols []string, rows [][]any) {
	t.Helper()
	if _, err := pool.CopyFrom(context.Background(), pgx.Identifier{table}, cols, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("copy %s: %v", table, err)
	}
}
