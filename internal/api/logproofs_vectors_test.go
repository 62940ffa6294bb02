package api_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// Vector files of api.LogProofsType hold one answer each:
//
//	expect: success | malformed
//	comment: <what the case shows>
//	proofs: <n>        (success only: commits, accounts and versions)
//
//	<hex of the answer>
//
// They are parsed with a bound of 1,000 proofs (a batch of the client's)
// and rewritten with -update (the flag of the commit page vectors).
const logProofsVectorDir = "../../testdata/logproofs"

func logProofsVectors(t *testing.T) []pageVector {
	g, a, r := coffer.GroupID{0x11}, coffer.AccountID{0x22}, coffer.ResourceID{0x33}
	commitAndAccount := mustAppendLogProofs(t, &api.LogProofs{
		Size: 1000,
		Commits: []api.LogProof{
			{Group: &g, Seq: 1, Included: true, Index: 998, Proof: sampleHashes(0xc0, 2)},
			{Group: &g, Seq: 2, Index: -1},
		},
		Accounts: []api.LogProof{{Account: &a, Included: true, Index: 3, Proof: sampleHashes(0xd0, 1)}},
	})
	version := mustAppendLogProofs(t, &api.LogProofs{
		Size:     12,
		Versions: []api.LogProof{{Group: &g, Resource: &r, Version: 2, Included: true, Index: 11, Proof: sampleHashes(0xe0, 1), Leaf: []byte("leaf")}},
	})
	one := func(proof []byte) []byte { return append(logProofsHeader(1, 1, 0, 0), proof...) }
	return []pageVector{
		{"empty", "success", "an answer with no proofs", mustAppendLogProofs(t, &api.LogProofs{Size: 5})},
		{"commit-and-account", "success", "two commits (one not yet included) and an account", commitAndAccount},
		{"resource-version", "success", "a resource version's proof with its leaf", version},
		{"longest-proof", "success", "a proof of MaxLogProofHashes (64) hashes", one(rawLogProof(1, 64, 64, 0, 0))},
		{"truncated", "malformed", "the last hash is cut short", commitAndAccount[:len(commitAndAccount)-5]},
		{"trailing-byte", "malformed", "a byte after the last proof", append(bytes.Clone(version), 0)},
		{"unknown-version", "malformed", "version 2 is not defined", append([]byte{2}, version[1:]...)},
		{"count-past-end", "malformed", "a count the remaining bytes cannot hold", logProofsHeader(1, 0, 1<<20, 0)},
		{"count-over-request", "malformed", "1,001 proofs, more than the 1,000 asked for", mustAppendLogProofs(t, &api.LogProofs{Accounts: make([]api.LogProof, 1001)})},
		{"proof-over-bound", "malformed", "a proof of 65 hashes", one(rawLogProof(1, 65, 65, 0, 0))},
		{"leaf-over-bound", "malformed", "a leaf length over translog.MaxLeafSize", one(rawLogProof(1, 0, 0, translog.MaxLeafSize+1, 0))},
		{"unknown-flags", "malformed", "flag bit 4 is not defined", one(rawLogProof(0x11, 0, 0, 0, 0))},
		{"empty-input", "malformed", "no bytes at all", []byte{}},
	}
}

func TestLogProofsVectors(t *testing.T) {
	if *updatePages {
		os.RemoveAll(logProofsVectorDir)
		if err := os.MkdirAll(logProofsVectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range logProofsVectors(t) {
			extra := ""
			if v.expect == "success" {
				p, err := api.ParseLogProofs(v.page, 1000)
				if err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				extra = fmt.Sprintf("proofs: %d\n", len(p.Commits)+len(p.Accounts)+len(p.Versions))
			}
			text := fmt.Sprintf("expect: %s\ncomment: %s\n%s\n%s\n", v.expect, v.comment, extra, hex.EncodeToString(v.page))
			if err := os.WriteFile(filepath.Join(logProofsVectorDir, v.name+".txt"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(logProofsVectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := len(logProofsVectors(t)); len(files) != want {
		t.Fatalf("%d vector files in %s, want %d: run with -update", len(files), logProofsVectorDir, want)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fields, answer := readHexVector(t, path)
			got, perr := api.ParseLogProofs(answer, 1000)
			switch fields["expect"] {
			case "success":
				if perr != nil {
					t.Fatalf("expect success: %v", perr)
				}
				if n, _ := strconv.Atoi(fields["proofs"]); n != len(got.Commits)+len(got.Accounts)+len(got.Versions) {
					t.Errorf("%d proofs, want %d", len(got.Commits)+len(got.Accounts)+len(got.Versions), n)
				}
				again, err := api.AppendLogProofs(nil, &got)
				if err != nil || !bytes.Equal(again, answer) {
					t.Errorf("re-encoding differs (%v)", err)
				}
			case "malformed":
				if perr == nil {
					t.Errorf("expect malformed: parsed %+v", got)
				}
			default:
				t.Fatalf("no expect line")
			}
		})
	}
}
