package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// WitnessOptions configure Witness.
type WitnessOptions struct {
	// Server is the cofferd base URL.
	Server string
	// StateDir keeps what the witness verified between runs.
	StateDir string
	// LogKey is the log's note verifier key, obtained out of band. Without
	// it the first run pins the key the server names, and says so.
	LogKey string
	// HTTPClient defaults to a client with a one-minute timeout.
	HTTPClient *http.Client
	Progress   io.Writer
}

const stateFile = "witness.state"

// witnessState is what the witness carries from run to run: the last
// checkpoint it verified and just enough to extend and re-verify the log
// from there.
type witnessState struct {
	Version    int
	LogKey     string
	Checkpoint string // signed note of the last verified tree
	// Frontier holds the hashes of the complete subtrees of that tree
	// (translog.Frontier), keyed by stored-hash index.
	Frontier map[int64]tlog.Hash
	// Identities are the registered accounts: their handle and signing key.
	Identities map[coffer.AccountID]witnessIdentity
	// Groups are the heads of the commit chains seen in the log.
	Groups map[coffer.GroupID]witnessGroup
	// Accounts are the suite v2 account chains seen in the log
	// (coffer.AccountState.MarshalBinary), and IdentityGens the user-key
	// generation of each one's last logged identity.
	Accounts     map[coffer.AccountID][]byte
	IdentityGens map[coffer.AccountID]uint64
	// MemberKeys are the encodings of the suite v2 member keys of every
	// user key those chains set, by hash, old generations included (a
	// state from before suite v2 groups has none: each chain's current
	// keys are taken from Accounts).
	MemberKeys map[[32]byte][]byte

	handles map[coffer.Handle]coffer.AccountID // derived from Identities and Accounts
	chains  map[coffer.AccountID]*coffer.AccountState
	byAcct  map[coffer.AccountID][][32]byte // the hashes in MemberKeys, by account
}

type witnessIdentity struct {
	Handle        coffer.Handle
	SigningKey    []byte
	EncryptionKey [32]byte // SHA-256 of the X-Wing key
	// Retired are the signing keys of the account's earlier logged
	// identities (suite v2 rotations): a self-update is signed with the key
	// its group entry held, which the rotation logged before it retired.
	Retired [][]byte
}

type witnessGroup struct {
	Seq  uint64
	Head [32]byte
	// Suite is the suite its genesis fixed (SuiteV2, or zero for suite
	// v1): the auditor's witness keeps no other group state.
	Suite uint8
}

func loadWitnessState(dir string) (*witnessState, error) {
	f, err := os.Open(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var s witnessState
	if err := gob.NewDecoder(f).Decode(&s); err != nil || s.Version != 1 {
		return nil, fmt.Errorf("witness state %s is corrupt", f.Name())
	}
	return &s, nil
}

func saveWitnessState(dir string, s *witnessState) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(s); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, stateFile))
}

// WitnessCheckpoint returns the last checkpoint the witness in dir
// verified, as a signed note, for clients to check with
// clientlib.Client.CheckCheckpoint.
func WitnessCheckpoint(dir string) (string, error) {
	s, err := loadWitnessState(dir)
	if err != nil {
		return "", err
	}
	if s == nil {
		return "", errors.New("the witness has not run yet")
	}
	return s.Checkpoint, nil
}

type logClient struct {
	base string
	hc   *http.Client
}

func (c *logClient) get(ctx context.Context, path string, out any) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		var p api.Problem
		if json.Unmarshal(b, &p) == nil && p.Code != "" {
			return "", &coffer.Error{Code: coffer.Code(p.Code), Message: p.Detail}
		}
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if out == nil {
		return string(b), nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return "", fmt.Errorf("GET %s: malformed response: %w", path, err)
	}
	return "", nil
}

