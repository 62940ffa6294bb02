package clientlib

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// TestJournalIsBounded: the journal keeps the newest journalMax requests,
// deletes what it drops, and skips a request too large to keep.
func TestJournalIsBounded(t *testing.T) {
	ks := NewMemoryKeyStore()
	c, err := New("http://127.0.0.1:1", ks, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := coffer.NewGroupID()
	for seq := uint64(1); seq <= journalMax+10; seq++ {
		c.journal(g, seq, &api.CommitRequest{Commit: api.SignedCommit{Body: []byte{byte(seq)}, Signature: []byte("sig")}})
	}
	refs, err := c.loadJournalIndex(g)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != journalMax || refs[0].Seq != 11 || refs[len(refs)-1].Seq != journalMax+10 {
		t.Fatalf("journal index holds %d entries, %+v…", len(refs), refs[0])
	}
	for seq := uint64(1); seq <= journalMax+10; seq++ {
		req, err := c.journaled(g, seq)
		if err != nil {
			t.Fatal(err)
		}
		if kept := seq > 10; (req != nil) != kept {
			t.Errorf("entry %d: held %v, want %v", seq, req != nil, kept)
		} else if kept && !bytes.Equal(req.Commit.Body, []byte{byte(seq)}) {
			t.Errorf("entry %d holds another request", seq)
		}
	}
	huge := &api.CommitRequest{Meta: make([]byte, journalMaxEntry)}
	c.journal(g, journalMax+11, huge)
	if req, _ := c.journaled(g, journalMax+11); req != nil {
		t.Error("a request larger than journalMaxEntry was journaled")
	}
	// The byte bound: entries of a quarter of the total keep four.
	big := journalMaxBytes / 4
	g2 := coffer.NewGroupID()
	for seq := uint64(1); seq <= 6; seq++ {
		c.journal(g2, seq, &api.CommitRequest{Meta: make([]byte, big*3/4-100)}) // base64 grows it by 4/3
	}
	refs, _ = c.loadJournalIndex(g2)
	total := 0
	for _, r := range refs {
		total += r.Size
	}
	if total > journalMaxBytes || len(refs) < 3 || refs[len(refs)-1].Seq != 6 {
		t.Fatalf("byte-bounded journal: %+v (%d bytes)", refs, total)
	}
}
