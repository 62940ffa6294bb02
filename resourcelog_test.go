package coffer_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// The resource log vectors: testdata/resourcelog, one case per file. Each
// is a log in order, as hex leaves (commit leaves and resource leaves of one
// group) after an "expect:" and a "comment:" line and a blank line. A
// replay applies commits with coffer.VerifyChain and checks each resource
// leaf with translog.ResourceReplay against the group state at that point;
// expect is "success" when every leaf passes, or the Rule of the first leaf
// that fails.
const resourceLogVectorDir = "testdata/resourcelog"

// logBuilder writes a log of one group: commits and resource leaves in
// order.
type logBuilder struct {
	chain   *chainBuilder
	leaves  [][]byte
	headers map[coffer.ResourceID][]byte // the last header body of each resource
}

func newLogBuilder(tb testing.TB, p chainCast) *logBuilder {
	b := &logBuilder{chain: p.base(tb), headers: map[coffer.ResourceID][]byte{}}
	b.leaves = append(b.leaves, translog.CommitLeaf(b.chain.group, 1, b.chain.commits[0]))
	return b
}

func (b *logBuilder) commit(author *chainMember, ops ...coffer.Op) *logBuilder {
	b.chain.Do(author, ops...)
	n := len(b.chain.commits)
	b.leaves = append(b.leaves, translog.CommitLeaf(b.chain.group, uint64(n), b.chain.commits[n-1]))
	return b
}

func testResourceID(n byte) coffer.ResourceID { return coffer.ResourceID{0x5e, 15: n} }

// version logs a version of resource n by author under the head's epoch,
// chained to the resource's last header; edit may change the header first.
func (b *logBuilder) version(author *chainMember, n byte, version uint64, edit func(*coffer.ResourceHeader)) *logBuilder {
	id := testResourceID(n)
	h := &coffer.ResourceHeader{Resource: id, Group: b.chain.group, Epoch: b.chain.head.Epoch, Author: author.ID,
		Version: version, Chunks: 1, ContentSize: 1000, Created: 1_795_000_000_000}
	if prev, ok := b.headers[id]; ok && version > 1 {
		h.Prev = coffer.HeaderHash(prev)
	}
	if edit != nil {
		edit(h)
	}
	body := h.Marshal()
	b.headers[id] = body
	b.leaves = append(b.leaves, translog.ResourceVersionLeaf(coffer.LoggedVersionOf(h, body)))
	return b
}

// del logs deleter's delete of version of resource n, signed with key.
func (b *logBuilder) del(deleter *chainMember, n byte, version uint64, key ed25519.PrivateKey) *logBuilder {
	sd := coffer.SignResourceDelete(&coffer.ResourceDelete{Group: b.chain.group, Resource: testResourceID(n), Version: version, Deleter: deleter.ID}, key)
	b.leaves = append(b.leaves, translog.ResourceDeleteLeaf(sd))
	return b
}

type resourceLogCase struct {
	name, comment, rule string
	build               func(testing.TB, chainCast) *logBuilder
}

