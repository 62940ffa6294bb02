package witness_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
)

// harness is a witness under test, served over HTTP, and the log it
// witnesses.
type harness struct {
	tb    testing.TB
	log   *testLog
	dir   string
	skey  string
	vkey  string
	w     *witness.Witness
	srv   *httptest.Server
	clock time.Time
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	skey, vkey, err := translog.GenerateWitnessKey("witness.test")
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{tb: tb, log: newTestLog(tb), dir: tb.TempDir(), skey: skey, vkey: vkey}
	h.clock = time.Unix(h.log.clock, 0)
	h.open()
	return h
}

func (h *harness) open() {
	h.tb.Helper()
	if h.srv != nil {
		h.srv.Close()
	}
	if h.w != nil {
		h.w.Close()
	}
	w, err := witness.Open(witness.Config{LogKey: h.log.signer.VerifierKey(), LogURL: h.log.srv.URL, SignerKey: h.skey,
		StateDir: h.dir, Now: func() time.Time { return h.clock }})
	if err != nil {
		h.tb.Fatal(err)
	}
	h.w = w
	h.srv = httptest.NewServer(w.Handler())
	h.tb.Cleanup(func() { h.srv.Close(); h.w.Close() })
}

func (h *harness) push(old int64, proof []tlog.Hash, signed string) (string, error) {
	return witness.Push(context.Background(), http.DefaultClient, h.srv.URL, old, proof, signed)
}

// pushHonest pushes the honest checkpoint of the whole log from old and
// requires a valid cosignature.
func (h *harness) pushHonest(old int64) string {
	h.tb.Helper()
	n := h.log.size()
	signed := h.log.sign(h.log.honest(n))
	line, err := h.push(old, h.log.proof(old, n), signed)
	if err != nil {
		h.tb.Fatalf("honest checkpoint of size %d from %d: %v", n, old, err)
	}
	h.checkCosigned(signed, line)
	return signed
}

func (h *harness) checkCosigned(signed, line string) {
	h.tb.Helper()
	lv, _ := translog.NewVerifier(h.log.signer.VerifierKey())
	wv, err := translog.NewWitnessVerifier(h.vkey)
	if err != nil {
		h.tb.Fatal(err)
	}
	c, err := translog.OpenCosigned(translog.AddCosignatures(signed, line), lv, []*translog.WitnessVerifier{wv})
	if err != nil {
		h.tb.Fatalf("cosignature: %v", err)
	}
	if _, ok := c.Witnessed[wv.Name()]; !ok {
		h.tb.Fatalf("the answer %q is not a cosignature by the witness", line)
	}
}

func wantRule(tb testing.TB, err error, rule witness.Rule) {
	tb.Helper()
	var re *witness.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusUnprocessableEntity || re.Rule != rule {
		tb.Fatalf("want a 422 refusal %q, got %v", rule, err)
	}
}

func wantStatus(tb testing.TB, err error, status int) {
	tb.Helper()
	var re *witness.RemoteError
	if !errors.As(err, &re) || re.Status != status {
		tb.Fatalf("want status %d, got %v", status, err)
	}
}

// base logs alice and bob and alice's group with bob in it, and has the
// witness cosign it.
func base(h *harness) (alice, bob *member, g *chain) {
	h.tb.Helper()
	alice, bob = mustMember(h.tb, 1), mustMember(h.tb, 2)
	g = newChain(1)
	h.log.append(alice.identityLeaf(), bob.identityLeaf(), g.next(alice, alice.add(coffer.RoleOwner)), g.next(alice, bob.add(coffer.RoleWriter)))
	h.pushHonest(0)
	return alice, bob, g
}

func TestHonestLogIsCosignedAndSurvivesRestart(t *testing.T) {
	// Once with the journal alone, once with a snapshot at every
	// cosignature.
	for _, every := range []int64{64 << 20, 1} {
		t.Run(fmt.Sprintf("snapshot every %d bytes", every), func(t *testing.T) {
			witness.SetSnapshotEvery(every)
			defer witness.SetSnapshotEvery(64 << 20)
			testHonestLog(t)
		})
	}
}

