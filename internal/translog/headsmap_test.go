package translog_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

var update = flag.Bool("update", false, "regenerate testdata/headsmap")

// rebuilt is the root of a tree built from scratch by appending leaves with
// tlog, the reference the in-place updates must agree with.
func rebuilt(t *testing.T, leaves [][]byte) tlog.Hash {
	t.Helper()
	m := map[int64]tlog.Hash{}
	r := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = m[x]
		}
		return out, nil
	})
	for n, l := range leaves {
		hs, err := tlog.StoredHashes(int64(n), l, r)
		if err != nil {
			t.Fatal(err)
		}
		for j, h := range hs {
			m[tlog.StoredHashIndex(0, int64(n))+int64(j)] = h
		}
	}
	root, err := tlog.TreeHash(int64(len(leaves)), r)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func groupID(i int) coffer.GroupID {
	var g coffer.GroupID
	g[0], g[1], g[15] = byte(i>>8)|0x40, byte(i), 1
	return g
}

// TestMapTreeMatchesRebuild replaces and appends entries at random and
// checks after every step that the root equals a from-scratch tree of the
// same leaves, and that every entry proves.
func TestMapTreeMatchesRebuild(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	m := translog.NewMemoryMap()
	var keys []translog.MapKey
	var leaves [][]byte
	for step := range 400 {
		var e translog.MapEntry
		if len(keys) == 0 || rng.IntN(3) == 0 {
			e = translog.MapEntry{Key: translog.GroupKey(groupID(len(keys) + 1)), Counter: 1, LogIndex: int64(step)}
			keys = append(keys, e.Key)
			leaves = append(leaves, nil)
		} else {
			k := rng.IntN(len(keys))
			old, _ := m.Entry(keys[k])
			e = translog.MapEntry{Key: keys[k], Counter: old.Counter + 1, LogIndex: int64(step)}
		}
		e.Hash[0] = byte(step)
		if err := m.Put(e); err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			if k == e.Key {
				leaves[i] = e.Marshal()
			}
		}
		root, err := m.Root()
		if err != nil {
			t.Fatal(err)
		}
		if want := rebuilt(t, leaves); root != want || m.Size() != int64(len(leaves)) {
			t.Fatalf("step %d: root %x size %d, a rebuilt tree has %x size %d", step, root, m.Size(), want, len(leaves))
		}
		if step%37 == 0 {
			cp := translog.Checkpoint{Size: int64(step) + 1, MapSize: m.Size(), MapRoot: root}
			for _, k := range keys {
				p, err := m.Prove(k)
				if err != nil {
					t.Fatal(err)
				}
				got, err := translog.CheckMapEntry(cp, k, p)
				if want, _ := m.Entry(k); err != nil || got != want {
					t.Fatalf("step %d: %s: %+v, %v", step, k, got, err)
				}
			}
		}
	}
}

func TestMapEntryEncoding(t *testing.T) {
	g := groupID(7)
	var r coffer.ResourceID
	r[3] = 9
	a := coffer.NewAccountID()
	for _, e := range []translog.MapEntry{
		{Key: translog.AccountKey(a), Counter: 1, LogIndex: 3},
		{Key: translog.GroupKey(g), Counter: 12, Hash: [32]byte{1}, LogIndex: 1 << 40},
		{Key: translog.ResourceKey(g, r), Counter: 2, Hash: [32]byte{2}, LogIndex: 5, Deleted: true},
	} {
		b := e.Marshal()
		if len(b) != translog.MapEntrySize {
			t.Fatalf("%s: %d bytes, want %d", e.Key, len(b), translog.MapEntrySize)
		}
		got, err := translog.ParseMapEntry(b)
		if err != nil || got != e {
			t.Fatalf("%s: round trip %+v, %v", e.Key, got, err)
		}
		// Every single-bit change either fails to parse or parses to a
		// different entry: one entry has one encoding.
		for i := range b {
			for bit := range 8 {
				c := bytes.Clone(b)
				c[i] ^= 1 << bit
				if got, err := translog.ParseMapEntry(c); err == nil && got == e {
					t.Fatalf("%s: byte %d bit %d changed parses to the same entry", e.Key, i, bit)
				}
			}
		}
	}
	bad := map[string]translog.MapEntry{
		"group entry naming an account":   {Key: translog.MapKey{Kind: translog.MapGroup, Group: g, Account: a}},
		"account entry marked deleted":    {Key: translog.AccountKey(a), Deleted: true},
		"group entry marked deleted":      {Key: translog.GroupKey(g), Deleted: true},
		"resource entry without resource": {Key: translog.MapKey{Kind: translog.MapResource, Group: g}},
		"unknown kind":                    {Key: translog.MapKey{Kind: 9, Group: g}},
	}
	for name, e := range bad {
		if _, err := translog.ParseMapEntry(e.Marshal()); err == nil {
			t.Errorf("%s parses", name)
		}
	}
}

