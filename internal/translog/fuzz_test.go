package translog_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// FuzzParseLeaf: leaves come from the server (clients, witnesses and the
// auditor parse them). Parsing never panics, and what parses re-encodes to
// the same bytes, so one leaf has one meaning.
func FuzzParseLeaf(f *testing.F) {
	f.Add(translog.CommitLeaf(coffer.NewGroupID(), 7, coffer.SignedCommit{Body: []byte{1, 2, 3}, Signature: make([]byte, 64)}))
	f.Add([]byte("coffer/v1/log-leaf\x00"))
	f.Add([]byte{})
	f.Add(translog.AccountLinkLeaf(coffer.NewAccountID(), 2, coffer.SignedLink{Body: []byte{2, 3}, Signature: []byte{4}, DeviceSignature: []byte{5, 6}}))
	f.Add(translog.AccountLinkLeaf(coffer.NewAccountID(), 1, coffer.SignedLink{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := translog.ParseLeaf(data)
		if err != nil {
			return
		}
		if got := l.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("leaf does not round-trip:\n in  %x\n out %x", data, got)
		}
		// Interpreting a parsed leaf must not panic either.
		_, _ = l.VerifyIdentity()
		_, _ = l.ParseCommit()
		_, _ = l.ParseAccountLink()
		_, _ = translog.LeafUpdate(0, data, l)
	})
}

// FuzzParseCheckpointText: checkpoint bodies come from the server and from
// other clients. Parsing never panics, and a parsed checkpoint prints back
// to exactly its input.
func FuzzParseCheckpointText(f *testing.F) {
	f.Add("coffer.example\n12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("o\n0\n\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := translog.ParseCheckpointText(text)
		if err != nil {
			return
		}
		if got := c.Text(); got != text {
			t.Fatalf("checkpoint does not round-trip:\n in  %q\n out %q", text, got)
		}
	})
}
