package api_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// sampleHashes returns n distinct 32-byte hashes starting from seed.
func sampleHashes(seed byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Repeat([]byte{seed + byte(i)}, 32)
	}
	return out
}

// sampleLogProofs is an answer with every kind of proof and every field
// set somewhere: included and not, with and without hashes and a leaf.
func sampleLogProofs() *api.LogProofs {
	g, a, r := coffer.GroupID{1, 2, 3}, coffer.AccountID{4, 5, 6}, coffer.ResourceID{7, 8, 9}
	return &api.LogProofs{
		Size: 1<<40 + 17,
		Commits: []api.LogProof{
			{Group: &g, Seq: 1, Included: true, Index: 0, Proof: sampleHashes(0x10, 14)},
			{Group: &g, Seq: 2, Included: true, Index: 1 << 39, Proof: sampleHashes(0x40, 1)},
			{Group: &g, Seq: 3, Included: false, Index: -1},
		},
		Accounts: []api.LogProof{
			{Account: &a, Included: true, Index: 5, Proof: sampleHashes(0x80, 3)},
		},
		Versions: []api.LogProof{
			{Group: &g, Resource: &r, Version: 4, Included: true, Index: 9, Proof: sampleHashes(0xa0, 2), Leaf: []byte("a version's leaf")},
		},
	}
}