// TestLeafUpdateRules: the map refuses a group commit that is not the
// next seq, and counts identity records.
func TestLeafUpdateRules(t *testing.T) {
	g := groupID(1)
	u := translog.MapUpdate{Key: translog.GroupKey(g), Seq: 2, LogIndex: 4}
	if _, err := u.Apply(nil); err == nil {
		t.Fatal("a group's first map entry at seq 2 is accepted")
	}
	prev := translog.MapEntry{Key: translog.GroupKey(g), Counter: 2}
	for _, seq := range []uint64{1, 2, 4} {
		u.Seq = seq
		if _, err := u.Apply(&prev); err == nil {
			t.Errorf("seq %d after head 2 is accepted", seq)
		}
	}
	u.Seq = 3
	if e, err := u.Apply(&prev); err != nil || e.Counter != 3 || e.LogIndex != 4 {
		t.Fatalf("seq 3 after head 2: %+v, %v", e, err)
	}
	a := translog.MapUpdate{Key: translog.AccountKey(coffer.NewAccountID())}
	e1, _ := a.Apply(nil)
	e2, _ := a.Apply(&e1)
	if e1.Counter != 1 || e2.Counter != 2 {
		t.Fatalf("identity counters %d, %d", e1.Counter, e2.Counter)
	}
}

// The heads-map proof vectors live in testdata/headsmap, one case per file,
// as "name: value" lines:
//
//	expect: success | refused
//	comment: what the case models
//	log_size, map_size: the checkpoint's log and map sizes
//	map_root: hex of the checkpoint's map root
//	key: account <hex> | group <hex> | resource <group hex> <resource hex>
//	index: the entry's claimed map index
//	entry: hex of the entry encoding
//	proof: hex of one proof hash; repeated
//
// A client checks them with CheckMapEntry. -update regenerates them.
const mapVectorDir = "../../testdata/headsmap"

type mapVector struct {
	expect, comment string
	cp              translog.Checkpoint
	key             translog.MapKey
	proof           translog.MapProof
}

func TestMapVectors(t *testing.T) {
	if *update {
		writeMapVectors(t)
	}
	files, _ := filepath.Glob(filepath.Join(mapVectorDir, "*.txt"))
	if len(files) < 10 {
		t.Fatal("missing heads-map vectors; run go test -run TestMapVectors -update")
	}
	seen := map[string]bool{}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			v := readMapVector(t, f)
			seen[v.expect] = true
			_, err := translog.CheckMapEntry(v.cp, v.key, v.proof)
			got := "success"
			if err != nil {
				got = "refused"
			}
			if got != v.expect {
				t.Fatalf("outcome %q (%v), want %q", got, err, v.expect)
			}
		})
	}
	if !seen["success"] || !seen["refused"] {
		t.Error("the vectors need both outcomes")
	}
}

func keyText(k translog.MapKey) string {
	switch k.Kind {
	case translog.MapAccount:
		return "account " + hex.EncodeToString(k.Account[:])
	case translog.MapGroup:
		return "group " + hex.EncodeToString(k.Group[:])
	case translog.MapAccountChain:
		return "account-chain " + hex.EncodeToString(k.Account[:])
	}
	return "resource " + hex.EncodeToString(k.Group[:]) + " " + hex.EncodeToString(k.Resource[:])
}

