package witness_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// member is a test account with deterministic keys.
type member struct {
	id     coffer.AccountID
	handle coffer.Handle
	key    ed25519.PrivateKey
	enc    []byte
}

var members sync.Map

func mustMember(tb testing.TB, n int) *member {
	tb.Helper()
	if m, ok := members.Load(n); ok {
		return m.(*member)
	}
	seed := sha256.Sum256(fmt.Appendf(nil, "witness test %d signing", n))
	ikm := sha256.Sum256(fmt.Appendf(nil, "witness test %d encryption", n))
	id := sha256.Sum256(fmt.Appendf(nil, "witness test %d id", n))
	id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80
	dk, err := coffer.KEM().DeriveKeyPair(ikm[:])
	if err != nil {
		tb.Fatal(err)
	}
	m := &member{id: coffer.AccountID(id[:16]), handle: coffer.Handle(fmt.Sprintf("user-%d", n)),
		key: ed25519.NewKeyFromSeed(seed[:]), enc: dk.PublicKey().Bytes()}
	actual, _ := members.LoadOrStore(n, m)
	return actual.(*member)
}

func (m *member) pub() ed25519.PublicKey { return m.key.Public().(ed25519.PublicKey) }

func (m *member) identity() coffer.PublicIdentity {
	return coffer.PublicIdentity{Handle: m.handle, SigningKey: m.pub(), EncryptionKey: m.enc}
}

// identityLeaf is m's registration.
func (m *member) identityLeaf() []byte {
	id := m.identity().Marshal()
	return translog.IdentityLeaf(m.id, id, coffer.Sign(m.key, coffer.LabelIdentity, id))
}

func (m *member) add(r coffer.Role) coffer.Op {
	return coffer.Op{Kind: coffer.OpAdd, Member: m.id, Handle: m.handle, SigningKey: m.pub(), EncryptionKey: m.enc, Role: r}
}

// chain builds a group's commits.
type chain struct {
	group coffer.GroupID
	seq   uint64
	head  [32]byte
	epoch uint64
	kc    [32]byte
}

func newChain(n int) *chain {
	h := sha256.Sum256(fmt.Appendf(nil, "witness test group %d", n))
	h[6], h[8] = h[6]&0x0f|0x40, h[8]&0x3f|0x80
	return &chain{group: coffer.GroupID(h[:16])}
}

// next returns the leaf of the next commit by author with ops (a genesis
// when the chain is empty), and advances the chain.
func (c *chain) next(author *member, ops ...coffer.Op) []byte {
	leaf, sc := c.peek(author, ops...)
	cm, _ := coffer.ParseCommit(sc.Body)
	c.seq, c.head, c.epoch, c.kc = cm.Seq, sc.Hash(), cm.Epoch, cm.KeyCommitment
	return leaf
}

// peek is next without advancing: a competing commit at the same seq.
func (c *chain) peek(author *member, ops ...coffer.Op) ([]byte, coffer.SignedCommit) {
	if c.seq == 0 {
		c.epoch = 1
		c.kc = sha256.Sum256(append([]byte("kc"), c.group[:]...))
	}
	epoch, kc := c.epoch, c.kc
	for _, op := range ops {
		if op.Kind == coffer.OpRotate {
			epoch, kc = epoch+1, sha256.Sum256(kc[:])
		}
	}
	cm := &coffer.Commit{Group: c.group, Seq: c.seq + 1, Prev: c.head, Epoch: epoch, Author: author.id,
		Time: 1, ShareHistory: true, KeyCommitment: kc, Ops: ops}
	sc := coffer.SignCommit(cm, author.key)
	return translog.CommitLeaf(c.group, cm.Seq, sc), sc
}

// testLog is a log the test controls: it serves its leaves over HTTP at
// /v1/log/leaves and signs whatever checkpoint the test asks for.
type testLog struct {
	tb     testing.TB
	signer *translog.Signer
	srv    *httptest.Server
	clock  int64

	mu     sync.Mutex
	leaves [][]byte
	broken bool          // serve 500s
	delay  time.Duration // before each page
}