var resourceLogCases = []resourceLogCase{
	{"success-lifecycle", "create, replace by the author, replace by an admin, delete by an admin; a version logged before its author's removal stays valid", "",
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).
				version(p.writer, 1, 1, nil).version(p.writer, 1, 2, nil).
				version(p.writer, 2, 1, nil).
				commit(p.admin, removeOp(p.writer), rotateOp).
				version(p.admin, 1, 3, nil).del(p.admin, 1, 3, p.admin.Key).
				del(p.owner, 2, 1, p.owner.Key)
		}},
	{"success-deleted-by-author", "a writer deletes its own resource", "",
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).del(p.writer, 1, 1, p.writer.Key)
		}},
	{"version-skipped", "version 3 logged after version 1", coffer.RuleResourceVersion,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).version(p.writer, 1, 3, nil)
		}},
	{"version-repeated", "a second version 1: the server replaces version k with another signed version k", coffer.RuleResourceVersion,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).version(p.writer, 1, 1, func(h *coffer.ResourceHeader) { h.Created++ })
		}},
	{"version-first-is-two", "the first leaf of a resource is version 2", coffer.RuleResourceVersion,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 2, func(h *coffer.ResourceHeader) { h.Prev = [32]byte{1} })
		}},
	{"prev-wrong", "version 2 names another header than version 1's", coffer.RuleResourcePrev,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).version(p.writer, 1, 2, func(h *coffer.ResourceHeader) { h.Prev[0] ^= 1 })
		}},
	{"backdated-old-epoch", "a removed writer's version under the epoch it still holds the key of, logged after the removal", coffer.RuleResourceEpoch,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).commit(p.admin, removeOp(p.writer), rotateOp).
				version(p.writer, 1, 1, func(h *coffer.ResourceHeader) { h.Epoch = 1 })
		}},
	{"backdated-removed-writer", "a removed writer's version under the current epoch, logged after the removal", coffer.RuleResourceAuthor,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).commit(p.admin, removeOp(p.writer), rotateOp).version(p.writer, 1, 1, nil)
		}},
	{"demoted-writer", "a writer demoted to reader writes after the demotion", coffer.RuleResourceAuthor,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).commit(p.admin, setRoleOp(p.writer, coffer.RoleReader), rotateOp).version(p.writer, 1, 1, nil)
		}},
	{"author-reader", "a reader writes", coffer.RuleResourceAuthor,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.reader, 1, 1, nil)
		}},
	{"author-not-yet-member", "a version by an account added only later in the log", coffer.RuleResourceAuthor,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.m5, 1, 1, nil).commit(p.owner, addOp(p.m5, coffer.RoleWriter))
		}},
	{"replace-by-other-writer", "a writer replaces another writer's resource", coffer.RuleResourceAuthor,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).commit(p.owner, addOp(p.m5, coffer.RoleWriter)).
				version(p.writer, 1, 1, nil).version(p.m5, 1, 2, nil)
		}},
	{"delete-by-other-writer", "a writer deletes another writer's resource", coffer.RuleResourceAuthor,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).commit(p.owner, addOp(p.m5, coffer.RoleWriter)).
				version(p.writer, 1, 1, nil).del(p.m5, 1, 1, p.m5.Key)
		}},
	{"delete-by-reader", "a reader deletes", coffer.RuleResourceAuthor,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).del(p.reader, 1, 1, p.reader.Key)
		}},
	{"delete-by-removed-author", "the author deletes after its removal", coffer.RuleResourceAuthor,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).commit(p.admin, removeOp(p.writer), rotateOp).
				del(p.writer, 1, 1, p.writer.Key)
		}},
	{"delete-forged-signature", "a delete in the admin's name signed by the server", coffer.RuleDeleteSignature,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).del(p.admin, 1, 1, p.m6.Key)
		}},
	{"delete-old-version", "a delete of version 1 after version 2", coffer.RuleResourceDeleted,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).version(p.writer, 1, 2, nil).del(p.writer, 1, 1, p.writer.Key)
		}},
	{"delete-missing", "a delete of a resource the log never had", coffer.RuleResourceDeleted,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).del(p.admin, 1, 1, p.admin.Key)
		}},
	{"delete-twice", "a second tombstone", coffer.RuleResourceDeleted,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).del(p.writer, 1, 1, p.writer.Key).del(p.admin, 1, 1, p.admin.Key)
		}},
	{"version-after-delete", "a version after the tombstone: a deleted resource stays deleted", coffer.RuleResourceDeleted,
		func(tb testing.TB, p chainCast) *logBuilder {
			return newLogBuilder(tb, p).version(p.writer, 1, 1, nil).del(p.writer, 1, 1, p.writer.Key).version(p.writer, 1, 2, nil)
		}},
	{"recreated-after-delete", "version 1 again after the tombstone: the server resurrects an old header", coffer.RuleResourceDeleted,
		func(tb testing.TB, p chainCast) *logBuilder {
			b := newLogBuilder(tb, p).version(p.writer, 1, 1, nil)
			v1 := b.leaves[len(b.leaves)-1]
			b.del(p.writer, 1, 1, p.writer.Key)
			b.leaves = append(b.leaves, v1)
			return b
		}},
}

func encodeResourceLogVector(tc resourceLogCase, b *logBuilder) []byte {
	var buf bytes.Buffer
	expect := tc.rule
	if expect == "" {
		expect = "success"
	}
	fmt.Fprintf(&buf, "expect: %s\ncomment: %s\n\n", expect, tc.comment)
	for _, l := range b.leaves {
		fmt.Fprintf(&buf, "%x\n", l)
	}
	return buf.Bytes()
}

// replayResourceLog replays leaves and returns the rule of the first leaf
// refused ("" if none) and its index.
func replayResourceLog(tb testing.TB, leaves [][]byte) (string, int) {
	tb.Helper()
	states := map[coffer.GroupID]*coffer.GroupState{}
	var replay translog.ResourceReplay
	for i, raw := range leaves {
		l, err := translog.ParseLeaf(raw)
		if err != nil {
			tb.Fatalf("leaf %d: %v", i, err)
		}
		switch l.Kind {
		case translog.KindCommit:
			s, err := coffer.VerifyChain(states[l.Group], []coffer.SignedCommit{l.Commit})
			if err != nil {
				tb.Fatalf("leaf %d: %v", i, err)
			}
			states[l.Group] = s
		default:
			if err := replay.Apply(l, states[l.Group], nil); err != nil {
				var ce *coffer.Error
				if !errors.As(err, &ce) || ce.Rule == "" {
					tb.Fatalf("leaf %d: %v is not a rule error", i, err)
				}
				return ce.Rule, i
			}
		}
	}
	return "", -1
}

