package clientlib

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"github.com/cofferhq/coffer/internal/api"
)

// A request for log proofs asks for the compact encoding of the answer
// (api.LogProofsType) and takes JSON too, from servers that predate it. A
// sync proves every commit it reads, and in JSON the proofs' base64 hashes
// cost more to decode than to check. The compact answer is read in one
// allocation when the server states its length; its hashes and leaves are
// slices of it. Nothing in it is trusted: every caller checks the answer's
// size, each entry's identity and each inclusion proof exactly as from
// JSON, and an answer that does not parse is a security error.

// logProofsAccept is the Accept header of a request for log proofs.
const logProofsAccept = api.LogProofsType + ", application/json;q=0.5"

// logProofs posts req to /v1/log/proofs and returns the answer in either
// encoding, unchecked.
func (c *Client) logProofs(ctx context.Context, req api.LogProofsRequest) (api.LogProofs, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return api.LogProofs{}, err
	}
	asked := len(req.Commits) + len(req.Accounts) + len(req.Versions)
	var out api.LogProofs
	err = c.do(ctx, http.MethodPost, "/v1/log/proofs", false, func() io.Reader { return bytes.NewReader(body) }, logProofsAccept,
		func(resp *http.Response) (err error) {
			out, err = readLogProofs(resp, asked)
			return err
		})
	return out, err
}

// readLogProofs decodes an answer to a request for asked proofs. A compact
// answer that does not parse, or holds more proofs than were asked for, is
// a security error: an honest server never sends one.
func readLogProofs(resp *http.Response, asked int) (api.LogProofs, error) {
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != api.LogProofsType {
		var out api.LogProofs
		err := readResponse(resp, &out)
		return out, err
	}
	defer resp.Body.Close()
	data, err := readBounded(resp, maxResponse)
	if err != nil {
		return api.LogProofs{}, err
	}
	out, err := api.ParseLogProofs(data, asked)
	if err != nil {
		return api.LogProofs{}, logSecurity("%v", err)
	}
	return out, nil
}
