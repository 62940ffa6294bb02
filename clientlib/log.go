package clientlib

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// The transparency log, from the client's side.
//
// The server appends every identity registration and every commit to one
// Merkle log and signs checkpoints of it (see internal/translog). The client
//
//   - pins the log's verifier key (Options.LogKey, or the key the server
//     names on first use) and refuses any checkpoint not signed by it;
//   - keeps the largest checkpoint it has verified in its KeyStore and
//     requires every checkpoint it sees later, larger or smaller, to be
//     consistent with it. Prefix consistency is transitive, so holding only
//     the largest checkpoint checks every pair the client has ever seen;
//   - proves the inclusion of every commit it verifies in Sync and every
//     identity it looks up, in a checkpoint it verified, before relying on
//     it: a server that hides a membership change or a key from the log
//     cannot make this client accept it;
//   - lets two clients (or a client and a witness) compare checkpoints with
//     Checkpoint and CheckCheckpoint, which turns a server showing them
//     different logs into a *coffer.SecurityError.
//
// The log reveals which accounts are in which groups (DESIGN.md puts
// hiding membership out of scope for v1); it holds no secret.

const (
	ksLogKey        = "log/key"
	ksLogCheckpoint = "log/checkpoint"
	// logBatch is how many proofs one request asks for (the server's cap).
	logBatch = 1000
)

func logSecurity(format string, args ...any) error {
	return coffer.Security("log", fmt.Errorf(format, args...))
}

// getText fetches a text/plain resource without authentication.
func (c *Client) getText(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", coffer.Errorf(coffer.EUNAVAILABLE, "cannot reach the server: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return "", problemError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", coffer.Errorf(coffer.EUNAVAILABLE, "reading the response: %v", err)
	}
	return string(b), nil
}

// logVerifier returns the pinned log key, pinning the configured one or, on
// first use, the one the server names.
func (c *Client) logVerifier(ctx context.Context) (*translog.Verifier, error) {
	stored, err := c.ks.Get(ksLogKey)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if c.opts.LogKey != "" {
		v, err := translog.NewVerifier(c.opts.LogKey)
		if err != nil {
			return nil, coffer.Errorf(coffer.EINVALID, "Options.LogKey: %v", err)
		}
		if stored != nil && string(stored) != v.Key() {
			return nil, logSecurity("the configured log key %q is not the key %q this device pinned earlier", v.Key(), stored)
		}
		if stored == nil {
			if err := c.ks.Put(ksLogKey, []byte(v.Key())); err != nil {
				return nil, err
			}
		}
		return v, nil
	}
	if stored != nil {
		v, err := translog.NewVerifier(string(stored))
		if err != nil {
			return nil, fmt.Errorf("clientlib: stored log key is corrupt: %w", err)
		}
		return v, nil
	}
	text, err := c.getText(ctx, "/v1/log/key")
	if err != nil {
		return nil, err
	}
	v, err := translog.NewVerifier(text)
	if err != nil {
		return nil, logSecurity("the server's log key does not parse: %v", err)
	}
	if err := c.ks.Put(ksLogKey, []byte(v.Key())); err != nil {
		return nil, err
	}
	return v, nil
}

// storedCheckpoint returns the largest checkpoint this device verified.
func (c *Client) storedCheckpoint(v *translog.Verifier) (*translog.Checkpoint, string, error) {
	b, err := c.ks.Get(ksLogCheckpoint)
	if errors.Is(err, ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	cp, err := c.openNote(v, string(b))
	if err != nil {
		return nil, "", logSecurity("the checkpoint this device stored does not verify under the pinned log key: %v", err)
	}
	return &cp, string(b), nil
}

// proveConsistent asks the server to prove that the smaller of held (a
// checkpoint this device kept) and shown (one the server shows now) is a
// prefix of the larger, and checks the proof. A failure is a fork: the
// error names both views (forkError).
func (c *Client) proveConsistent(ctx context.Context, held, shown translog.Checkpoint) error {
	a, b := held, shown
	if a.Size > b.Size {
		a, b = b, a
	}
	if a.Size == b.Size || a.Size == 0 {
		if err := translog.CheckConsistency(a, b, nil); err != nil {
			return forkError(held, shown, err)
		}
		if a.Size == b.Size && a.Size > 0 && (a.MapSize != b.MapSize || a.MapRoot != b.MapRoot) {
			return forkError(held, shown, errors.New("one log tree signed with two different heads maps"))
		}
		return nil
	}
	if c.consistent.has(a, b) {
		return nil
	}
	p, err := c.consistencyProof(ctx, a.Size, b.Size)
	if err != nil {
		return err
	}
	proof, err := translog.BytesToHashes(p.Proof)
	if err != nil {
		return logSecurity("%v", err)
	}
	if err := translog.CheckConsistency(a, b, proof); err != nil {
		return forkError(held, shown, err)
	}
	c.consistent.add(a, b)
	return nil
}

// provenPairs remembers the last few pairs of checkpoints proven
// consistent. A sync checks the witnesses' new checkpoint against the
// cosigned one this device held and then against the newest one it
// adopted, which are usually the same checkpoint: the second proof was the
// same request and the same answer again.
type provenPairs struct {
	mu    sync.Mutex
	pairs [4][2]translog.Checkpoint
	next  int
}

func (pp *provenPairs) has(a, b translog.Checkpoint) bool {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for _, p := range pp.pairs {
		if p[0] == a && p[1] == b {
			return true
		}
	}
	return false
}

func (pp *provenPairs) add(a, b translog.Checkpoint) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.pairs[pp.next] = [2]translog.Checkpoint{a, b}
	pp.next = (pp.next + 1) % len(pp.pairs)
}

