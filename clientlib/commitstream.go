package clientlib

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// A commit that starts an epoch carries a wrap of the new key for every
// member: about 1.6 KB of JSON each, 16 MB for a group of 10,000. The
// request is streamed: the wraps are sealed on every core (WrapEach) and
// written to the connection in order as they are sealed, so the client
// never holds them all, nor their JSON. The body is the JSON of an
// api.CommitRequest, with the wraps last.

// wrapStream is one commit request whose wraps are sealed as it is sent.
type wrapStream struct {
	head       []byte // the request's JSON up to the wraps array, open
	recipients []groupkey.Recipient
	g          coffer.GroupID
	epoch      uint64
	k          groupkey.EpochKey
	wrapSize   int // the JSON of one wrap, which has a fixed size
	// journal collects the whole body when it is small enough to be
	// journaled (journalMaxEntry): allocated once, at its exact size.
	journal []byte
}

func newWrapStream(req *api.CommitRequest, recipients []groupkey.Recipient, g coffer.GroupID, epoch uint64, k groupkey.EpochKey) (*wrapStream, error) {
	// The fields of api.CommitRequest as encoding/json writes them, the
	// wraps last and left open.
	head := []byte(`{"commit":`)
	commit, err := json.Marshal(req.Commit)
	if err != nil {
		return nil, err
	}
	head = append(head, commit...)
	if len(req.Links) > 0 {
		links, err := json.Marshal(req.Links)
		if err != nil {
			return nil, err
		}
		head = append(append(head, `,"links":`...), links...)
	}
	if req.Meta != nil {
		meta, err := json.Marshal(req.Meta)
		if err != nil {
			return nil, err
		}
		head = append(append(head, `,"meta":`...), meta...)
	}
	if len(req.TreeKeys) > 0 {
		keys, err := json.Marshal(req.TreeKeys)
		if err != nil {
			return nil, err
		}
		head = append(append(head, `,"tree_keys":`...), keys...)
	}
	if len(req.TreeCiphertexts) > 0 {
		cts, err := json.Marshal(req.TreeCiphertexts)
		if err != nil {
			return nil, err
		}
		head = append(append(head, `,"tree_ciphertexts":`...), cts...)
	}
	head = append(head, `,"wraps":[`...)
	ws := &wrapStream{head: head, recipients: recipients, g: g, epoch: epoch, k: k}
	ws.wrapSize = len(appendWrapJSON(nil, coffer.AccountID{}, epoch, make([]byte, coffer.WrapSize)))
	return ws, nil
}

// size is the exact length of the body.
func (ws *wrapStream) size() int {
	n := len(ws.head) + len(ws.recipients)*ws.wrapSize + 2
	if len(ws.recipients) > 1 {
		n += len(ws.recipients) - 1
	}
	return n
}

// appendWrapJSON appends the JSON of api.Wrap{member, epoch, wrap}, as
// encoding/json writes it.
func appendWrapJSON(b []byte, member coffer.AccountID, epoch uint64, wrap []byte) []byte {
	b = append(b, `{"member":"`...)
	b = append(b, member.String()...)
	b = append(b, `","epoch":`...)
	b = strconv.AppendUint(b, epoch, 10)
	b = append(b, `,"wrap":"`...)
	b = base64.StdEncoding.AppendEncode(b, wrap)
	return append(b, `"}`...)
}

// writeTo seals and writes the body to w.
func (ws *wrapStream) writeTo(w io.Writer) error {
	if ws.size() <= journalMaxEntry {
		ws.journal = make([]byte, 0, ws.size())
	} else {
		ws.journal = nil
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	write := func(p []byte) error {
		if ws.journal != nil {
			ws.journal = append(ws.journal, p...)
		}
		_, err := bw.Write(p)
		return err
	}
	if err := write(ws.head); err != nil {
		return err
	}
	scratch := make([]byte, 0, ws.wrapSize+1)
	err := groupkey.WrapEach(ws.recipients, ws.g, ws.epoch, ws.k, func(i int, wrap []byte) error {
		scratch = scratch[:0]
		if i > 0 {
			scratch = append(scratch, ',')
		}
		return write(appendWrapJSON(scratch, ws.recipients[i].Member, ws.epoch, wrap))
	})
	if err != nil {
		return err
	}
	if err := write([]byte("]}")); err != nil {
		return err
	}
	return bw.Flush()
}

// postCommit sends req with the wraps of k for recipients streamed after
// it, to path. It returns the body sent, for the journal, when it is
// small enough to journal.
func (c *Client) postCommit(ctx context.Context, path string, req *api.CommitRequest, recipients []groupkey.Recipient, g coffer.GroupID, epoch uint64, k groupkey.EpochKey) ([]byte, error) {
	ws, err := newWrapStream(req, recipients, g, epoch, k)
	if err != nil {
		return nil, err
	}
	var writing chan struct{}
	newBody := func() io.Reader {
		if writing != nil {
			<-writing // the body of the attempt before, abandoned
		}
		pr, pw := io.Pipe()
		done := make(chan struct{})
		writing = done
		go func() {
			defer close(done)
			pw.CloseWithError(ws.writeTo(pw))
		}()
		return pr
	}
	err = c.do(ctx, http.MethodPost, path, true, newBody, "application/json", func(resp *http.Response) error {
		return readResponse(resp, nil)
	})
	if writing != nil {
		<-writing
	}
	if err != nil {
		return nil, err
	}
	return ws.journal, nil
}
