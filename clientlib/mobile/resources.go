package mobile

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
)

// MaxGetBytes caps GetBytes, which holds the whole plaintext in memory;
// use GetFile for anything larger.
const MaxGetBytes = 256 << 20

// Meta describes a resource to Put. Everything in it is encrypted.
type Meta struct {
	// Name is required: 1 to 1024 bytes of UTF-8.
	Name        string
	ContentType string
	// AppJSON is optional application-defined JSON.
	AppJSON string
}

// Resource is a verified resource version.
type Resource struct {
	ID      string `json:"id"`
	GroupID string `json:"group_id"`
	Version int64  `json:"version"`
	Epoch   int64  `json:"epoch"`
	// AuthorID and AuthorHandle name the member who signed it.
	AuthorID     string `json:"author_id"`
	AuthorHandle string `json:"author_handle"`
	// CreatedMillis is the author's clock at signing, in Unix milliseconds
	// (informational: the author chose it).
	CreatedMillis int64  `json:"created_millis"`
	Name          string `json:"name"`
	ContentType   string `json:"content_type,omitempty"`
	// Size is the plaintext size; ContentSize the ciphertext's.
	Size        int64  `json:"size"`
	ContentSize int64  `json:"content_size"`
	AppJSON     string `json:"app_json,omitempty"`
	// Locked is set in a List for a resource from before this member
	// joined a group that does not share history: it cannot be read.
	Locked bool `json:"locked,omitempty"`
}

func resourceOf(r *clientlib.Resource) *Resource {
	return &Resource{
		ID: r.ID.String(), GroupID: r.Group.String(), Version: int64(r.Version), Epoch: int64(r.Epoch),
		AuthorID: r.Author.String(), AuthorHandle: string(r.AuthorHandle), CreatedMillis: r.Created.UnixMilli(),
		Name: r.Meta.Name, ContentType: r.Meta.ContentType, Size: r.Meta.Size, ContentSize: r.ContentSize,
		AppJSON: string(r.Meta.App), Locked: r.Locked,
	}
}

// ResourceList is a list of resources, newest first.
type ResourceList struct{ items []*Resource }

// Len returns the number of resources.
func (l *ResourceList) Len() int64 {
	defer guardQuiet()
	if l == nil {
		return 0
	}
	return int64(len(l.items))
}

// Get returns resource i, 0 <= i < Len().
func (l *ResourceList) Get(i int64) (r *Resource, err error) {
	defer guard(&err)
	if l == nil || i < 0 || i >= int64(len(l.items)) {
		return nil, newError(CodeInvalid, "index %d out of range", i)
	}
	return l.items[i], nil
}

// JSON returns the list as a JSON array.
func (l *ResourceList) JSON() (b []byte, err error) {
	defer guard(&err)
	return listJSON(l.items)
}

func libMeta(m *Meta, size int64) (clientlib.Meta, error) {
	if m == nil {
		return clientlib.Meta{}, newError(CodeInvalid, "a Meta with a Name is required")
	}
	out := clientlib.Meta{Name: m.Name, ContentType: m.ContentType, Size: size}
	if m.AppJSON != "" {
		if !json.Valid([]byte(m.AppJSON)) {
			return out, newError(CodeInvalid, "Meta.AppJSON must be valid JSON")
		}
		out.App = json.RawMessage(m.AppJSON)
	}
	return out, nil
}

func parseIDs(groupID, resourceID string) (coffer.GroupID, coffer.ResourceID, error) {
	g, err := coffer.ParseGroupID(groupID)
	if err != nil {
		return g, coffer.ResourceID{}, wrap(err, nil)
	}
	r, err := coffer.ParseResourceID(resourceID)
	return g, r, wrap(err, nil)
}

// PutBytes encrypts data and uploads it as a new resource of the group;
// this account must be a writer. progress and cancel may be nil. The
// slice is only read during the call.
func (c *Client) PutBytes(groupID string, data []byte, meta *Meta, progress Progress, cancel *Cancel) (r *Resource, err error) {
	defer guard(&err)
	return c.put(groupID, "", 0, bytes.NewReader(data), int64(len(data)), meta, progress, cancel)
}