func testHonestLog(t *testing.T) {
	h := newHarness(t)
	alice, bob, g := base(h)
	carol := mustMember(t, 3)
	h.log.append(carol.identityLeaf(), g.next(alice, carol.add(coffer.RoleAdmin)))
	h.log.append(g.next(carol, coffer.Op{Kind: coffer.OpRemove, Member: bob.id}, coffer.Op{Kind: coffer.OpRotate}))
	h.pushHonest(4)
	// Same tree, later time: cosigned again.
	h.log.clock++
	h.clock = h.clock.Add(time.Second)
	h.pushHonest(7)
	// A restart resumes from the file.
	h.open()
	if h.w.Size() != 7 {
		t.Fatalf("after a restart the witness is at %d, want 7", h.w.Size())
	}
	dave := mustMember(t, 4)
	h.log.append(dave.identityLeaf(), g.next(carol, dave.add(coffer.RoleWriter)))
	h.pushHonest(7)
}

// TestRefusals: each case is a checkpoint that is honest except for one
// thing, pushed after the base state; the witness must refuse it with the
// named status and rule, keep its state (the honest continuation is then
// cosigned), and cosign nothing.
func TestRefusals(t *testing.T) {
	type result struct {
		status int
		rule   witness.Rule
	}
	cases := []struct {
		name string
		// build appends leaves and/or returns the request to push; a nil
		// signed means "the honest checkpoint of the whole log".
		build func(h *harness, alice, bob *member, g *chain) (old int64, proof []tlog.Hash, signed string)
		want  result
	}{
		{"log signature by another key", func(h *harness, alice, _ *member, g *chain) (int64, []tlog.Hash, string) {
			h.log.append(g.next(alice, mustMember(h.tb, 3).add(coffer.RoleReader)))
			other, _ := translog.NewSigner(h.log.signer.Origin(), logKey(h.tb, 2))
			cp := h.log.honest(h.log.size())
			s, _ := other.Sign(cp)
			return 4, h.log.proof(4, cp.Size), s
		}, result{http.StatusForbidden, ""}},
		{"another log's origin", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			other, _ := translog.NewSigner("coffer.other-log", logKey(h.tb, 1))
			s, _ := other.Sign(h.log.honest(4))
			return 4, nil, s
		}, result{http.StatusNotFound, ""}},
		{"old size is not the witness's", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			h.log.append(mustMember(h.tb, 3).identityLeaf())
			return 3, h.log.proof(3, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusConflict, ""}},
		{"old size beyond the checkpoint", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			return 5, nil, h.log.sign(h.log.honest(4))
		}, result{http.StatusBadRequest, ""}},
		{"consistency proof does not verify", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			h.log.append(mustMember(h.tb, 3).identityLeaf(), mustMember(h.tb, 4).identityLeaf())
			p := h.log.proof(4, 6)
			p[0][0] ^= 1
			return 4, p, h.log.sign(h.log.honest(6))
		}, result{http.StatusUnprocessableEntity, witness.RuleConsistent}},
		{"checkpoint of a rewritten history", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			// A different leaf 3 (and so a different tree): no proof from
			// the cosigned tree reaches it.
			leaves := h.log.snapshot()
			leaves[3] = mustMember(h.tb, 3).identityLeaf()
			h.log.setLeaves(append(leaves, mustMember(h.tb, 4).identityLeaf()))
			return 4, h.log.proof(4, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusUnprocessableEntity, witness.RuleConsistent}},
		{"served leaves do not hash to the root", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			h.log.append(mustMember(h.tb, 3).identityLeaf())
			signed := h.log.sign(h.log.honest(5))
			p := h.log.proof(4, 5)
			leaves := h.log.snapshot()
			leaves[4] = mustMember(h.tb, 4).identityLeaf()
			h.log.setLeaves(leaves)
			return 4, p, signed
		}, result{http.StatusUnprocessableEntity, witness.RuleLeaves}},
		{"malformed leaf", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			h.log.append([]byte("not a leaf"))
			return 4, h.log.proof(4, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusUnprocessableEntity, witness.RuleLeaf}},
		{"identity with a bad self-signature", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			c := mustMember(h.tb, 3)
			id := c.identity().Marshal()
			h.log.append(translog.IdentityLeaf(c.id, id, coffer.Sign(mustMember(h.tb, 4).key, coffer.LabelIdentity, id)))
			return 4, h.log.proof(4, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusUnprocessableEntity, witness.RuleIdentity}},
		{"account registered twice", func(h *harness, alice, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			// Alice's id with carol's handle and keys: a key change suite
			// v1 does not have.
			c := mustMember(h.tb, 3)
			id := c.identity().Marshal()
			h.log.append(translog.IdentityLeaf(alice.id, id, coffer.Sign(c.key, coffer.LabelIdentity, id)))
			return 4, h.log.proof(4, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusUnprocessableEntity, witness.RuleIdentity}},
		{"handle registered twice", func(h *harness, alice, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			c := mustMember(h.tb, 3)
			pid := c.identity()
			pid.Handle = alice.handle
			id := pid.Marshal()
			h.log.append(translog.IdentityLeaf(c.id, id, coffer.Sign(c.key, coffer.LabelIdentity, id)))
			return 4, h.log.proof(4, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusUnprocessableEntity, witness.RuleIdentity}},
		{"commit the chain verifier refuses", func(h *harness, _, bob *member, g *chain) (int64, []tlog.Hash, string) {
			// Bob is a writer: he may not add members.
			c := mustMember(h.tb, 3)
			h.log.append(c.identityLeaf(), g.next(bob, c.add(coffer.RoleWriter)))
			return 4, h.log.proof(4, 6), h.log.sign(h.log.honest(6))
		}, result{http.StatusUnprocessableEntity, witness.RuleChain}},
		{"commit with a forged signature", func(h *harness, alice, _ *member, g *chain) (int64, []tlog.Hash, string) {
			c := mustMember(h.tb, 3)
			leaf, sc := g.peek(alice, c.add(coffer.RoleWriter))
			_ = leaf
			sc.Signature = coffer.Sign(c.key, coffer.LabelCommit, sc.Body)
			h.log.append(c.identityLeaf(), translog.CommitLeaf(g.group, g.seq+1, sc))
			return 4, h.log.proof(4, 6), h.log.sign(h.log.honest(6))
		}, result{http.StatusUnprocessableEntity, witness.RuleChain}},
		{"two commits at one seq", func(h *harness, alice, _ *member, g *chain) (int64, []tlog.Hash, string) {
			c, d := mustMember(h.tb, 3), mustMember(h.tb, 4)
			first, _ := g.peek(alice, c.add(coffer.RoleWriter))
			second, _ := g.peek(alice, d.add(coffer.RoleWriter))
			h.log.append(c.identityLeaf(), d.identityLeaf(), first, second)
			// The map the server signs treats the second as the head: only
			// the duplicate rule stands between it and a cosignature.
			return 4, h.log.proof(4, 8), h.log.sign(h.log.honest(8))
		}, result{http.StatusUnprocessableEntity, witness.RuleDuplicate}},
		{"added member's keys are not the logged identity", func(h *harness, alice, _ *member, g *chain) (int64, []tlog.Hash, string) {
			c := mustMember(h.tb, 3)
			op := c.add(coffer.RoleWriter)
			op.EncryptionKey = mustMember(h.tb, 4).enc // the server's key
			h.log.append(c.identityLeaf(), g.next(alice, op))
			return 4, h.log.proof(4, 6), h.log.sign(h.log.honest(6))
		}, result{http.StatusUnprocessableEntity, witness.RuleAddedKey}},
		{"added signing key is not the logged identity", func(h *harness, alice, _ *member, g *chain) (int64, []tlog.Hash, string) {
			c := mustMember(h.tb, 3)
			op := c.add(coffer.RoleWriter)
			op.SigningKey = mustMember(h.tb, 4).pub()
			h.log.append(c.identityLeaf(), g.next(alice, op))
			return 4, h.log.proof(4, 6), h.log.sign(h.log.honest(6))
		}, result{http.StatusUnprocessableEntity, witness.RuleAddedKey}},
		{"self-update to keys that are not the logged identity", func(h *harness, _, bob *member, g *chain) (int64, []tlog.Hash, string) {
			// Bob is a member and the chain rules allow his self-update;
			// only the log says his account never took these keys.
			other := mustMember(h.tb, 5)
			h.log.append(g.next(bob, coffer.Op{Kind: coffer.OpUpdateKey, Member: bob.id, SigningKey: other.pub(), EncryptionKey: other.enc},
				coffer.Op{Kind: coffer.OpRotate}))
			return 4, h.log.proof(4, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusUnprocessableEntity, witness.RuleAddedKey}},
		{"added member never registered", func(h *harness, alice, _ *member, g *chain) (int64, []tlog.Hash, string) {
			h.log.append(g.next(alice, mustMember(h.tb, 3).add(coffer.RoleWriter)))
			return 4, h.log.proof(4, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusUnprocessableEntity, witness.RuleAddedKey}},
		{"genesis by an unregistered account", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			c := mustMember(h.tb, 3)
			g2 := newChain(2)
			h.log.append(g2.next(c, c.add(coffer.RoleOwner)))
			return 4, h.log.proof(4, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusUnprocessableEntity, witness.RuleAddedKey}},
		{"map root is not the map of the leaves", func(h *harness, alice, _ *member, g *chain) (int64, []tlog.Hash, string) {
			h.log.append(g.next(alice, coffer.Op{Kind: coffer.OpRotate}))
			cp := h.log.honest(5)
			cp.MapRoot = h.log.honest(4).MapRoot // the head before: a hidden commit
			return 4, h.log.proof(4, 5), h.log.sign(cp)
		}, result{http.StatusUnprocessableEntity, witness.RuleMap}},
		{"map size is not the map of the leaves", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			h.log.append(mustMember(h.tb, 3).identityLeaf())
			cp := h.log.honest(5)
			cp.MapSize--
			return 4, h.log.proof(4, 5), h.log.sign(cp)
		}, result{http.StatusUnprocessableEntity, witness.RuleMap}},
		{"same size, another tree", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			leaves := h.log.snapshot()
			leaves[3] = mustMember(h.tb, 3).identityLeaf()
			h.log.setLeaves(leaves)
			return 4, nil, h.log.sign(h.log.honest(4))
		}, result{http.StatusConflict, witness.RuleSameSize}},
		{"same size, same tree, another map", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			cp := h.log.honest(4)
			cp.MapSize++
			return 4, nil, h.log.sign(cp)
		}, result{http.StatusConflict, witness.RuleSameSize}},
		{"time goes backwards", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			h.log.append(mustMember(h.tb, 3).identityLeaf())
			cp := h.log.honest(5)
			cp.Time--
			return 4, h.log.proof(4, 5), h.log.sign(cp)
		}, result{http.StatusUnprocessableEntity, witness.RuleTime}},
		{"time goes backwards at the same size", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			cp := h.log.honest(4)
			cp.Time--
			return 4, nil, h.log.sign(cp)
		}, result{http.StatusUnprocessableEntity, witness.RuleTime}},
		{"time in the future", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			h.log.append(mustMember(h.tb, 3).identityLeaf())
			cp := h.log.honest(5)
			cp.Time += int64(time.Hour / time.Second)
			return 4, h.log.proof(4, 5), h.log.sign(cp)
		}, result{http.StatusUnprocessableEntity, witness.RuleTime}},
		{"leaves unavailable", func(h *harness, _, _ *member, _ *chain) (int64, []tlog.Hash, string) {
			h.log.append(mustMember(h.tb, 3).identityLeaf())
			h.log.mu.Lock()
			h.log.broken = true
			h.log.mu.Unlock()
			return 4, h.log.proof(4, 5), h.log.sign(h.log.honest(5))
		}, result{http.StatusServiceUnavailable, ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			alice, bob, g := base(h)
			honestLeaves := h.log.snapshot()
			old, proof, signed := tc.build(h, alice, bob, g)
			line, err := h.push(old, proof, signed)
			if err == nil {
				t.Fatalf("cosigned: %q", line)
			}
			var conflict *witness.ConflictError
			switch {
			case tc.want.status == http.StatusConflict:
				if !errors.As(err, &conflict) || conflict.Size != 4 || conflict.Fork != (tc.want.rule == witness.RuleSameSize) {
					t.Fatalf("want a 409 naming size 4 (fork %t), got %v", tc.want.rule == witness.RuleSameSize, err)
				}
			case tc.want.status == http.StatusUnprocessableEntity:
				wantRule(t, err, tc.want.rule)
			default:
				wantStatus(t, err, tc.want.status)
			}
			// Nothing of the refused checkpoint stuck: the witness is at 4,
			// in memory and on disk, and cosigns the honest continuation.
			if h.w.Size() != 4 {
				t.Fatalf("after the refusal the witness is at %d, want 4", h.w.Size())
			}
			h.open()
			h.log.mu.Lock()
			h.log.broken = false
			h.log.mu.Unlock()
			h.log.setLeaves(append(honestLeaves, mustMember(t, 9).identityLeaf()))
			h.pushHonest(4)
		})
	}
}

