package ratchettree

import (
	"crypto/rand"
	"runtime"
	"slices"
	"sync"
)

// Secrets are the node secrets a committer generated, by node index. The
// committer keeps those of its own ancestors (Member.Adopt); the root's
// gives the epoch key.
type Secrets map[uint32][]byte

// Spec is what a committer wants a commit to do; Create turns it into a
// Commit. Untrusted lists admins this commit removes or demotes: Create
// rekeys every node they taint (and the parents of those nodes).
type Spec struct {
	// SelfUpdate is the committer's new leaf key for a rekeyed
	// self-update (see Commit.SelfUpdate); PathSpec{Op: OpUpdate} is the
	// O(log n) form for a committer that taints nothing off its path.
	SelfUpdate []byte
	Removes    []uint32
	Adds       []LeafKey
	Path       *PathSpec
	Rekey      []uint32
	Untrusted  []uint32
	// FetchKeys gets the keys of nodes the commit seals to that t holds
	// by digest only; nil when t holds every key.
	FetchKeys FetchKeys
}

// PathSpec is one path update: Op on Leaf, with LeafKey for OpUpdate and
// OpAdd.
type PathSpec struct {
	Op      Op
	Leaf    uint32
	LeafKey []byte
}

// Create builds the commit for spec on tree t as committer, and returns it
// with the resulting tree and the node secrets generated. Sealing runs on
// every core. t is not changed.
func Create(t *Tree, ctx Context, committer uint32, spec Spec) (*Commit, *Tree, Secrets, error) {
	nt := t.Clone()
	if err := checkCommitter(nt, committer); err != nil {
		return nil, nil, nil, err
	}
	selfTainted := selfTaint(nt, committer, spec.SelfUpdate != nil)
	if err := applyRemoves(nt, committer, spec.Removes); err != nil {
		return nil, nil, nil, err
	}
	var self *keyed
	if spec.SelfUpdate != nil {
		k := known(spec.SelfUpdate)
		self = &k
	}
	if err := applySelfUpdate(nt, committer, self, ParseKeys); err != nil {
		return nil, nil, nil, err
	}
	addKeys := make([]keyed, len(spec.Adds))
	for i, a := range spec.Adds {
		if a.Key == nil {
			return nil, nil, nil, errorf(RulePublicKey, "added leaf %d has no key", a.Leaf)
		}
		addKeys[i] = known(a.Key)
	}
	if err := applyAdds(nt, spec.Adds, addKeys, ParseKeys); err != nil {
		return nil, nil, nil, err
	}
	c := &Commit{Removes: spec.Removes, Adds: spec.Adds, SelfUpdate: spec.SelfUpdate}
	secrets := Secrets{}
	changed := bulkChanged(spec.Removes, spec.Adds)
	if spec.SelfUpdate != nil {
		changed = append(changed, LeafNode(committer))
		spec.Rekey = append(slices.Clone(spec.Rekey), selfTainted...)
		spec.Removes = append(slices.Clone(spec.Removes), committer) // its path, like a removed leaf's
	}
	if p := spec.Path; p != nil {
		var leafKey *keyed
		if p.LeafKey != nil {
			k := known(p.LeafKey)
			leafKey = &k
		}
		dp, recips, err := planPath(nt, committer, p.Op, p.Leaf, leafKey, ParseKeys)
		if err != nil {
			return nil, nil, nil, err
		}
		// One random path secret at the bottom; the rest follow by HKDF,
		// so a receiver needs only the ciphertext of its own level.
		ps := make([][]byte, len(dp))
		ps[0] = make([]byte, SecretSize)
		rand.Read(ps[0])
		for i := 1; i < len(dp); i++ {
			ps[i] = nextPathSecret(ps[i-1])
		}
		pubs := make([][]byte, len(dp))
		keys := make([]keyed, len(dp))
		err = parallel(len(dp), func(i int) error {
			ns := pathNodeSecret(ps[i])
			k, err := nodeKey(ns)
			if err != nil {
				return err
			}
			pubs[i] = k.PublicKey().Bytes()
			keys[i] = known(pubs[i])
			return nil
		})
		if err != nil {
			return nil, nil, nil, err
		}
		for i, x := range dp {
			secrets[x] = pathNodeSecret(ps[i])
		}
		var jobs []Ciphertext
		var jobSecret [][]byte
		for i, x := range dp {
			for _, r := range recips[i] {
				jobs = append(jobs, Ciphertext{Node: x, Recipient: r})
				jobSecret = append(jobSecret, ps[i])
			}
		}
		if err := sealAll(nt, ctx, LabelTreePath, jobs, jobSecret, spec.FetchKeys); err != nil {
			return nil, nil, nil, err
		}
		c.Path = &PathUpdate{Op: p.Op, Leaf: p.Leaf, LeafKey: p.LeafKey, PublicKeys: pubs, Ciphertexts: jobs}
		finishPath(nt, committer, dp, keys, recips)
		changed = append(changed, LeafNode(p.Leaf))
	}
	nodes := rekeySet(nt, spec)
	if c.Path != nil && len(nodes) > 0 {
		return nil, nil, nil, errorf(RuleShape, "a path update cannot be combined with a rekey, bulk changes or untrusted admins' refresh; use Removes with Untrusted")
	}
	if len(nodes) > 0 {
		rk := make([]RekeyNode, len(nodes))
		ns := make([][]byte, len(nodes))
		err := parallel(len(nodes), func(i int) error {
			ns[i] = make([]byte, SecretSize)
			rand.Read(ns[i])
			k, err := nodeKey(ns[i])
			if err != nil {
				return err
			}
			rk[i] = RekeyNode{Node: nodes[i], PublicKey: k.PublicKey().Bytes()}
			return nil
		})
		if err != nil {
			return nil, nil, nil, err
		}
		keys := make([]keyed, len(rk))
		for i := range rk {
			keys[i] = known(rk[i].PublicKey)
		}
		recips := rekeyRecipients(nt, rk, keys)
		var jobs []Ciphertext
		var jobSecret [][]byte
		var owner []int
		for i, r := range rk {
			secrets[r.Node] = ns[i]
			for _, x := range recips[i] {
				jobs = append(jobs, Ciphertext{Node: r.Node, Recipient: x})
				jobSecret = append(jobSecret, ns[i])
				owner = append(owner, i)
			}
		}
		if err := sealAll(nt, ctx, LabelTreeRekey, jobs, jobSecret, spec.FetchKeys); err != nil {
			return nil, nil, nil, err
		}
		for j, ct := range jobs {
			rk[owner[j]].Ciphertexts = append(rk[owner[j]].Ciphertexts, ct)
		}
		finishRekey(nt, committer, rk, recips)
		c.Rekey = rk
		changed = append(changed, nodes...)
	}
	if c.Path == nil && len(c.Rekey) == 0 {
		return nil, nil, nil, errorf(RuleShape, "the commit refreshes no node, so there is no new root secret")
	}
	if err := checkTaint(nt, spec.Untrusted); err != nil {
		return nil, nil, nil, err
	}
	nt.rehash(changed)
	c.Leaves = nt.n
	c.TreeHash = nt.Hash()
	return c, nt, secrets, nil
}

