package api_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

var updatePages = flag.Bool("update", false, "rewrite the vectors under testdata/commitpage instead of checking them")

// Vector files hold one page each:
//
//	expect: success | malformed
//	comment: <what the case shows>
//	commits: <n>       (success only)
//
//	<hex of the page>
const commitPageVectorDir = "../../testdata/commitpage"

type pageVector struct {
	name, expect, comment string
	page                  []byte
}

func pageVectors() []pageVector {
	two := []coffer.SignedCommit{
		{Body: []byte("first commit body"), Signature: bytes.Repeat([]byte{0xaa}, 64)},
		{Body: []byte("second"), Signature: bytes.Repeat([]byte{0xbb}, 64)},
	}
	valid := api.AppendCommitPage(nil, two)
	header := func(count uint32) []byte { return binary.BigEndian.AppendUint32([]byte{1}, count) }
	return []pageVector{
		{"empty", "success", "a page with no commits", api.AppendCommitPage(nil, nil)},
		{"two-commits", "success", "two commits, bodies and signatures as stored", valid},
		{"truncated-signature", "malformed", "the last signature is cut short", valid[:len(valid)-1]},
		{"trailing-byte", "malformed", "a byte after the last commit", append(bytes.Clone(valid), 0)},
		{"unknown-version", "malformed", "version 2 is not defined", append([]byte{2}, valid[1:]...)},
		{"count-past-end", "malformed", "a count the remaining bytes cannot hold", header(1 << 20)},
		{"count-over-page", "malformed", "1,001 commits, more than a page of 1,000", api.AppendCommitPage(nil, make([]coffer.SignedCommit, 1001))},
		{"body-over-limit", "malformed", "a body length over MaxCommitSize", binary.BigEndian.AppendUint32(header(1), coffer.MaxCommitSize+1)},
		{"empty-input", "malformed", "no bytes at all", []byte{}},
	}
}

func TestCommitPageVectors(t *testing.T) {
	if *updatePages {
		os.RemoveAll(commitPageVectorDir)
		if err := os.MkdirAll(commitPageVectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range pageVectors() {
			var b strings.Builder
			fmt.Fprintf(&b, "expect: %s\ncomment: %s\n", v.expect, v.comment)
			if v.expect == "success" {
				page, err := api.ParseCommitPage(v.page, 1000)
				if err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				fmt.Fprintf(&b, "commits: %d\n", len(page))
			}
			fmt.Fprintf(&b, "\n%s\n", hex.EncodeToString(v.page))
			if err := os.WriteFile(filepath.Join(commitPageVectorDir, v.name+".txt"), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(commitPageVectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := len(pageVectors()); len(files) != want {
		t.Fatalf("%d vector files in %s, want %d: run with -update", len(files), commitPageVectorDir, want)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fields, page := readHexVector(t, path)
			got, perr := api.ParseCommitPage(page, 1000)
			switch fields["expect"] {
			case "success":
				if perr != nil {
					t.Fatalf("expect success: %v", perr)
				}
				if n, _ := strconv.Atoi(fields["commits"]); n != len(got) {
					t.Errorf("%d commits, want %d", len(got), n)
				}
				if !bytes.Equal(api.AppendCommitPage(nil, got), page) {
					t.Errorf("re-encoding differs")
				}
			case "malformed":
				if perr == nil {
					t.Errorf("expect malformed: parsed %d commits", len(got))
				}
			default:
				t.Fatalf("no expect line")
			}
		})
	}
}