func mustAppendLogProofs(t testing.TB, p *api.LogProofs) []byte {
	t.Helper()
	b, err := api.AppendLogProofs(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// normalLogProofs is p with empty lists, proofs and leaves as nil, which
// neither encoding tells from absent.
func normalLogProofs(p api.LogProofs) api.LogProofs {
	norm := func(list []api.LogProof) []api.LogProof {
		if len(list) == 0 {
			return nil
		}
		list = slices.Clone(list)
		for i := range list {
			if len(list[i].Proof) == 0 {
				list[i].Proof = nil
			}
			if len(list[i].Leaf) == 0 {
				list[i].Leaf = nil
			}
		}
		return list
	}
	p.Commits, p.Accounts, p.Versions = norm(p.Commits), norm(p.Accounts), norm(p.Versions)
	return p
}

func TestLogProofsRoundTrip(t *testing.T) {
	g := coffer.GroupID{0xff}
	for name, p := range map[string]*api.LogProofs{
		"sample":           sampleLogProofs(),
		"empty":            {},
		"empty lists":      {Size: 3, Commits: []api.LogProof{}, Accounts: []api.LogProof{}},
		"every id at once": {Commits: []api.LogProof{{Group: &g, Account: &coffer.AccountID{1}, Resource: &coffer.ResourceID{2}}}},
		"longest proof":    {Commits: []api.LogProof{{Group: &g, Included: true, Proof: sampleHashes(0, api.MaxLogProofHashes)}}},
	} {
		enc := mustAppendLogProofs(t, p)
		got, err := api.ParseLogProofs(enc, 1000)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(normalLogProofs(got), normalLogProofs(*p)) {
			t.Errorf("%s: decoded %+v, want %+v", name, got, *p)
		}
		again, err := api.AppendLogProofs([]byte("x"), &got)
		if err != nil || !bytes.Equal(again[1:], enc) {
			t.Errorf("%s: re-encoding after a prefix differs (%v)", name, err)
		}
	}
}

// TestLogProofsSameAsJSON: an answer through JSON and through the compact
// encoding decodes to the same proofs, and the JSON answer encodes to the
// same compact bytes.
func TestLogProofsSameAsJSON(t *testing.T) {
	for name, p := range map[string]*api.LogProofs{
		"sample":             sampleLogProofs(),
		"as a server writes": {Size: 9, Commits: []api.LogProof{}, Accounts: []api.LogProof{}},
	} {
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON api.LogProofs
		if err := json.Unmarshal(js, &fromJSON); err != nil {
			t.Fatal(err)
		}
		enc := mustAppendLogProofs(t, p)
		fromCompact, err := api.ParseLogProofs(enc, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalLogProofs(fromCompact), normalLogProofs(fromJSON)) {
			t.Errorf("%s: compact %+v, JSON %+v", name, fromCompact, fromJSON)
		}
		if !bytes.Equal(mustAppendLogProofs(t, &fromJSON), enc) {
			t.Errorf("%s: the JSON answer encodes to other compact bytes", name)
		}
	}
}

// logProofsHeader builds the version, size and counts of an answer.
func logProofsHeader(version byte, commits, accounts, versions uint32) []byte {
	b := binary.BigEndian.AppendUint64([]byte{version}, 7)
	b = binary.BigEndian.AppendUint32(b, commits)
	b = binary.BigEndian.AppendUint32(b, accounts)
	return binary.BigEndian.AppendUint32(b, versions)
}

// rawLogProof builds one proof with no ids, whatever its counts say:
// hashCount in the count byte and hashes hashes after it, leafLen in the
// length and leaf bytes after it.
func rawLogProof(flags, hashCount byte, hashes int, leafLen uint32, leaf int) []byte {
	b := append([]byte{flags}, make([]byte, 24)...)
	b = append(b, hashCount)
	b = append(b, make([]byte, 32*hashes)...)
	b = binary.BigEndian.AppendUint32(b, leafLen)
	return append(b, make([]byte, leaf)...)
}

// TestLogProofsRejects: every truncation, trailing data, an unknown
// version, counts over the caller's bound or past what the data holds, a
// proof over MaxLogProofHashes, a leaf over its bound or past the end and
// unknown flags are errors, never a partial answer.
func TestLogProofsRejects(t *testing.T) {
	enc := mustAppendLogProofs(t, sampleLogProofs())
	for n := range len(enc) {
		if got, err := api.ParseLogProofs(enc[:n], 1000); err == nil {
			t.Fatalf("truncated to %d bytes: parsed %+v", n, got)
		}
	}
	one := func(proof []byte) []byte { return append(logProofsHeader(1, 1, 0, 0), proof...) }
	bad := map[string][]byte{
		"trailing":          append(slices.Clone(enc), 0),
		"version-0":         append([]byte{0}, enc[1:]...),
		"version-2":         append([]byte{2}, enc[1:]...),
		"huge-counts":       logProofsHeader(1, 1<<32-1, 1<<32-1, 1<<32-1),
		"count-unfit":       append(logProofsHeader(1, 0, 2, 0), rawLogProof(0, 0, 0, 0, 0)...),
		"versions-unfit":    append(logProofsHeader(1, 0, 0, 1), 0),
		"proof-over-bound":  one(rawLogProof(1, api.MaxLogProofHashes+1, api.MaxLogProofHashes+1, 0, 0)),
		"proof-past-end":    one(rawLogProof(1, 3, 2, 0, 0)),
		"leaf-over-bound":   one(rawLogProof(1, 0, 0, translog.MaxLeafSize+1, 0)),
		"leaf-past-end":     one(rawLogProof(1, 0, 0, 10, 9)),
		"unknown-flags":     one(rawLogProof(0x10, 0, 0, 0, 0)),
		"ids-past-end":      one(rawLogProof(0x0e, 0, 0, 0, 0)),
		"first-eats-second": append(logProofsHeader(1, 2, 0, 0), rawLogProof(0, 0, 0, 30, 30)...),
	}
	for name, data := range bad {
		if got, err := api.ParseLogProofs(data, 1000); err == nil {
			t.Errorf("%s: parsed %+v", name, got)
		}
	}
	if _, err := api.ParseLogProofs(enc, 4); err == nil {
		t.Errorf("an answer of 5 proofs was accepted with a bound of 4")
	}
	if _, err := api.ParseLogProofs(enc, 5); err != nil {
		t.Errorf("an answer of 5 proofs was refused with a bound of 5: %v", err)
	}
	// Each count, flag and length byte of the first proofs, mangled,
	// breaks the answer: the fields that frame it are all checked.
	hashCount := 21 + 1 + 16 + 24
	for _, off := range []int{0, 9, 12, 13, 16, 17, 20, 21, hashCount, hashCount + 1 + 14*32, hashCount + 1 + 14*32 + 3} {
		m := slices.Clone(enc)
		m[off] ^= 0x40
		if got, err := api.ParseLogProofs(m, 1000); err == nil {
			t.Errorf("mangled byte %d: parsed %+v", off, got)
		}
	}
}

// TestAppendLogProofsRefuses: an answer no client would parse is not
// written.
func TestAppendLogProofsRefuses(t *testing.T) {
	for name, lp := range map[string]api.LogProof{
		"proof over bound": {Proof: sampleHashes(0, api.MaxLogProofHashes+1)},
		"short hash":       {Proof: [][]byte{make([]byte, 31)}},
		"long hash":        {Proof: [][]byte{make([]byte, 33)}},
		"leaf over bound":  {Leaf: make([]byte, translog.MaxLeafSize+1)},
	} {
		for _, p := range []*api.LogProofs{{Commits: []api.LogProof{lp}}, {Accounts: []api.LogProof{lp}}, {Versions: []api.LogProof{lp}}} {
			if b, err := api.AppendLogProofs([]byte("x"), p); err == nil {
				t.Errorf("%s: encoded as %d bytes", name, len(b))
			} else if string(b) != "x" {
				t.Errorf("%s: the buffer changed on failure", name)
			}
		}
	}
}

// TestParseLogProofsAllocations: a parse makes the same few allocations
// however many proofs and hashes the answer holds.
func TestParseLogProofsAllocations(t *testing.T) {
	allocs := func(n int) float64 {
		g := coffer.GroupID{1}
		p := &api.LogProofs{Size: 1 << 20}
		for i := range n {
			p.Commits = append(p.Commits, api.LogProof{Group: &g, Seq: uint64(i + 1), Included: true, Index: int64(i), Proof: sampleHashes(byte(i), 14)})
		}
		enc := mustAppendLogProofs(t, p)
		return testing.AllocsPerRun(20, func() {
			if _, err := api.ParseLogProofs(enc, n); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(10), allocs(1000)
	if large != small || large > 3 {
		t.Errorf("parsing 10 proofs makes %v allocations, 1,000 proofs %v; want the same, at most 3", small, large)
	}
}

func TestAcceptsLogProofs(t *testing.T) {
	for accept, want := range map[string]bool{
		api.LogProofsType:                              true,
		"application/json, " + api.LogProofsType:       true,
		api.LogProofsType + ";q=0.9, application/json": true,
		api.LogProofsType + ";q=0":                     false,
		"application/json":                             false,
		"":                                             false,
		api.CommitPageType:                             false,
		"application/vnd.coffer.log-proofs-other":      false,
	} {
		if got := api.AcceptsLogProofs(accept); got != want {
			t.Errorf("AcceptsLogProofs(%q) = %t, want %t", accept, got, want)
		}
	}
}

// FuzzParseLogProofs: no input panics, and whatever parses re-encodes to
// the same bytes (an answer has one encoding) and parses again to the same
// proofs.
func FuzzParseLogProofs(f *testing.F) {
	f.Add(mustAppendLogProofs(f, sampleLogProofs()))
	f.Add(mustAppendLogProofs(f, &api.LogProofs{}))
	f.Add(append(logProofsHeader(1, 1, 0, 0), rawLogProof(0x0f, 1, 1, 3, 3)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := api.ParseLogProofs(data, 1000)
		if err != nil {
			return
		}
		enc, err := api.AppendLogProofs(nil, &p)
		if err != nil {
			t.Fatalf("a parsed answer does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs")
		}
		again, err := api.ParseLogProofs(enc, 1000)
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("the re-encoding parses to %+v (%v), want %+v", again, err, p)
		}
	})
}
