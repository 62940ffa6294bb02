package api

import (
	"encoding/binary"
	"fmt"
	"math"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer"
)

// ResourceType is the media type of the compact encoding of one resource's
// read answer (GET /v1/groups/{g}/resources/{r}), which a client asks for
// with Accept. A small read is one such answer: in JSON its header,
// metadata and content are base64 and the checkpoint an escaped string,
// and decoding them was the largest cost of the client's read. Here they
// are the stored bytes, length-prefixed:
//
//	version           uint8 = 1
//	id                16 bytes
//	group_id          16 bytes
//	resource_version  uint64
//	author_id         16 bytes
//	epoch             uint64
//	size              uint64 (at most 2^63-1)
//	created_at        int64, Unix microseconds
//	updated_at        int64, Unix microseconds
//	header_body       uint32 length, bytes
//	header_signature  uint16 length, bytes
//	meta              uint32 length, bytes
//	has_content       uint8, 0 or 1
//	content           uint32 length, bytes (only when has_content is 1)
//	checkpoint        uint32 length, bytes (0: none)
//
// All integers are big-endian. The bytes are untrusted like any response:
// ParseResource bounds every length before it reads, and the client
// verifies the header, metadata, content and log place exactly as from
// JSON. The encoding is canonical: an answer has one encoding.
const ResourceType = "application/vnd.coffer.resource"

// resourceAnswerVersion is the version of ResourceType.
const resourceAnswerVersion = 1

// Bounds of the fields of ResourceType, checked before anything is
// allocated for them.
const (
	// MaxResourceHeaderBody bounds a signed header's body (a few hundred
	// bytes in practice).
	MaxResourceHeaderBody = 64 << 10
	// MaxCheckpointNote bounds a checkpoint note with its cosignatures.
	MaxCheckpointNote = 64 << 10
	// MaxResourceAnswer bounds a whole answer.
	MaxResourceAnswer = resourceFixed + MaxResourceHeaderBody + math.MaxUint16 +
		coffer.MaxResourceMetaSize + coffer.MaxInlineContentSize + MaxCheckpointNote
)

// resourceFixed is the size of the fixed fields and the length prefixes.
const resourceFixed = 1 + 16 + 16 + 8 + 16 + 8 + 8 + 8 + 8 + 4 + 2 + 4 + 1 + 4 + 4

// AppendResource appends the encoding of r to b. It fails on a field over
// its bound, which a server would otherwise send and every client refuse.
func AppendResource(b []byte, r *Resource) ([]byte, error) {
	switch {
	case len(r.Header.Body) > MaxResourceHeaderBody, len(r.Header.Signature) > math.MaxUint16,
		len(r.Meta) > coffer.MaxResourceMetaSize, len(r.Content) > coffer.MaxInlineContentSize,
		len(r.Checkpoint) > MaxCheckpointNote, r.Size < 0:
		return b, fmt.Errorf("resource answer: a field is over its bound")
	}
	n := resourceFixed + len(r.Header.Body) + len(r.Header.Signature) + len(r.Meta) + len(r.Content) + len(r.Checkpoint)
	b = slices.Grow(b, n)
	b = append(b, resourceAnswerVersion)
	b = append(b, r.ID[:]...)
	b = append(b, r.GroupID[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Version)
	b = append(b, r.AuthorID[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(r.CreatedAt.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(r.UpdatedAt.UnixMicro()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Header.Body)))
	b = append(b, r.Header.Body...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Header.Signature)))
	b = append(b, r.Header.Signature...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Meta)))
	b = append(b, r.Meta...)
	if r.Content == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Content)))
		b = append(b, r.Content...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Checkpoint)))
	b = append(b, r.Checkpoint...)
	return b, nil
}

// resourceReader takes fields off the front of an answer; the first
// failure sticks.
type resourceReader struct {
	rest []byte
	err  error
}

func (d *resourceReader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("resource answer: "+format, args...)
	}
}

func (d *resourceReader) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.rest) {
		d.fail("%s: %d bytes past the end", what, n-len(d.rest))
		return nil
	}
	b := d.rest[:n:n]
	d.rest = d.rest[n:]
	return b
}

func (d *resourceReader) uint64(what string) uint64 {
	if b := d.take(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *resourceReader) id(what string) (id [16]byte) {
	copy(id[:], d.take(16, what))
	return id
}

// field reads a length of prefix bytes and then that many bytes, refusing
// a length over max before it reads.
func (d *resourceReader) field(prefix, max int, what string) []byte {
	p := d.take(prefix, what+" length")
	if p == nil {
		return nil
	}
	var n uint64
	for _, c := range p {
		n = n<<8 | uint64(c)
	}
	if n > uint64(max) {
		d.fail("%s of %d bytes, over the bound of %d", what, n, max)
		return nil
	}
	return d.take(int(n), what)
}

// ParseResource decodes an answer. Header, metadata and content alias
// data; a field over its bound, a length past the end, trailing bytes and
// an unknown version are errors.
func ParseResource(data []byte) (*Resource, error) {
	if len(data) == 0 || data[0] != resourceAnswerVersion {
		if len(data) == 0 {
			return nil, fmt.Errorf("resource answer: no bytes")
		}
		return nil, fmt.Errorf("resource answer: unknown version %d", data[0])
	}
	if len(data) > MaxResourceAnswer {
		return nil, fmt.Errorf("resource answer: %d bytes, over the bound of %d", len(data), MaxResourceAnswer)
	}
	d := &resourceReader{rest: data[1:]}
	r := &Resource{}
	r.ID = d.id("id")
	r.GroupID = d.id("group_id")
	r.Version = d.uint64("version")
	r.AuthorID = d.id("author_id")
	r.Epoch = d.uint64("epoch")
	size := d.uint64("size")
	if size > math.MaxInt64 {
		d.fail("size %d is negative as an int64", size)
	}
	r.Size = int64(size)
	r.CreatedAt = time.UnixMicro(int64(d.uint64("created_at"))).UTC()
	r.UpdatedAt = time.UnixMicro(int64(d.uint64("updated_at"))).UTC()
	r.Header.Body = d.field(4, MaxResourceHeaderBody, "header body")
	r.Header.Signature = d.field(2, math.MaxUint16, "header signature")
	r.Meta = d.field(4, coffer.MaxResourceMetaSize, "meta")
	switch has := d.take(1, "has_content"); {
	case has == nil:
	case has[0] == 1:
		r.Content = d.field(4, coffer.MaxInlineContentSize, "content")
	case has[0] != 0:
		d.fail("has_content is %d, not 0 or 1", has[0])
	}
	r.Checkpoint = string(d.field(4, MaxCheckpointNote, "checkpoint"))
	if d.err == nil && len(d.rest) != 0 {
		d.fail("%d trailing bytes", len(d.rest))
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// AcceptsResource reports whether an Accept header value lists
// ResourceType.
func AcceptsResource(accept string) bool {
	if !strings.Contains(accept, ResourceType) {
		return false
	}
	for part := range strings.SplitSeq(accept, ",") {
		if mt, params, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == ResourceType && params["q"] != "0" {
			return true
		}
	}
	return false
}