// rekeySet is the spec's nodes, the direct paths of removed and added leaves and every
// node an untrusted admin taints, closed under taking parents, in rekey
// order.
func rekeySet(t *Tree, spec Spec) []uint32 {
	set := map[uint32]bool{}
	add := func(x uint32) {
		for !set[x] {
			set[x] = true
			if x == Root(t.n) {
				return
			}
			x = Parent(x, t.n)
		}
	}
	for _, x := range spec.Rekey {
		if x < Width(t.n) && Level(x) > 0 {
			add(x)
		}
	}
	leaves := slices.Clone(spec.Removes)
	for _, a := range spec.Adds {
		leaves = append(leaves, a.Leaf)
	}
	for _, l := range leaves {
		if dp := DirectPath(LeafNode(l), t.n); len(dp) > 0 {
			add(dp[0])
		}
	}
	if len(spec.Untrusted) > 0 {
		for x := uint32(1); x < Width(t.n); x += 2 {
			for _, a := range t.at(x).taint {
				if slices.Contains(spec.Untrusted, a) {
					add(x)
				}
			}
		}
	}
	out := make([]uint32, 0, len(set))
	for x := range set {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b uint32) int {
		if rekeyBefore(a, b) {
			return -1
		}
		return 1
	})
	return out
}

// sealAll seals jobSecret[i] for jobs[i] on every core, first fetching
// the recipients' keys that t holds by digest only.
func sealAll(t *Tree, ctx Context, label string, jobs []Ciphertext, jobSecret [][]byte, fetch FetchKeys) error {
	recips := make([]uint32, len(jobs))
	for i, j := range jobs {
		recips[i] = j.Recipient
	}
	if err := fillKeys(t, recips, fetch); err != nil {
		return err
	}
	return parallel(len(jobs), func(i int) error {
		ct, err := seal(label, ctx, jobs[i].Node, jobs[i].Recipient, t.at(jobs[i].Recipient).pub, jobSecret[i])
		jobs[i].Sealed = ct
		return err
	})
}

// parallel runs f(0..n-1) on GOMAXPROCS goroutines and returns the first
// error.
func parallel(n int, f func(int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}