// TestFirstCheckpointOfEmptyLog: the first checkpoint is checked like any
// other, even with no leaf to replay.
func TestFirstCheckpointOfEmptyLog(t *testing.T) {
	h := newHarness(t)
	cp := h.log.honest(0)
	cp.MapSize = 1
	if _, err := h.push(0, nil, h.log.sign(cp)); err == nil {
		t.Fatal("cosigned an empty log with a one-entry map")
	} else {
		wantRule(t, err, witness.RuleMap)
	}
	cp = h.log.honest(0)
	cp.Root[0] ^= 1
	_, err := h.push(0, nil, h.log.sign(cp))
	wantRule(t, err, witness.RuleLeaves)
	h.pushHonest(0)
}

// TestStateInUse: two witness processes on one state could each cosign a
// different tree of one size.
func TestStateInUse(t *testing.T) {
	h := newHarness(t)
	if _, err := witness.Open(witness.Config{LogKey: h.log.signer.VerifierKey(), LogURL: h.log.srv.URL, SignerKey: h.skey, StateDir: h.dir}); err == nil {
		t.Fatal("a second witness opened a state in use")
	}
}

// TestLostStateRefusesToStart: a witness whose state lost a file does not
// start over, which could cosign a fork of what it cosigned before.
func TestLostStateRefusesToStart(t *testing.T) {
	for _, file := range []string{"witness.leaves", "witness.state"} {
		t.Run(file, func(t *testing.T) {
			witness.SetSnapshotEvery(1)
			defer witness.SetSnapshotEvery(64 << 20)
			h := newHarness(t)
			base(h)
			h.log.append(mustMember(t, 3).identityLeaf())
			witness.SetSnapshotEvery(64 << 20)
			h.pushHonest(4) // a journal after the snapshot
			h.w.Close()
			if err := os.Remove(filepath.Join(h.dir, file)); err != nil {
				t.Fatal(err)
			}
			if _, err := witness.Open(witness.Config{LogKey: h.log.signer.VerifierKey(), LogURL: h.log.srv.URL, SignerKey: h.skey, StateDir: h.dir}); err == nil {
				t.Fatalf("started without %s", file)
			}
		})
	}
}

