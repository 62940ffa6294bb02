package clientlib

import (
	"bytes"
	"crypto/hpke"
	"encoding/json"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// TestWrapStreamIsTheRequest: the streamed body is the JSON of the
// api.CommitRequest it stands for (strictly decoded), of exactly the size
// computed ahead, with one wrap per recipient in order that opens for that
// recipient; the journal gets the same bytes.
func TestWrapStreamIsTheRequest(t *testing.T) {
	dk, err := coffer.KEM().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := dk.PublicKey().Bytes()
	g, k := coffer.NewGroupID(), groupkey.NewEpochKey()
	for _, tc := range []struct {
		name string
		n    int
		req  api.CommitRequest
	}{
		{"rotation-with-link-and-meta", 300, api.CommitRequest{
			Commit: api.SignedCommit{Body: []byte("body"), Signature: bytes.Repeat([]byte{7}, 64)},
			Links:  []api.HistoryLink{{Epoch: 41, Link: []byte("link")}},
			Meta:   []byte("sealed metadata"),
		}},
		{"one-wrap", 1, api.CommitRequest{Commit: api.SignedCommit{Body: []byte("b"), Signature: []byte("s")}}},
		{"no-wraps", 0, api.CommitRequest{Commit: api.SignedCommit{Body: []byte("b"), Signature: []byte("s")}, Meta: []byte{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := make([]groupkey.Recipient, tc.n)
			for i := range rs {
				rs[i] = groupkey.Recipient{Member: coffer.NewAccountID(), EncryptionKey: pub}
			}
			ws, err := newWrapStream(&tc.req, rs, g, 42, k)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			if err := ws.writeTo(&body); err != nil {
				t.Fatal(err)
			}
			if body.Len() != ws.size() {
				t.Errorf("body is %d bytes, size() said %d", body.Len(), ws.size())
			}
			if !bytes.Equal(ws.journal, body.Bytes()) {
				t.Errorf("the journal differs from the body")
			}
			dec := json.NewDecoder(bytes.NewReader(body.Bytes()))
			dec.DisallowUnknownFields()
			var got api.CommitRequest
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("%v in %.200s", err, body.Bytes())
			}
			want := tc.req
			want.Wraps = got.Wraps
			if a, b := mustJSON(t, got), mustJSON(t, want); !bytes.Equal(a, b) {
				t.Errorf("decoded request differs:\n%s\n%s", a, b)
			}
			if len(got.Wraps) != tc.n {
				t.Fatalf("%d wraps, want %d", len(got.Wraps), tc.n)
			}
			for i, w := range got.Wraps {
				if w.Member != rs[i].Member || w.Epoch != 42 {
					t.Fatalf("wrap %d is for %s at epoch %d", i, w.Member, w.Epoch)
				}
				if i%50 == 0 {
					if kk, err := groupkey.Unwrap(hpke.PrivateKey(dk), g, 42, rs[i].Member, w.Wrap); err != nil || kk != k {
						t.Errorf("wrap %d does not open: %v", i, err)
					}
				}
				// Byte for byte what encoding/json writes for it.
				if one := mustJSON(t, w); !bytes.Contains(body.Bytes(), one) {
					t.Errorf("wrap %d is not encoded as encoding/json encodes it", i)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