// adopt checks a verified checkpoint against the stored one and stores it
// if it is larger. The caller holds logMu.
func (c *Client) adopt(ctx context.Context, v *translog.Verifier, cp translog.Checkpoint, note string) error {
	_, err := c.adoptNewest(ctx, v, cp, note)
	return err
}

// adoptNewest is adopt, returning the larger of cp and the checkpoint this
// device held: what it relies on next. A server that shows an older
// checkpoint than one this device verified (to serve a version deleted or
// replaced since) gets it checked against the newer one all the same.
func (c *Client) adoptNewest(ctx context.Context, v *translog.Verifier, cp translog.Checkpoint, note string) (translog.Checkpoint, error) {
	old, _, err := c.storedCheckpoint(v)
	if err != nil {
		return cp, err
	}
	if old != nil {
		if err := c.proveConsistent(ctx, *old, cp); err != nil {
			return cp, err
		}
		if cp.Size < old.Size {
			return *old, nil
		}
		if cp.Size == old.Size {
			return cp, nil
		}
	}
	return cp, c.ks.Put(ksLogCheckpoint, []byte(note))
}

// Checkpoint returns the largest log checkpoint this device has verified,
// as a signed note, for another client or a witness to check with
// CheckCheckpoint. ENOTFOUND before the first one.
func (c *Client) Checkpoint() (string, error) {
	b, err := c.ks.Get(ksLogCheckpoint)
	if errors.Is(err, ErrNotFound) {
		return "", coffer.Errorf(coffer.ENOTFOUND, "no log checkpoint yet: sync or look up an account first")
	}
	return string(b), err
}

// LatestCheckpoint fetches the server's current checkpoint, verifies it
// and its consistency with every checkpoint this device saw, and returns
// the largest one this device now holds (what Checkpoint returns).
func (c *Client) LatestCheckpoint(ctx context.Context) (string, error) {
	if _, err := c.latestCheckpoint(ctx); err != nil {
		return "", err
	}
	return c.Checkpoint()
}

// CheckCheckpoint checks a checkpoint that another client or a witness saw
// (their Checkpoint) against this device's view of the log: it must be
// signed by the pinned log key, and it and this device's own largest
// checkpoint must be consistent, which the server must prove. A server that
// showed the two parties different logs cannot, and the result is a
// *coffer.SecurityError. A larger consistent checkpoint is adopted.
func (c *Client) CheckCheckpoint(ctx context.Context, note string) error {
	if _, err := c.latestCheckpoint(ctx); err != nil {
		return err
	}
	c.logMu.Lock()
	defer c.logMu.Unlock()
	v, err := c.logVerifier(ctx)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(note, "\n") {
		note += "\n"
	}
	theirs, err := v.Open(note)
	if err != nil {
		return logSecurity("the other checkpoint does not verify under this device's log key: %v", err)
	}
	return c.adopt(ctx, v, theirs, note)
}

// loggedObject is something the client relies on, with the leaf the log
// must contain for it.
type loggedObject struct {
	ref  coffer.LogRef
	leaf []byte
}

// proveLogged proves that every object is in the log, in a checkpoint this
// device verified. Objects the sequencer has not integrated yet are retried
// with a newer checkpoint until Options.LogWait has passed.
func (c *Client) proveLogged(ctx context.Context, objs []loggedObject) error {
	return c.proveLoggedIn(ctx, nil, objs)
}

