package clientlib

import (
	"context"
	"mime"
	"net/http"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// A read of one resource asks for the compact encoding of its answer
// (api.ResourceType) and takes JSON too, from servers that predate it. The
// compact answer is read in one allocation when the server states its
// length, bounded by api.MaxResourceAnswer before anything is allocated,
// and its header, metadata and content are slices of it. Nothing in it is
// trusted: verifyResource checks it exactly as an answer in JSON.

// resourceAccept is the Accept header of a read of one resource.
const resourceAccept = api.ResourceType + ", application/json;q=0.5"

// getResourceAnswer GETs path, the answer about one resource, in either
// encoding.
func (c *Client) getResourceAnswer(ctx context.Context, path string) (*api.Resource, error) {
	var ar *api.Resource
	err := c.do(ctx, http.MethodGet, path, true, nil, resourceAccept, func(resp *http.Response) (err error) {
		ar, err = readResourceAnswer(resp)
		return err
	})
	return ar, err
}

// readResourceAnswer decodes an answer about one resource. A compact
// answer that does not parse is a security error: an honest server never
// sends one, and a client must not go on with a guess at its fields.
func readResourceAnswer(resp *http.Response) (*api.Resource, error) {
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != api.ResourceType {
		var ar api.Resource
		if err := readResponse(resp, &ar); err != nil {
			return nil, err
		}
		return &ar, nil
	}
	defer resp.Body.Close()
	data, err := readBounded(resp, api.MaxResourceAnswer)
	if err != nil {
		return nil, err
	}
	ar, err := api.ParseResource(data)
	if err != nil {
		return nil, coffer.Security("resource", err)
	}
	return ar, nil
}
