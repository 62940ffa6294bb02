package translog_test

import (
	"bytes"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer/internal/translog"
)

// TestAppendHashes: a proof's hashes are appended after what dst holds, as
// BytesToHashes converts them; a proof too long or with a hash of the
// wrong size is refused and leaves dst as it was.
func TestAppendHashes(t *testing.T) {
	proof := [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}
	dst := []tlog.Hash{{9}}
	got, err := translog.AppendHashes(dst, proof)
	if err != nil {
		t.Fatal(err)
	}
	want, err := translog.BytesToHashes(proof)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[1:], want) || got[0] != (tlog.Hash{9}) {
		t.Errorf("appended %x, want %x after the hash already there", got, want)
	}
	for name, bad := range map[string][][]byte{
		"short hash": {make([]byte, 32), make([]byte, 31)},
		"long hash":  {make([]byte, 33)},
		"too long":   slices.Repeat([][]byte{make([]byte, 32)}, 129),
	} {
		got, err := translog.AppendHashes(dst, bad)
		if err == nil || len(got) != len(dst) {
			t.Errorf("%s: %d hashes, error %v", name, len(got), err)
		}
		if _, err := translog.BytesToHashes(bad); err == nil {
			t.Errorf("%s: BytesToHashes accepted it", name)
		}
	}
	if got, err := translog.AppendHashes(dst, slices.Repeat([][]byte{make([]byte, 32)}, 128)); err != nil || len(got) != 129 {
		t.Errorf("a proof of 128 hashes: %d hashes, error %v", len(got), err)
	}
}