func writeMapVectors(t *testing.T) {
	m := translog.NewMemoryMap()
	acct := coffer.AccountID{0x11, 1}
	g1, g2 := groupID(1), groupID(2)
	res := coffer.ResourceID{0x22, 2}
	put := func(e translog.MapEntry) {
		if err := m.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	put(translog.MapEntry{Key: translog.AccountKey(acct), Counter: 1, Hash: [32]byte{0xa1}, LogIndex: 0})
	put(translog.MapEntry{Key: translog.GroupKey(g1), Counter: 1, Hash: [32]byte{0xb1}, LogIndex: 1})
	put(translog.MapEntry{Key: translog.GroupKey(g2), Counter: 1, Hash: [32]byte{0xc1}, LogIndex: 2})
	put(translog.MapEntry{Key: translog.ResourceKey(g1, res), Counter: 1, Hash: [32]byte{0xd1}, LogIndex: 3})
	oldG1, _ := m.Prove(translog.GroupKey(g1))
	oldRoot, _ := m.Root()
	oldCP := translog.Checkpoint{Size: 4, MapSize: m.Size(), MapRoot: oldRoot}
	put(translog.MapEntry{Key: translog.GroupKey(g1), Counter: 2, Hash: [32]byte{0xb2}, LogIndex: 4})
	put(translog.MapEntry{Key: translog.ResourceKey(g1, res), Counter: 1, Hash: [32]byte{0xd2}, LogIndex: 5, Deleted: true})
	for i := range 3 {
		put(translog.MapEntry{Key: translog.GroupKey(groupID(10 + i)), Counter: 1, LogIndex: int64(6 + i)})
	}
	root, _ := m.Root()
	cp := translog.Checkpoint{Size: 9, MapSize: m.Size(), MapRoot: root}
	prove := func(k translog.MapKey) translog.MapProof {
		p, err := m.Prove(k)
		if err != nil || p.Index < 0 {
			t.Fatal(k, err)
		}
		return p
	}
	g1p := prove(translog.GroupKey(g1))
	vs := map[string]mapVector{}
	ok := func(name, comment string, k translog.MapKey) {
		vs[name] = mapVector{expect: "success", comment: comment, cp: cp, key: k, proof: prove(k)}
	}
	ok("good-account", "an account's identity record", translog.AccountKey(acct))
	ok("good-group-after-update", "a group whose head moved to seq 2: its leaf was replaced in place", translog.GroupKey(g1))
	ok("good-group-untouched", "a group appended before another's update", translog.GroupKey(g2))
	ok("good-resource-tombstone", "a deleted resource: the entry proves, and says deleted", translog.ResourceKey(g1, res))
	ok("good-last-entry", "the last entry of an unbalanced map", translog.GroupKey(groupID(12)))
	vs["good-old-checkpoint"] = mapVector{expect: "success", comment: "the old head proves in the map of the old checkpoint", cp: oldCP, key: translog.GroupKey(g1), proof: oldG1}
	vs["stale-entry-new-checkpoint"] = mapVector{expect: "refused", comment: "the server shows the head from before an update against the new checkpoint", cp: cp, key: translog.GroupKey(g1), proof: translog.MapProof{Index: g1p.Index, Entry: oldG1.Entry, Proof: g1p.Proof}}
	vs["stale-proof-new-checkpoint"] = mapVector{expect: "refused", comment: "an old entry with its old proof, checked against the new checkpoint", cp: cp, key: translog.GroupKey(g1), proof: oldG1}
	vs["other-key"] = mapVector{expect: "refused", comment: "a valid proof of another group's entry", cp: cp, key: translog.GroupKey(g1), proof: prove(translog.GroupKey(g2))}
	p := prove(translog.GroupKey(g2))
	p.Index = g1p.Index
	vs["wrong-index"] = mapVector{expect: "refused", comment: "a valid entry and proof with the index of another entry", cp: cp, key: translog.GroupKey(g2), proof: p}
	p = prove(translog.GroupKey(g2))
	p.Index = cp.MapSize
	vs["index-beyond-map"] = mapVector{expect: "refused", comment: "an index outside the map", cp: cp, key: translog.GroupKey(g2), proof: p}
	p = prove(translog.GroupKey(g2))
	p.Proof = p.Proof[:len(p.Proof)-1]
	vs["truncated-proof"] = mapVector{expect: "refused", comment: "the proof's last hash dropped", cp: cp, key: translog.GroupKey(g2), proof: p}
	p = prove(translog.GroupKey(g2))
	p.Proof = append(p.Proof, tlog.Hash{7})
	vs["extended-proof"] = mapVector{expect: "refused", comment: "a hash appended to the proof", cp: cp, key: translog.GroupKey(g2), proof: p}
	p = prove(translog.GroupKey(g2))
	p.Proof[0][0] ^= 1
	vs["forged-node"] = mapVector{expect: "refused", comment: "one proof hash changed", cp: cp, key: translog.GroupKey(g2), proof: p}
	p = prove(translog.GroupKey(g2))
	p.Entry = bytes.Clone(p.Entry)
	p.Entry[len(p.Entry)-2] ^= 1
	vs["tampered-entry"] = mapVector{expect: "refused", comment: "the entry's log index changed", cp: cp, key: translog.GroupKey(g2), proof: p}
	// Suite v2 account chains, in a map of their own so that the vectors
	// above keep their bytes: an account with a chain has both entries.
	cm := translog.NewMemoryMap()
	for _, e := range []translog.MapEntry{
		{Key: translog.AccountChainKey(acct), Counter: 1, Hash: [32]byte{0xe1}, LogIndex: 0},
		{Key: translog.AccountKey(acct), Counter: 1, Hash: [32]byte{0xa1}, LogIndex: 1},
		{Key: translog.AccountChainKey(acct), Counter: 2, Hash: [32]byte{0xe2}, LogIndex: 2},
	} {
		if err := cm.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	croot, _ := cm.Root()
	ccp := translog.Checkpoint{Size: 3, MapSize: cm.Size(), MapRoot: croot}
	chainProof, _ := cm.Prove(translog.AccountChainKey(acct))
	vs["good-account-chain"] = mapVector{expect: "success", comment: "the head (seq 2) of a suite v2 account's chain", cp: ccp, key: translog.AccountChainKey(acct), proof: chainProof}
	vs["account-chain-as-identity"] = mapVector{expect: "refused", comment: "an account's chain head shown as its identity record", cp: ccp, key: translog.AccountKey(acct), proof: chainProof}
	identityProof, _ := cm.Prove(translog.AccountKey(acct))
	vs["identity-as-account-chain"] = mapVector{expect: "refused", comment: "an account's identity record shown as its chain head", cp: ccp, key: translog.AccountChainKey(acct), proof: identityProof}
	p = chainProof
	p.Entry = bytes.Clone(p.Entry)
	p.Entry[len(p.Entry)-1] = 1
	vs["account-chain-deleted"] = mapVector{expect: "refused", comment: "an account-chain entry flagged deleted, which only resources may be", cp: ccp, key: translog.AccountChainKey(acct), proof: p}
	small := cp
	small.Size = 2
	vs["entry-beyond-log"] = mapVector{expect: "refused", comment: "an entry naming a log leaf beyond the checkpoint's log", cp: small, key: translog.GroupKey(g2), proof: prove(translog.GroupKey(g2))}
	if err := os.MkdirAll(mapVectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(mapVectorDir, "*.txt"))
	for _, f := range old {
		os.Remove(f)
	}
	for name, v := range vs {
		var b strings.Builder
		fmt.Fprintf(&b, "expect: %s\ncomment: %s\nlog_size: %d\nmap_size: %d\nmap_root: %x\nkey: %s\nindex: %d\nentry: %x\n",
			v.expect, v.comment, v.cp.Size, v.cp.MapSize, v.cp.MapRoot[:], keyText(v.key), v.proof.Index, v.proof.Entry)
		for _, h := range v.proof.Proof {
			fmt.Fprintf(&b, "proof: %x\n", h[:])
		}
		if err := os.WriteFile(filepath.Join(mapVectorDir, name+".txt"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readMapVector(t *testing.T, path string) mapVector {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var v mapVector
	hexArg := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return b
	}
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return n
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, _ := strings.Cut(sc.Text(), ": ")
		switch name {
		case "expect":
			v.expect = val
		case "comment":
			v.comment = val
		case "log_size":
			v.cp.Size = num(val)
		case "map_size":
			v.cp.MapSize = num(val)
		case "map_root":
			copy(v.cp.MapRoot[:], hexArg(val))
		case "key":
			f := strings.Fields(val)
			switch f[0] {
			case "account":
				copy(v.key.Account[:], hexArg(f[1]))
				v.key.Kind = translog.MapAccount
			case "group":
				copy(v.key.Group[:], hexArg(f[1]))
				v.key.Kind = translog.MapGroup
			case "account-chain":
				copy(v.key.Account[:], hexArg(f[1]))
				v.key.Kind = translog.MapAccountChain
			case "resource":
				copy(v.key.Group[:], hexArg(f[1]))
				copy(v.key.Resource[:], hexArg(f[2]))
				v.key.Kind = translog.MapResource
			}
		case "index":
			v.proof.Index = num(val)
		case "entry":
			v.proof.Entry = hexArg(val)
		case "proof":
			var h tlog.Hash
			copy(h[:], hexArg(val))
			v.proof.Proof = append(v.proof.Proof, h)
		default:
			t.Fatalf("%s: unknown line %q", path, name)
		}
	}
	return v
}
