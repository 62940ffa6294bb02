package server

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// A commit that starts an epoch in a large group carries a wrap for every
// member (16 MB of JSON for 10,000). The append reads the request's members
// one at a time instead of the whole value: the commit, links and meta as
// they come, and, once the commit is known, the wraps one by one, each
// checked and handed to the store, which copies them into PostgreSQL in the
// commit's transaction. A bad wrap, a missing one or a bad member after them
// rolls the whole append back: it stays atomic.

// streamWrapsFrom is the number of wraps from which an append streams them
// into PostgreSQL. Streaming holds a database connection, and the lock the
// wraps' foreign key takes on the group's row (which deletes and uploads in
// the group wait for), while the client sends the wraps; a small append
// reads them first, as before, and holds both only for its short store.
var streamWrapsFrom = 1024

// commitReader reads an api.CommitRequest member by member.
type commitReader struct {
	dec   *json.Decoder
	limit int64
	req   api.CommitRequest
	seen  map[string]bool
	// inWraps: the decoder stands inside the wraps array, whose elements
	// the caller reads with nextWrap.
	inWraps bool
}

// readCommitRequest reads the request up to its wraps when the commit comes
// before them (as clientlib sends it), or else to its end.
func readCommitRequest(w http.ResponseWriter, r *http.Request, limit int64) (*commitReader, error) {
	if err := checkJSONContentType(r); err != nil {
		return nil, err
	}
	if pb, ok := r.Body.(*progressBody); ok {
		pb.wholeBy()
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	cr := &commitReader{dec: dec, limit: limit, seen: map[string]bool{}}
	t, err := dec.Token()
	if err != nil {
		return nil, jsonError(err, limit)
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, coffer.Errorf(coffer.EINVALID, "request body must be a JSON object")
	}
	return cr, cr.readMembers(true)
}

// readMembers reads the object's members until the wraps array, when
// stopAtWraps and the commit has been read, or to the end of the body.
func (cr *commitReader) readMembers(stopAtWraps bool) error {
	for cr.dec.More() {
		t, err := cr.dec.Token()
		if err != nil {
			return jsonError(err, cr.limit)
		}
		name, _ := t.(string)
		field := strings.ToLower(name)
		if cr.seen[field] {
			return coffer.Errorf(coffer.EINVALID, "field %q appears twice", name)
		}
		cr.seen[field] = true
		var dst any
		switch field {
		case "commit":
			dst = &cr.req.Commit
		case "links":
			dst = &cr.req.Links
		case "meta":
			dst = &cr.req.Meta
		case "tree_ciphertexts":
			dst = &cr.req.TreeCiphertexts
		case "tree_keys":
			dst = &cr.req.TreeKeys
		case "wraps":
			if !stopAtWraps || !cr.seen["commit"] {
				dst = &cr.req.Wraps
				break
			}
			t, err := cr.dec.Token()
			if err != nil {
				return jsonError(err, cr.limit)
			}
			if t == nil {
				continue // null: no wraps
			}
			if d, ok := t.(json.Delim); !ok || d != '[' {
				return coffer.Errorf(coffer.EINVALID, "field %q must be of JSON type array", "wraps")
			}
			cr.inWraps = true
			return nil
		default:
			return coffer.Errorf(coffer.EINVALID, "unknown field %q", name)
		}
		if err := cr.dec.Decode(dst); err != nil {
			return jsonError(err, cr.limit)
		}
	}
	if _, err := cr.dec.Token(); err != nil { // the closing brace
		return jsonError(err, cr.limit)
	}
	if _, err := cr.dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err, cr.limit)
		}
		return coffer.Errorf(coffer.EINVALID, "request body must contain a single JSON value")
	}
	return nil
}

// nextWrap reads the next wrap of the array, or io.EOF after the last one,
// having read the rest of the body.
func (cr *commitReader) nextWrap() (api.Wrap, error) {
	var wr api.Wrap
	if !cr.inWraps {
		return wr, io.EOF
	}
	if cr.dec.More() {
		if err := cr.dec.Decode(&wr); err != nil {
			return wr, jsonError(err, cr.limit)
		}
		return wr, nil
	}
	if _, err := cr.dec.Token(); err != nil { // the closing bracket
		return wr, jsonError(err, cr.limit)
	}
	cr.inWraps = false
	if err := cr.readMembers(false); err != nil {
		return wr, err
	}
	return wr, io.EOF
}

// readWraps reads the wraps that cr still has to read, and the rest of the
// body, into cr.req: for an append small enough not to stream them. The
// body limit bounds them.
func (cr *commitReader) readWraps() error {
	for {
		wr, err := cr.nextWrap()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		cr.req.Wraps = append(cr.req.Wraps, wr)
	}
}

// streamWraps sets a.WrapStream to check and yield the wraps that cr
// still has to read, and then the links and meta that follow them (the
// checks of buildAppend, made as the wraps arrive).
func (s *Server) streamWraps(cr *commitReader, prev *appendBase, a *coffer.GroupAppend) {
	want := wantedWraps(prev, a.State, a.Parsed)
	a.WrapStream = func() (coffer.Wrap, error) {
		wr, err := cr.nextWrap()
		if errors.Is(err, io.EOF) {
			for id := range want {
				return coffer.Wrap{}, coffer.Errorf(coffer.EINVALID, "missing wrap of the epoch %d key for member %s", a.State.Epoch, id)
			}
			if err := s.checkLinksAndMeta(prev, a, &cr.req); err != nil {
				return coffer.Wrap{}, err
			}
			return coffer.Wrap{}, io.EOF
		}
		if err != nil {
			return coffer.Wrap{}, err
		}
		if err := checkWrap(want, a.State.Epoch, wr); err != nil {
			return coffer.Wrap{}, err
		}
		return coffer.Wrap{Member: wr.Member, Epoch: wr.Epoch, Data: wr.Wrap}, nil
	}
}

func checkJSONContentType(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return coffer.Errorf(coffer.EINVALID, "Content-Type must be application/json")
		}
	}
	return nil
}
