package clientlib

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

func logProofsResponse(contentType string, body []byte) *http.Response {
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        http.Header{"Content-Type": {contentType}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
	}
}

// TestReadLogProofs: an answer reads the same in either encoding; a
// compact answer that does not parse, or holds more proofs than were asked
// for, is a log security error, while malformed JSON stays the transport
// error it always was.
func TestReadLogProofs(t *testing.T) {
	g := coffer.NewGroupID()
	want := api.LogProofs{Size: 10, Commits: []api.LogProof{
		{Group: &g, Seq: 1, Included: true, Index: 3, Proof: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}},
		{Group: &g, Seq: 2, Index: -1},
	}}
	compact, err := api.AppendLogProofs(nil, &want)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for name, resp := range map[string]*http.Response{
		"compact": logProofsResponse(api.LogProofsType, compact),
		"json":    logProofsResponse("application/json", js),
	} {
		got, err := readLogProofs(resp, 2)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: read %+v, want %+v", name, got, want)
		}
	}
	for name, body := range map[string][]byte{
		"truncated": compact[:len(compact)-1],
		"trailing":  append(bytes.Clone(compact), 0),
		"version":   append([]byte{9}, compact[1:]...),
		"empty":     nil,
	} {
		_, err := readLogProofs(logProofsResponse(api.LogProofsType, body), 2)
		var se *coffer.SecurityError
		if !errors.As(err, &se) || se.Check != "log" {
			t.Errorf("%s: %v, want a log security error", name, err)
		}
	}
	if _, err := readLogProofs(logProofsResponse(api.LogProofsType, compact), 1); !coffer.IsSecurity(err) {
		t.Errorf("two proofs for one asked: %v, want a security error", err)
	}
	if _, err := readLogProofs(logProofsResponse("application/json", js[:len(js)-2]), 2); err == nil || coffer.IsSecurity(err) {
		t.Errorf("truncated JSON: %v, want a malformed-response error", err)
	}
}