func logKey(tb testing.TB, n int) ed25519.PrivateKey {
	seed := sha256.Sum256(fmt.Appendf(nil, "witness test log key %d", n))
	return ed25519.NewKeyFromSeed(seed[:])
}

func newTestLog(tb testing.TB) *testLog {
	tb.Helper()
	s, err := translog.NewSigner("coffer.test-log", logKey(tb, 1))
	if err != nil {
		tb.Fatal(err)
	}
	l := &testLog{tb: tb, signer: s, clock: time.Now().Unix()}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serveLeaves))
	tb.Cleanup(l.srv.Close)
	return l
}

func (l *testLog) serveLeaves(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/log/leaves" {
		http.NotFound(w, r)
		return
	}
	l.mu.Lock()
	leaves, broken, delay := l.leaves, l.broken, l.delay
	l.mu.Unlock()
	time.Sleep(delay)
	if broken {
		http.Error(w, "broken", http.StatusInternalServerError)
		return
	}
	start, _ := strconv.ParseInt(r.URL.Query().Get("start"), 10, 64)
	limit, _ := strconv.ParseInt(r.URL.Query().Get("limit"), 10, 64)
	end := min(start+max(limit, 1), int64(len(leaves)))
	page := api.LogLeaves{Start: start, Leaves: [][]byte{}}
	if start < end {
		page.Leaves = leaves[start:end]
	}
	_ = json.NewEncoder(w).Encode(page)
}

func (l *testLog) append(leaves ...[]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leaves = append(l.leaves, leaves...)
}

// setLeaves replaces what the log serves (a fork, or a lie).
func (l *testLog) setLeaves(leaves [][]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leaves = leaves
}

func (l *testLog) snapshot() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.leaves...)
}

func (l *testLog) size() int64 { return int64(len(l.snapshot())) }

type hashes []tlog.Hash

func (h hashes) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ix))
	for i, x := range ix {
		out[i] = h[x]
	}
	return out, nil
}

func treeHashes(tb testing.TB, leaves [][]byte) hashes {
	var hs hashes
	for i, leaf := range leaves {
		h, err := tlog.StoredHashes(int64(i), leaf, hs)
		if err != nil {
			tb.Fatal(err)
		}
		hs = append(hs, h...)
	}
	return hs
}

// honest is the checkpoint of the first n leaves with the map they produce.
func (l *testLog) honest(n int64) translog.Checkpoint {
	l.tb.Helper()
	leaves := l.snapshot()[:n]
	root, err := tlog.TreeHash(n, treeHashes(l.tb, leaves))
	if err != nil {
		l.tb.Fatal(err)
	}
	m := translog.NewMemoryMap()
	for i, raw := range leaves {
		if p, err := translog.ParseLeaf(raw); err == nil {
			_ = m.ApplyLeaf(int64(i), raw, p)
		}
	}
	mroot, err := m.Root()
	if err != nil {
		l.tb.Fatal(err)
	}
	return translog.Checkpoint{Origin: l.signer.Origin(), Size: n, Root: root, MapSize: m.Size(), MapRoot: mroot, Time: l.clock}
}

func (l *testLog) sign(cp translog.Checkpoint) string {
	l.tb.Helper()
	s, err := l.signer.Sign(cp)
	if err != nil {
		l.tb.Fatal(err)
	}
	return s
}

// proof proves the tree of old leaves a prefix of the tree of n.
func (l *testLog) proof(old, n int64) []tlog.Hash {
	l.tb.Helper()
	if old == 0 || old == n {
		return nil
	}
	p, err := tlog.ProveTree(n, old, treeHashes(l.tb, l.snapshot()[:n]))
	if err != nil {
		l.tb.Fatal(err)
	}
	return p
}