// PutFile encrypts the file at path and uploads it as a new resource,
// streaming: memory use does not grow with the file's size.
func (c *Client) PutFile(groupID, path string, meta *Meta, progress Progress, cancel *Cancel) (r *Resource, err error) {
	defer guard(&err)
	f, size, err := openForUpload(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return c.put(groupID, "", 0, f, size, meta, progress, cancel)
}

// ReplaceBytes uploads data as a new version of resource resourceID.
// ifVersion is the version being replaced (CodePrecondition if another
// writer replaced it first), or 0 for whatever is current.
func (c *Client) ReplaceBytes(groupID, resourceID string, ifVersion int64, data []byte, meta *Meta, progress Progress, cancel *Cancel) (r *Resource, err error) {
	defer guard(&err)
	if resourceID == "" {
		return nil, newError(CodeInvalid, "a resource id is required")
	}
	return c.put(groupID, resourceID, ifVersion, bytes.NewReader(data), int64(len(data)), meta, progress, cancel)
}

// ReplaceFile is ReplaceBytes with the content read from the file at path.
func (c *Client) ReplaceFile(groupID, resourceID string, ifVersion int64, path string, meta *Meta, progress Progress, cancel *Cancel) (r *Resource, err error) {
	defer guard(&err)
	if resourceID == "" {
		return nil, newError(CodeInvalid, "a resource id is required")
	}
	f, size, err := openForUpload(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return c.put(groupID, resourceID, ifVersion, f, size, meta, progress, cancel)
}

func openForUpload(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, wrap(err, nil)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, wrap(err, nil)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, newError(CodeIO, "%s is not a regular file", path)
	}
	return f, fi.Size(), nil
}

// put is Put (resourceID "") or Replace.
func (c *Client) put(groupID, resourceID string, ifVersion int64, r io.Reader, size int64, meta *Meta, progress Progress, cancel *Cancel) (*Resource, error) {
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	g, err := coffer.ParseGroupID(groupID)
	if err != nil {
		return nil, wrap(err, nil)
	}
	m, err := libMeta(meta, size)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		// Meta.Size 0 means "unknown" to clientlib, which then fills it in.
		m.Size = 0
	}
	o := newOp(cancel)
	defer o.cancel()
	opts := &clientlib.PutOptions{Progress: o.progress(progress)}
	ctx := o.ctx
	var res *clientlib.Resource
	if resourceID == "" {
		res, err = cl.PutWithOptions(ctx, g, r, m, opts)
	} else {
		if ifVersion < 0 {
			return nil, newError(CodeInvalid, "ifVersion must not be negative")
		}
		id, perr := coffer.ParseResourceID(resourceID)
		if perr != nil {
			return nil, wrap(perr, nil)
		}
		res, err = cl.Replace(ctx, g, id, uint64(ifVersion), r, m, opts)
	}
	if err != nil {
		return nil, o.wrap(err)
	}
	return resourceOf(res), nil
}

// GetBytes downloads, verifies and decrypts a resource and returns its
// content (CodeTooLarge over MaxGetBytes: use GetFile). progress and cancel
// may be nil. CodeNotFound: the resource is gone, or this account is no
// longer a member. CodeSecurity: the content or its header was tampered
// with; nothing is returned.
func (c *Client) GetBytes(groupID, resourceID string, progress Progress, cancel *Cancel) (b []byte, err error) {
	defer guard(&err)
	o := newOp(cancel)
	defer o.cancel()
	rr, err := c.open(o, groupID, resourceID, progress)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	size := rr.Resource().Meta.Size
	if size > MaxGetBytes {
		return nil, newError(CodeTooLarge, "the resource has %d bytes; GetBytes returns at most %d: use GetFile", size, MaxGetBytes)
	}
	// The size is the author's signed claim, and the reader fails unless
	// the content has exactly that many bytes: one allocation, no copies
	// (bytes.Buffer grows when less than MinRead bytes are free).
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	if _, err := io.Copy(buf, io.LimitReader(rr, MaxGetBytes+1)); err != nil {
		return nil, o.wrap(err)
	}
	if buf.Len() > MaxGetBytes {
		return nil, newError(CodeTooLarge, "the resource is over %d bytes: use GetFile", MaxGetBytes)
	}
	return buf.Bytes(), nil
}

