package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/server"
)

// rotationWorld is a group of three (owner, a, b) at seq 1, and the parts
// of a valid rotation to seq 2 that the tests assemble into bodies.
type rotationWorld struct {
	ts      *testServer
	owner   member
	g       coffer.GroupID
	commit  []byte // JSON of the signed rotation commit
	links   []byte // JSON of its one history link
	wraps   [][]byte
	members []coffer.AccountID
}

func newRotationWorld(t *testing.T) *rotationWorld {
	t.Helper()
	ts := MustServer(t)
	w := &resourceWorld{ts: ts}
	var ms []member
	for _, h := range []string{"owner", "alice", "bob"} {
		id, acct, tok := MustAccount(t, ts, h)
		ms = append(ms, member{id, acct, tok.AccessToken})
	}
	g := w.mustGroup(t, ms, []coffer.Role{coffer.RoleOwner, coffer.RoleReader, coffer.RoleReader})
	r := ts.Do(t, http.MethodGet, "/v1/groups/"+g.String(), ms[0].token, nil)
	r.Check(t, 200, "")
	var gr api.Group
	r.Decode(t, &gr)
	k := groupkey.NewEpochKey()
	c := &coffer.Commit{Group: g, Seq: 2, Prev: [32]byte(gr.HeadHash), Epoch: 2, Author: ms[0].acct.ID,
		Time: time.Now().UnixMilli(), ShareHistory: true, KeyCommitment: groupkey.Commitment(k, g, 2),
		Ops: []coffer.Op{{Kind: coffer.OpRotate}}}
	sc := coffer.SignCommit(c, ms[0].id.Key)
	rw := &rotationWorld{ts: ts, owner: ms[0], g: g}
	rw.commit = mustJSON(t, api.SignedCommit{Body: sc.Body, Signature: sc.Signature})
	rw.links = mustJSON(t, []api.HistoryLink{{Epoch: 1, Link: randomBytes(coffer.HistoryLinkSize)}})
	for _, m := range ms {
		// The server cannot look inside a wrap: random bytes of the size.
		rw.wraps = append(rw.wraps, mustJSON(t, api.Wrap{Member: m.acct.ID, Epoch: 2, Wrap: randomBytes(coffer.WrapSize)}))
		rw.members = append(rw.members, m.acct.ID)
	}
	return rw
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (rw *rotationWorld) post(t *testing.T, body io.Reader) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rw.ts.URL+"/v1/groups/"+rw.g.String()+"/commits", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+rw.owner.token)
	return rw.ts.Send(t, req)
}

// stored reports the group's head seq and how many wraps of epoch 2 it has.
func (rw *rotationWorld) stored(t *testing.T) (seq uint64, wraps int) {
	t.Helper()
	ctx := context.Background()
	if err := rw.ts.Pool.QueryRow(ctx, `SELECT head_seq FROM groups WHERE id = $1`, rw.g).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if err := rw.ts.Pool.QueryRow(ctx, `SELECT count(*) FROM wrapped_keys WHERE group_id = $1 AND epoch = 2`, rw.g).Scan(&wraps); err != nil {
		t.Fatal(err)
	}
	return seq, wraps
}