// Witness runs witness mode once: it fetches the server's checkpoint,
// checks its signature under the pinned key and that it extends the last
// verified checkpoint (a consistency proof), then fetches every new leaf,
// re-verifies each entry's signature and chain position, and recomputes
// the tree root from the leaves. The new state is stored only when all of
// it holds.
func Witness(ctx context.Context, opts WitnessOptions) (*Report, error) {
	r := newReport("log")
	p := &progress{w: opts.Progress}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	u, err := url.Parse(strings.TrimRight(opts.Server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q must be an http(s) URL", opts.Server)
	}
	lc := &logClient{base: u.String(), hc: hc}
	st, err := loadWitnessState(opts.StateDir)
	if err != nil {
		return nil, err
	}
	first := st == nil
	if first {
		st = &witnessState{Version: 1, Frontier: map[int64]tlog.Hash{},
			Identities: map[coffer.AccountID]witnessIdentity{}, Groups: map[coffer.GroupID]witnessGroup{}}
	}

	// The pinned key.
	key := strings.TrimSpace(opts.LogKey)
	switch {
	case key != "" && st.LogKey != "" && key != st.LogKey:
		r.Fail("witness", "log key", "the given key %q is not the key %q pinned by earlier runs", key, st.LogKey)
		return r.finish(), nil
	case key == "" && st.LogKey != "":
		key = st.LogKey
	case key == "":
		text, err := lc.get(ctx, "/v1/log/key", nil)
		if err != nil {
			return nil, fmt.Errorf("fetch the log key: %w", err)
		}
		key = strings.TrimSpace(text)
		r.Note("pinned the log key the server named (%s): compare it with the operator's out of band, or pass --log-key", key)
	}
	v, err := translog.NewVerifier(key)
	if err != nil {
		return nil, err
	}
	st.LogKey = v.Key()

	var old translog.Checkpoint
	if !first {
		if old, err = v.Open(st.Checkpoint); err != nil {
			return nil, fmt.Errorf("witness state: stored checkpoint: %w", err)
		}
		tree := &treeBuilder{size: old.Size, known: st.Frontier}
		if root, err := tree.root(); err != nil || root != old.Root {
			return nil, errors.New("witness state: the stored tree does not match the stored checkpoint")
		}
	}

	note, err := lc.get(ctx, "/v1/log/checkpoint", nil)
	if err != nil {
		return nil, fmt.Errorf("fetch the checkpoint: %w", err)
	}
	cp, err := v.Open(note)
	if err != nil {
		r.Fail("witness", "checkpoint", "the server's checkpoint does not verify under the pinned key: %v", err)
		return r.finish(), nil
	}
	r.count("log_size", cp.Size)
	if !first {
		r.count("previous_size", old.Size)
		small, big := old, cp
		if cp.Size < old.Size {
			small, big = cp, old
		}
		var proof api.LogConsistency
		if small.Size > 0 && small.Size < big.Size {
			path := "/v1/log/proof/consistency?old=" + strconv.FormatInt(small.Size, 10) + "&new=" + strconv.FormatInt(big.Size, 10)
			if _, err := lc.get(ctx, path, &proof); err != nil {
				r.Fail("witness", "checkpoint", "the server cannot prove its tree of size %d consistent with the tree of size %d: %v", cp.Size, old.Size, err)
				return r.finish(), nil
			}
		}
		hashes, err := translog.BytesToHashes(proof.Proof)
		if err == nil {
			err = translog.CheckConsistency(small, big, hashes)
		}
		if err != nil {
			r.Fail("witness", fmt.Sprintf("checkpoint %d → %d", old.Size, cp.Size), "the log forked: it did not only grow by appends since the last run: %v", err)
			return r.finish(), nil
		}
		if cp.Size < old.Size {
			r.Note("the server shows an older checkpoint (size %d) than the last run saw (%d); it is a prefix, so nothing was rewritten, but the state stays at %d", cp.Size, old.Size, old.Size)
			return r.finish(), nil
		}
	}

	// Mirror and re-verify the new leaves.
	tree := &treeBuilder{size: old.Size, known: st.Frontier}
	if first {
		tree = newTreeBuilder()
	}
	for tree.size < cp.Size {
		var page api.LogLeaves
		path := "/v1/log/leaves?start=" + strconv.FormatInt(tree.size, 10) + "&limit=1000"
		if _, err := lc.get(ctx, path, &page); err != nil {
			return nil, fmt.Errorf("fetch leaves: %w", err)
		}
		if page.Start != tree.size || len(page.Leaves) == 0 {
			r.Fail("witness", fmt.Sprintf("log leaf %d", tree.size), "the server does not serve the leaves of its own checkpoint")
			return r.finish(), nil
		}
		if len(page.Leaves) > 1000 {
			// A page larger than asked for is the server trying to make
			// the witness hold more than it agreed to.
			r.Fail("witness", fmt.Sprintf("log leaf %d", tree.size), "asked for at most 1000 leaves, the server sent %d", len(page.Leaves))
			return r.finish(), nil
		}
		for _, leaf := range page.Leaves {
			if tree.size >= cp.Size {
				break
			}
			st.checkLeaf(r, tree.size, leaf)
			if _, err := tree.append(translog.RecordHash(leaf)); err != nil {
				return nil, err
			}
			r.count("new_leaves", 1)
		}
		p.tick("log leaves: %d of %d", tree.size, cp.Size)
	}
	root, err := tree.root()
	if err != nil {
		return nil, err
	}
	if root != cp.Root {
		r.Fail("witness", "checkpoint", "the leaves the server serves do not hash to its signed root")
	}
	r.count("identities", int64(len(st.Identities)))
	r.count("groups", int64(len(st.Groups)))
	r.finish()
	if !r.Clean {
		return r, nil
	}
	st.Checkpoint = note
	st.Frontier = map[int64]tlog.Hash{}
	for _, ix := range translog.Frontier(cp.Size) {
		st.Frontier[ix] = tree.known[ix]
	}
	if err := saveWitnessState(opts.StateDir, st); err != nil {
		return nil, fmt.Errorf("save witness state: %w", err)
	}
	return r, nil
}

// checkLeaf re-verifies one log entry from the log alone and records it.
func (s *witnessState) checkLeaf(r *Report, index int64, leaf []byte) {
	obj := fmt.Sprintf("log leaf %d", index)
	l, err := translog.ParseLeaf(leaf)
	if err != nil {
		r.Fail("witness", obj, "%v", err)
		return
	}
	switch l.Kind {
	case translog.KindIdentity:
		r.count("identity_entries", 1)
		id, err := l.VerifyIdentity()
		if err != nil {
			r.Fail("witness", obj, "identity of account %s does not verify: %s", l.Account, coffer.ErrorMessage(err))
			return
		}
		if st := s.chain(r, l.Account); st != nil {
			s.checkChainIdentity(r, obj, l.Account, st, id)
			return
		}
		if _, dup := s.Identities[l.Account]; dup {
			// Suite v1 has no key change: an account is registered once.
			r.Fail("witness", obj, "account %s is registered a second time", l.Account)
			return
		}
		s.loadHandles(r)
		if other, dup := s.handles[id.Handle]; dup {
			r.Fail("witness", obj, "handle %s is registered to %s and again to %s", id.Handle, other, l.Account)
			return
		}
		s.handles[id.Handle] = l.Account
		s.Identities[l.Account] = witnessIdentity{Handle: id.Handle, SigningKey: id.SigningKey, EncryptionKey: sha256.Sum256(id.EncryptionKey)}
	case translog.KindAccountLink:
		r.count("account_link_entries", 1)
		s.checkAccountLink(r, obj, l)
	case translog.KindCommit:
		r.count("commit_entries", 1)
		c, err := l.ParseCommit()
		if err != nil {
			r.Fail("witness", obj, "commit %d of group %s: %s", l.Seq, l.Group, coffer.ErrorMessage(err))
			return
		}
		head := s.Groups[l.Group]
		if c.Seq != head.Seq+1 || c.Prev != head.Head {
			r.Fail("witness", obj, "commit %d of group %s does not follow the group's last logged commit %d", c.Seq, l.Group, head.Seq)
			return
		}
		if head.Seq > 0 && c.Suite != head.Suite {
			r.Fail("witness", obj, "commit %d of group %s is of suite %d in a group of suite %d", c.Seq, l.Group, max(c.Suite, 1), max(head.Suite, 1))
			return
		}
		if c.Suite == coffer.SuiteV2 {
			s.checkCommitV2(r, obj, l, c)
			return
		}
		author, ok := s.Identities[c.Author]
		if !ok {
			r.Fail("witness", obj, "commit %d of group %s is by %s, whose identity is not in the log", c.Seq, l.Group, c.Author)
			return
		}
		if !signedByLogged(c, l.Commit, author) {
			r.Fail("witness", obj, "commit %d of group %s: the signature does not verify under the author's logged key", c.Seq, l.Group)
			return
		}
		for _, op := range c.Ops {
			switch op.Kind {
			case coffer.OpAdd:
				id, ok := s.Identities[op.Member]
				if !ok || id.Handle != op.Handle || !bytes.Equal(id.SigningKey, op.SigningKey) || id.EncryptionKey != sha256.Sum256(op.EncryptionKey) {
					r.Fail("witness", obj, "commit %d of group %s adds %s (%s) with keys that are not its logged identity", c.Seq, l.Group, op.Member, op.Handle)
				}
			case coffer.OpUpdateKey:
				// The author's own entry (the verifier's rule): its new keys
				// are the account's identity as the log holds it now.
				if !bytes.Equal(author.SigningKey, op.SigningKey) || author.EncryptionKey != sha256.Sum256(op.EncryptionKey) {
					r.Fail("witness", obj, "commit %d of group %s updates %s to keys that are not its logged identity", c.Seq, l.Group, op.Member)
				}
			}
		}
		s.Groups[l.Group] = witnessGroup{Seq: c.Seq, Head: l.Commit.Hash(), Suite: c.Suite}
	}
}

// signedByLogged reports whether commit c verifies under its author's
// logged signing key, or, for a self-update (which the entry's key before
// the rotation signs), under one of the author's retired logged keys.
func signedByLogged(c *coffer.Commit, sc coffer.SignedCommit, author witnessIdentity) bool {
	if coffer.VerifySignature(author.SigningKey, coffer.LabelCommit, sc.Body, sc.Signature) {
		return true
	}
	selfUpdate := false
	for _, op := range c.Ops {
		selfUpdate = selfUpdate || op.Kind == coffer.OpUpdateKey && op.Member == c.Author
	}
	if !selfUpdate {
		return false
	}
	for _, k := range author.Retired {
		if coffer.VerifySignature(k, coffer.LabelCommit, sc.Body, sc.Signature) {
			return true
		}
	}
	return false
}

// loadHandles builds the handle index from the identities and chains.
func (s *witnessState) loadHandles(r *Report) {
	if s.handles != nil {
		return
	}
	s.handles = make(map[coffer.Handle]coffer.AccountID, len(s.Identities)+len(s.Accounts))
	for a, o := range s.Identities {
		s.handles[o.Handle] = a
	}
	for a := range s.Accounts {
		if st := s.chain(r, a); st != nil {
			s.handles[st.Handle] = a
		}
	}
}

// chain returns the verified state of a suite v2 account, or nil.
func (s *witnessState) chain(r *Report, a coffer.AccountID) *coffer.AccountState {
	if st, ok := s.chains[a]; ok {
		return st
	}
	b, ok := s.Accounts[a]
	if !ok {
		return nil
	}
	st := new(coffer.AccountState)
	if err := st.UnmarshalBinary(b); err != nil {
		r.Fail("witness", "state of account "+a.String(), "%v", err)
		return nil
	}
	if s.chains == nil {
		s.chains = map[coffer.AccountID]*coffer.AccountState{}
	}
	s.chains[a] = st
	return st
}

// checkChainIdentity: a suite v2 account logs its identity once per user
// key, after the link that sets it, and it is exactly the chain's.
func (s *witnessState) checkChainIdentity(r *Report, obj string, a coffer.AccountID, st *coffer.AccountState, id coffer.PublicIdentity) {
	if s.IdentityGens[a] >= st.UserKeyGeneration {
		r.Fail("witness", obj, "identity of account %s logged a second time for user key %d", a, st.UserKeyGeneration)
		return
	}
	if !id.Equal(st.Identity()) {
		r.Fail("witness", obj, "identity of account %s is not the one its chain sets at link %d", a, st.Seq)
		return
	}
	if s.IdentityGens == nil {
		s.IdentityGens = map[coffer.AccountID]uint64{}
	}
	s.IdentityGens[a] = st.UserKeyGeneration
	var retired [][]byte
	if old, ok := s.Identities[a]; ok {
		retired = append(old.Retired, old.SigningKey)
	}
	s.Identities[a] = witnessIdentity{Handle: id.Handle, SigningKey: id.SigningKey, EncryptionKey: sha256.Sum256(id.EncryptionKey), Retired: retired}
}

// checkAccountLink replays one account link with the account-chain
// verifier from the account's state in the log.
func (s *witnessState) checkAccountLink(r *Report, obj string, l *translog.Leaf) {
	if _, err := l.ParseAccountLink(); err != nil {
		r.Fail("witness", obj, "link %d of account %s: %s", l.Seq, l.Account, coffer.ErrorMessage(err))
		return
	}
	prev := s.chain(r, l.Account)
	trusted := prev
	if prev == nil {
		if _, v1 := s.Identities[l.Account]; v1 {
			r.Fail("witness", obj, "account %s was registered without an account chain", l.Account)
			return
		}
		trusted = &coffer.AccountState{Account: l.Account}
	} else if s.IdentityGens[l.Account] < prev.UserKeyGeneration {
		r.Fail("witness", obj, "link %d of account %s follows a user key whose identity is not logged", l.Seq, l.Account)
		return
	}
	next, err := coffer.VerifyAccountChain(trusted, []coffer.SignedLink{l.Link})
	if err != nil {
		r.Fail("witness", obj, "account %s: %s", l.Account, coffer.ErrorMessage(err))
		return
	}
	if prev == nil {
		s.loadHandles(r)
		if other, dup := s.handles[next.Handle]; dup && other != l.Account {
			r.Fail("witness", obj, "handle %s is registered to %s and again to %s", next.Handle, other, l.Account)
			return
		}
		s.handles[next.Handle] = l.Account
	}
	b, err := next.MarshalBinary()
	if err != nil {
		r.Fail("witness", obj, "%v", err)
		return
	}
	if s.Accounts == nil {
		s.Accounts = map[coffer.AccountID][]byte{}
	}
	if s.chains == nil {
		s.chains = map[coffer.AccountID]*coffer.AccountState{}
	}
	s.Accounts[l.Account], s.chains[l.Account] = b, next
	if prev == nil || next.UserKeyGeneration != prev.UserKeyGeneration {
		s.addMemberKeys(r, next.MemberKeys())
	}
}
