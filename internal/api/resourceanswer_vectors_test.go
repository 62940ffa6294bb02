package api_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/internal/api"
)

// Vector files of api.ResourceType hold one answer each:
//
//	expect: success | malformed
//	comment: <what the case shows>
//
//	<hex of the answer>
//
// They are rewritten with -update (the flag of the commit page vectors).
const resourceAnswerVectorDir = "../../testdata/resourceanswer"

func resourceAnswerVectors(t *testing.T) []pageVector {
	full := mustAppendResource(t, sampleAnswer(bytes.Repeat([]byte{0x44}, 64), "origin\n5\nroot=\n\n— origin sig=\n"))
	bare := mustAppendResource(t, sampleAnswer(nil, ""))
	metaLen := 1 + 16 + 16 + 8 + 16 + 8 + 8 + 8 + 8 + 4 + 300 + 2 + 64
	overMeta := slices.Clone(bare)
	binary.BigEndian.PutUint32(overMeta[metaLen:], 1<<30)
	twoContent := slices.Clone(bare)
	twoContent[metaLen+4+90] = 2
	return []pageVector{
		{"with-content", "success", "header, metadata, content and a checkpoint note", full},
		{"without-content", "success", "no content (has_content 0) and no checkpoint", bare},
		{"truncated", "malformed", "the checkpoint note is cut short", full[:len(full)-1]},
		{"trailing-byte", "malformed", "a byte after the checkpoint", append(slices.Clone(full), 0)},
		{"unknown-version", "malformed", "version 2 is not defined", append([]byte{2}, full[1:]...)},
		{"meta-over-bound", "malformed", "a metadata length over MaxResourceMetaSize", overMeta},
		{"has-content-2", "malformed", "has_content is neither 0 nor 1", twoContent},
		{"empty-input", "malformed", "no bytes at all", []byte{}},
	}
}

func TestResourceAnswerVectors(t *testing.T) {
	if *updatePages {
		os.RemoveAll(resourceAnswerVectorDir)
		if err := os.MkdirAll(resourceAnswerVectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range resourceAnswerVectors(t) {
			text := fmt.Sprintf("expect: %s\ncomment: %s\n\n%s\n", v.expect, v.comment, hex.EncodeToString(v.page))
			if err := os.WriteFile(filepath.Join(resourceAnswerVectorDir, v.name+".txt"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(resourceAnswerVectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := len(resourceAnswerVectors(t)); len(files) != want {
		t.Fatalf("%d vector files in %s, want %d: run with -update", len(files), resourceAnswerVectorDir, want)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fields, answer := readHexVector(t, path)
			got, perr := api.ParseResource(answer)
			switch fields["expect"] {
			case "success":
				if perr != nil {
					t.Fatalf("expect success: %v", perr)
				}
				again, err := api.AppendResource(nil, got)
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