func TestResourceLogVectors(t *testing.T) {
	p := MustChainCast(t)
	want := map[string][]byte{}
	for _, tc := range resourceLogCases {
		want[tc.name+".txt"] = encodeResourceLogVector(tc, tc.build(t, p))
	}
	if updateVectors() {
		if err := os.RemoveAll(resourceLogVectorDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(resourceLogVectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range want {
			if err := os.WriteFile(filepath.Join(resourceLogVectorDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(resourceLogVectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no vectors in %s: run go test -run TestResourceLogVectors -update", resourceLogVectorDir)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if w, ok := want[name]; !ok {
				t.Errorf("%s has no case in resourceLogCases", name)
			} else if !bytes.Equal(data, w) {
				t.Errorf("%s differs from what its case generates: run go test -run TestResourceLogVectors -update", name)
			}
			header := map[string]string{}
			var leaves [][]byte
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 1<<20)
			inHeader := true
			for sc.Scan() {
				line := sc.Text()
				if inHeader {
					if line == "" {
						inHeader = false
						continue
					}
					k, v, _ := strings.Cut(line, ": ")
					header[k] = v
					continue
				}
				leaf, err := hex.DecodeString(line)
				if err != nil {
					t.Fatal(err)
				}
				leaves = append(leaves, leaf)
			}
			rule, at := replayResourceLog(t, leaves)
			if rule == "" {
				rule = "success"
			}
			if rule != header["expect"] {
				t.Fatalf("replay: %q at leaf %d, want %q", rule, at, header["expect"])
			}
		})
	}
	for name := range want {
		if _, err := os.Stat(filepath.Join(resourceLogVectorDir, name)); err != nil {
			t.Errorf("case %s has no vector file: run go test -run TestResourceLogVectors -update", name)
		}
	}
}

// The leaves round-trip, and every single-byte change of a valid one is
// refused or parses to another leaf (never to the same one).
func TestResourceLeafEncoding(t *testing.T) {
	p := MustChainCast(t)
	b := newLogBuilder(t, p).version(p.writer, 1, 1, nil).del(p.writer, 1, 1, p.writer.Key)
	for _, raw := range b.leaves[1:] {
		l, err := translog.ParseLeaf(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(l.Marshal(), raw) {
			t.Fatalf("%s leaf does not round-trip", l.Kind)
		}
		for _, cut := range []int{1, len(raw) - 1} {
			if _, err := translog.ParseLeaf(raw[:cut]); err == nil {
				t.Errorf("%s leaf cut to %d bytes parses", l.Kind, cut)
			}
		}
		if _, err := translog.ParseLeaf(append(bytes.Clone(raw), 0)); err == nil {
			t.Errorf("%s leaf with a trailing byte parses", l.Kind)
		}
	}
}

func TestResourceDeleteParse(t *testing.T) {
	d := &coffer.ResourceDelete{Suite: coffer.ResourceDeleteSuite, Group: coffer.NewGroupID(), Resource: coffer.NewResourceID(), Version: 3, Deleter: coffer.NewAccountID()}
	good := d.Marshal()
	if got, err := coffer.ParseResourceDelete(good); err != nil || *got != *d {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	d2 := *d
	d2.Suite = coffer.ResourceDeleteSuiteHybrid
	if got, err := coffer.ParseResourceDelete(d2.Marshal()); err != nil || *got != d2 {
		t.Fatalf("suite v2 round trip: %+v, %v", got, err)
	}
	bad := map[string][]byte{
		"short":     good[:len(good)-1],
		"long":      append(bytes.Clone(good), 0),
		"suite 0":   append([]byte{0}, good[1:]...),
		"suite 3":   append([]byte{3}, good[1:]...),
		"version 0": (&coffer.ResourceDelete{Group: d.Group, Resource: d.Resource, Deleter: d.Deleter}).Marshal(),
		"zero id":   (&coffer.ResourceDelete{Group: d.Group, Version: 1, Deleter: d.Deleter}).Marshal(),
	}
	for name, data := range bad {
		if _, err := coffer.ParseResourceDelete(data); coffer.ErrorCode(err) != coffer.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

// A header's Prev is set exactly when it replaces a version.
func TestResourceHeaderPrev(t *testing.T) {
	h := MustResourceHeader(t)
	h.Prev = [32]byte{1}
	if _, err := coffer.ParseResourceHeader(h.Marshal()); err == nil {
		t.Error("version 1 with a Prev parses")
	}
	h.Version, h.Prev = 2, [32]byte{}
	if _, err := coffer.ParseResourceHeader(h.Marshal()); err == nil {
		t.Error("version 2 without a Prev parses")
	}
	h.Prev = [32]byte{1}
	got, err := coffer.ParseResourceHeader(h.Marshal())
	if err != nil || got.Prev != h.Prev {
		t.Fatalf("version 2 with a Prev: %+v, %v", got, err)
	}
}