// proveLoggedIn is proveLogged trying first a checkpoint this device
// already verified and adopted (a sync's witnessed one, whose heads map
// names the commits), which spares fetching the latest.
func (c *Client) proveLoggedIn(ctx context.Context, held *translog.Checkpoint, objs []loggedObject) error {
	if len(objs) == 0 {
		return nil
	}
	deadline := time.Now().Add(c.opts.LogWait)
	pending := objs
	for attempt := 0; ; attempt++ {
		var (
			cp  translog.Checkpoint
			err error
		)
		if attempt == 0 && held != nil {
			cp = *held
		} else if cp, err = c.latestCheckpoint(ctx); err != nil {
			return err
		}
		// A few batches in flight overlap the server's proving with this
		// device's checking.
		var (
			still []loggedObject
			mu    sync.Mutex
			eg, _ = errgroup.WithContext(ctx)
		)
		eg.SetLimit(4)
		for start := 0; start < len(pending); start += logBatch {
			batch := pending[start:min(start+logBatch, len(pending))]
			eg.Go(func() error {
				missing, err := c.proveBatch(ctx, cp, batch)
				mu.Lock()
				still = append(still, missing...)
				mu.Unlock()
				return err
			})
		}
		if err := eg.Wait(); err != nil {
			return err
		}
		if len(still) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			o := still[0].ref
			what := "account " + o.Account.String()
			if !o.Group.IsZero() {
				what = fmt.Sprintf("commit %d of group %s", o.Seq, o.Group)
			}
			return coffer.Errorf(coffer.EUNAVAILABLE, "the transparency log has not included %s (and %d more) after %v: retry later", what, len(still)-1, c.opts.LogWait)
		}
		pending = still
		if attempt == 0 && held != nil {
			continue // not in the held checkpoint: ask for the latest now
		}
		d := min(time.Duration(10<<min(attempt, 5))*time.Millisecond, 250*time.Millisecond)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// proveBatch checks the inclusion of up to logBatch objects in cp and
// returns those not in it yet.
func (c *Client) proveBatch(ctx context.Context, cp translog.Checkpoint, objs []loggedObject) ([]loggedObject, error) {
	req := api.LogProofsRequest{Size: cp.Size}
	nAccounts := 0
	for _, o := range objs {
		if o.ref.Group.IsZero() {
			nAccounts++
		}
	}
	commits := make([]loggedObject, 0, len(objs)-nAccounts)
	accounts := make([]loggedObject, 0, nAccounts)
	req.Commits = make([]api.LogCommitRef, 0, len(objs)-nAccounts)
	if nAccounts > 0 {
		req.Accounts = make([]coffer.AccountID, 0, nAccounts)
	}
	for _, o := range objs {
		if o.ref.Group.IsZero() {
			req.Accounts = append(req.Accounts, o.ref.Account)
			accounts = append(accounts, o)
		} else {
			req.Commits = append(req.Commits, api.LogCommitRef{Group: o.ref.Group, Seq: o.ref.Seq})
			commits = append(commits, o)
		}
	}
	if cp.Size == 0 {
		return objs, nil
	}
	resp, err := c.logProofs(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.Size != cp.Size || len(resp.Commits) != len(commits) || len(resp.Accounts) != len(accounts) {
		return nil, logSecurity("the server answered a different proof request")
	}
	var missing []loggedObject
	// The batch's proofs share one allocation of hashes, of at most the
	// hashes a proof may have for each.
	n := 0
	for _, list := range [][]api.LogProof{resp.Commits, resp.Accounts} {
		for _, p := range list {
			n += min(len(p.Proof), api.MaxLogProofHashes)
		}
	}
	hashes := make([]tlog.Hash, 0, n)
	check := func(o loggedObject, p api.LogProof) error {
		if !p.Included {
			missing = append(missing, o)
			return nil
		}
		start := len(hashes)
		var err error
		if hashes, err = translog.AppendHashes(hashes, p.Proof); err != nil {
			return logSecurity("%v", err)
		}
		if err := translog.CheckInclusion(cp, p.Index, o.leaf, hashes[start:]); err != nil {
			return logSecurity("%v", err)
		}
		return nil
	}
	for i, p := range resp.Commits {
		if p.Group == nil || *p.Group != commits[i].ref.Group || p.Seq != commits[i].ref.Seq {
			return nil, logSecurity("the server answered for another commit")
		}
		if err := check(commits[i], p); err != nil {
			return nil, err
		}
	}
	for i, p := range resp.Accounts {
		if p.Account == nil || *p.Account != accounts[i].ref.Account {
			return nil, logSecurity("the server answered for another account")
		}
		if err := check(accounts[i], p); err != nil {
			return nil, err
		}
	}
	return missing, nil
}

// proveCommitsLogged proves the inclusion of commits of g, the first having
// seq first.
func (c *Client) proveCommitsLogged(ctx context.Context, g coffer.GroupID, first uint64, commits []coffer.SignedCommit) error {
	return c.proveCommitsLoggedIn(ctx, nil, g, first, commits)
}

// proveCommitsLoggedIn is proveCommitsLogged trying held first
// (proveLoggedIn).
func (c *Client) proveCommitsLoggedIn(ctx context.Context, held *translog.Checkpoint, g coffer.GroupID, first uint64, commits []coffer.SignedCommit) error {
	objs := make([]loggedObject, len(commits))
	for i, sc := range commits {
		seq := first + uint64(i)
		objs[i] = loggedObject{ref: coffer.LogRef{Group: g, Seq: seq}, leaf: translog.CommitLeaf(g, seq, sc)}
	}
	return c.proveLoggedIn(ctx, held, objs)
}

// proveIdentityLogged proves that the account's identity, exactly as the
// server served it, is in the log.
func (c *Client) proveIdentityLogged(ctx context.Context, a api.Account) error {
	return c.proveLogged(ctx, []loggedObject{{
		ref:  coffer.LogRef{Account: a.ID},
		leaf: translog.IdentityLeaf(a.ID, a.Identity, a.SelfSignature),
	}})
}

// observeSecret hands a secret to Options.SecretObserver, if set.
func (c *Client) observeSecret(kind string, secret []byte) {
	if c.opts.SecretObserver != nil {
		c.opts.SecretObserver(kind, append([]byte(nil), secret...))
	}
}