// GetFile downloads, verifies and decrypts a resource into the file at
// path, streaming, and returns its description. The content goes to a
// temporary file next to path that is renamed over path only once all of
// it verified: a tampered or interrupted download leaves path untouched.
func (c *Client) GetFile(groupID, resourceID, path string, progress Progress, cancel *Cancel) (r *Resource, err error) {
	defer guard(&err)
	o := newOp(cancel)
	defer o.cancel()
	rr, err := c.open(o, groupID, resourceID, progress)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".coffer-*")
	if err != nil {
		return nil, wrap(err, nil)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err := io.Copy(f, rr); err != nil {
		f.Close()
		return nil, o.wrap(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, wrap(err, nil)
	}
	if err := f.Close(); err != nil {
		return nil, wrap(err, nil)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, wrap(err, nil)
	}
	return resourceOf(rr.Resource()), nil
}

func (c *Client) open(o *op, groupID, resourceID string, progress Progress) (*clientlib.ResourceReader, error) {
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	g, id, err := parseIDs(groupID, resourceID)
	if err != nil {
		return nil, err
	}
	rr, err := cl.GetWithOptions(o.ctx, g, id, &clientlib.GetOptions{Progress: o.progress(progress)})
	if err != nil {
		return nil, o.wrap(err)
	}
	return rr, nil
}

// Head returns a resource's verified description without its content.
func (c *Client) Head(groupID, resourceID string) (r *Resource, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	g, id, err := parseIDs(groupID, resourceID)
	if err != nil {
		return nil, err
	}
	res, err := cl.Head(bg(), g, id)
	if err != nil {
		return nil, wrap(err, nil)
	}
	return resourceOf(res), nil
}

// List returns every resource of the group, newest first, each verified,
// with decrypted metadata and without content.
func (c *Client) List(groupID string) (l *ResourceList, err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	g, err := parseGroup(groupID)
	if err != nil {
		return nil, err
	}
	rs, err := cl.List(bg(), g)
	if err != nil {
		return nil, wrap(err, nil)
	}
	l = &ResourceList{}
	for _, r := range rs {
		l.items = append(l.items, resourceOf(r))
	}
	return l, nil
}

// Delete deletes a resource. Its author (while a writer) or an admin may.
func (c *Client) Delete(groupID, resourceID string) (err error) {
	defer guard(&err)
	cl, err := c.lib()
	if err != nil {
		return err
	}
	g, id, err := parseIDs(groupID, resourceID)
	if err != nil {
		return err
	}
	return wrap(cl.Delete(bg(), g, id), nil)
}

// GetRange downloads, verifies and decrypts plaintext bytes [offset,
// offset+length) of a resource (length -1: to the end; a range past the end
// is cut there) and returns them, at most MaxGetBytes (CodeTooLarge beyond).
// Only the chunks that hold the range travel, each proven against the
// author's signed chunk tree before it is decrypted, so a player can seek
// in a large video. CodeSecurity: a chunk, its proof or the header was
// tampered with; nothing is returned. progress and cancel may be nil.
func (c *Client) GetRange(groupID, resourceID string, offset, length int64, progress Progress, cancel *Cancel) (b []byte, err error) {
	defer guard(&err)
	o := newOp(cancel)
	defer o.cancel()
	if length < -1 {
		return nil, newError(CodeInvalid, "length must be -1 (to the end) or at least 0, not %d", length)
	}
	if length > MaxGetBytes {
		return nil, newError(CodeTooLarge, "GetRange returns at most %d bytes, not %d", MaxGetBytes, length)
	}
	cl, err := c.lib()
	if err != nil {
		return nil, err
	}
	g, id, err := parseIDs(groupID, resourceID)
	if err != nil {
		return nil, err
	}
	rr, err := cl.GetRangeWithOptions(o.ctx, g, id, offset, length, &clientlib.RangeOptions{Progress: o.progress(progress)})
	if err != nil {
		return nil, o.wrap(err)
	}
	defer rr.Close()
	if rr.Len() > MaxGetBytes {
		return nil, newError(CodeTooLarge, "the range has %d bytes; GetRange returns at most %d", rr.Len(), MaxGetBytes)
	}
	buf := bytes.NewBuffer(make([]byte, 0, rr.Len()+bytes.MinRead))
	if _, err := io.Copy(buf, rr); err != nil {
		return nil, o.wrap(err)
	}
	return buf.Bytes(), nil
}