// TestAppendStreamsWraps: cofferd copies a commit's wraps into PostgreSQL
// while the request is still arriving, instead of holding the whole body
// first, once the append carries streamWrapsFrom wraps. The body stops before the end of the wraps array until the COPY
// into wrapped_keys shows in pg_stat_progress_copy.
func TestAppendStreamsWraps(t *testing.T) {
	t.Cleanup(server.SetStreamWrapsFrom(3))
	rw := newRotationWorld(t)
	pr, pw := io.Pipe()
	done := make(chan *response, 1)
	go func() { done <- rw.post(t, pr) }()
	fmt.Fprintf(pw, `{"commit":%s,"links":%s,"wraps":[%s,%s,%s`, rw.commit, rw.links, rw.wraps[0], rw.wraps[1], rw.wraps[2])
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var copying bool
		err := rw.ts.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_progress_copy
			WHERE relid = 'wrapped_keys'::regclass AND command = 'COPY FROM')`).Scan(&copying)
		if err != nil {
			t.Fatal(err)
		}
		if copying {
			break
		}
		if time.Now().After(deadline) {
			pw.CloseWithError(io.ErrUnexpectedEOF)
			<-done
			t.Fatal("the server did not start copying the wraps before the request's body ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Nothing is visible before the request ends.
	if seq, n := rw.stored(t); seq != 1 || n != 0 {
		t.Fatalf("mid-request the group is at seq %d with %d new wraps visible", seq, n)
	}
	io.WriteString(pw, `]}`)
	pw.Close()
	(<-done).Check(t, http.StatusCreated, "")
	if seq, n := rw.stored(t); seq != 2 || n != 3 {
		t.Fatalf("after the append the group is at seq %d with %d wraps of epoch 2, want 2 and 3", seq, n)
	}
}

// TestStreamedWrapsAreAtomic: whatever goes wrong after wraps were copied
// (a bad or duplicate wrap, a missing one, a bad member after the array, a
// body cut short or over the limit), nothing of the append is stored.
func TestStreamedWrapsAreAtomic(t *testing.T) {
	for _, from := range []int{3, 4} {
		t.Run(fmt.Sprintf("stream from %d wraps", from), func(t *testing.T) {
			t.Cleanup(server.SetStreamWrapsFrom(from))
			testStreamedWrapsAreAtomic(t)
		})
	}
}

// testStreamedWrapsAreAtomic runs the cases on an append of three wraps,
// streamed or read first.
func testStreamedWrapsAreAtomic(t *testing.T) {
	rw := newRotationWorld(t)
	w0, w1, w2 := rw.wraps[0], rw.wraps[1], rw.wraps[2]
	short := mustJSON(t, api.Wrap{Member: rw.members[2], Epoch: 2, Wrap: randomBytes(coffer.WrapSize - 1)})
	oldEpoch := mustJSON(t, api.Wrap{Member: rw.members[2], Epoch: 1, Wrap: randomBytes(coffer.WrapSize)})
	stranger := mustJSON(t, api.Wrap{Member: coffer.NewAccountID(), Epoch: 2, Wrap: randomBytes(coffer.WrapSize)})
	badLink := mustJSON(t, []api.HistoryLink{{Epoch: 2, Link: randomBytes(coffer.HistoryLinkSize)}})
	head := fmt.Sprintf(`{"commit":%s,"links":%s,"wraps":[`, rw.commit, rw.links)
	for _, tt := range []struct {
		name, body string
		status     int
		code       coffer.Code
	}{
		{"last wrap short", head + fmt.Sprintf(`%s,%s,%s]}`, w0, w1, short), 400, coffer.EINVALID},
		{"last wrap of another epoch", head + fmt.Sprintf(`%s,%s,%s]}`, w0, w1, oldEpoch), 400, coffer.EINVALID},
		{"wrap for a non-member", head + fmt.Sprintf(`%s,%s,%s,%s]}`, w0, w1, w2, stranger), 400, coffer.EINVALID},
		{"duplicate wrap", head + fmt.Sprintf(`%s,%s,%s,%s]}`, w0, w1, w2, w1), 400, coffer.EINVALID},
		{"missing wrap", head + fmt.Sprintf(`%s,%s]}`, w0, w1), 400, coffer.EINVALID},
		{"not JSON after the wraps", head + fmt.Sprintf(`%s,%s,%s]`, w0, w1, w2), 400, coffer.EINVALID},
		{"malformed wrap", head + fmt.Sprintf(`%s,%s,{"member":1}]}`, w0, w1), 400, coffer.EINVALID},
		{"unknown field after the wraps", head + fmt.Sprintf(`%s,%s,%s],"extra":1}`, w0, w1, w2), 400, coffer.EINVALID},
		{"unknown field inside a wrap", head + fmt.Sprintf(`%s,%s,{"member":"%s","epoch":2,"wrap":"","x":1}]}`, w0, w1, rw.members[2]), 400, coffer.EINVALID},
		{"second wraps array", head + fmt.Sprintf(`%s,%s,%s],"wraps":[]}`, w0, w1, w2), 400, coffer.EINVALID},
		{"trailing value", head + fmt.Sprintf(`%s,%s,%s]} {}`, w0, w1, w2), 400, coffer.EINVALID},
		{"bad link after the wraps", fmt.Sprintf(`{"commit":%s,"wraps":[%s,%s,%s],"links":%s}`, rw.commit, w0, w1, w2, badLink), 400, coffer.EINVALID},
		{"no link", fmt.Sprintf(`{"commit":%s,"wraps":[%s,%s,%s]}`, rw.commit, w0, w1, w2), 400, coffer.EINVALID},
		{"meta after the wraps too large", fmt.Sprintf(`{"commit":%s,"links":%s,"wraps":[%s,%s,%s],"meta":%s}`,
			rw.commit, rw.links, w0, w1, w2, mustJSON(t, randomBytes(64<<10+1))), 413, coffer.ETOOLARGE},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rw.post(t, bytes.NewReader([]byte(tt.body))).Check(t, tt.status, tt.code)
			if seq, n := rw.stored(t); seq != 1 || n != 0 {
				t.Fatalf("a refused append left the group at seq %d with %d wraps of epoch 2", seq, n)
			}
		})
	}
	t.Run("body cut short", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, err := http.NewRequest(http.MethodPost, rw.ts.URL+"/v1/groups/"+rw.g.String()+"/commits", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+rw.owner.token)
		done := make(chan struct{})
		go func() {
			defer close(done)
			// The transport fails the request: only what is stored counts.
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		fmt.Fprintf(pw, `%s%s,%s`, head, w0, w1)
		pw.CloseWithError(io.ErrUnexpectedEOF)
		<-done
		if seq, n := rw.stored(t); seq != 1 || n != 0 {
			t.Fatalf("a body cut short left the group at seq %d with %d wraps of epoch 2", seq, n)
		}
	})
	// The links may follow the wraps.
	rw.post(t, bytes.NewReader(fmt.Appendf(nil, `{"commit":%s,"wraps":[%s,%s,%s],"links":%s}`, rw.commit, w0, w1, w2, rw.links))).
		Check(t, http.StatusCreated, "")
	if seq, n := rw.stored(t); seq != 2 || n != 3 {
		t.Fatalf("after the append the group is at seq %d with %d wraps of epoch 2, want 2 and 3", seq, n)
	}
}