// TestForkEvidence: a checkpoint contradicting the cosigned one is kept on
// disk, signed by the log, as proof of the fork.
func TestForkEvidence(t *testing.T) {
	h := newHarness(t)
	base(h)
	leaves := h.log.snapshot()
	leaves[3] = mustMember(t, 3).identityLeaf()
	h.log.setLeaves(leaves)
	fork := h.log.sign(h.log.honest(4))
	if _, err := h.push(4, nil, fork); err == nil {
		t.Fatal("cosigned a fork")
	}
	files, _ := filepath.Glob(filepath.Join(h.dir, "fork-*.txt"))
	if len(files) != 1 {
		t.Fatalf("want one evidence file, got %v", files)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), fork) {
		t.Fatal("the evidence does not hold the presented checkpoint")
	}
}

// TestAddCheckpointWireFormat mangles the request body.
func TestAddCheckpointWireFormat(t *testing.T) {
	var p tlog.Hash
	p[0] = 7
	body := witness.FormatAddCheckpoint(12, []tlog.Hash{p, p}, "note\n\n— sig\n")
	old, proof, signed, err := witness.ParseAddCheckpoint(body)
	if err != nil || old != 12 || len(proof) != 2 || proof[1] != p || signed != "note\n\n— sig\n" {
		t.Fatalf("round trip: %d %v %q %v", old, proof, signed, err)
	}
	for _, bad := range []string{
		"", "old 1", "old -1\n\nx", "old 01\n\nx", "old 1\n", "old 1\nnotbase64\n\nx", "old 1\nAAAA\n\nx", "new 1\n\nx",
		"old 1\n\n",
	} {
		if _, _, _, err := witness.ParseAddCheckpoint([]byte(bad)); err == nil {
			t.Errorf("%q parses", bad)
		}
	}
}
