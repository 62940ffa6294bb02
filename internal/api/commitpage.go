package api

import (
	"encoding/binary"
	"fmt"
	"mime"
	"strings"

	"github.com/cofferhq/coffer"
)

// CommitPageType is the media type of the compact encoding of a page of
// commits, which a client asks for with Accept on
// GET /v1/groups/{id}/commits. A sync of a long history is mostly commit
// bodies and signatures: in JSON each is base64, a third larger, and
// decoding it costs more than verifying the signature. Here they are the
// stored bytes, length-prefixed:
//
//	version   uint8 = 1
//	count     uint32
//	count × ( body_length uint32, body, signature_length uint8, signature )
//
// Version 2 is the same with signature_length a uint16: the hybrid
// signatures of suite v2 commits (3,373 bytes) do not fit a byte. A page
// whose signatures all fit one is written as version 1.
//
// All integers are big-endian. The bytes are untrusted like any response:
// ParseCommitPage bounds every length before it reads, and the client
// verifies every commit with the chain verifier as it would from JSON.
const CommitPageType = "application/vnd.coffer.commit-page"

// Versions of CommitPageType.
const (
	commitPageVersion     = 1
	commitPageVersionWide = 2
)

// AppendCommitPage appends the encoding of commits to b.
func AppendCommitPage(b []byte, commits []coffer.SignedCommit) []byte {
	n, version := 5, uint8(commitPageVersion)
	for _, sc := range commits {
		n += 6 + len(sc.Body) + len(sc.Signature)
		if len(sc.Signature) > 255 {
			version = commitPageVersionWide
		}
	}
	b = append(make([]byte, 0, len(b)+n), b...)
	b = append(b, version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(commits)))
	for _, sc := range commits {
		b = binary.BigEndian.AppendUint32(b, uint32(len(sc.Body)))
		b = append(b, sc.Body...)
		if version == commitPageVersionWide {
			b = binary.BigEndian.AppendUint16(b, uint16(len(sc.Signature)))
		} else {
			b = append(b, uint8(len(sc.Signature)))
		}
		b = append(b, sc.Signature...)
	}
	return b
}

// ParseCommitPage decodes a page of at most maxCount commits. Bodies and
// signatures alias data. A body over coffer.MaxCommitSize, a count over
// maxCount, a length past the end and trailing bytes are errors.
func ParseCommitPage(data []byte, maxCount int) ([]coffer.SignedCommit, error) {
	if len(data) < 5 {
		return nil, fmt.Errorf("commit page: %d bytes, too short", len(data))
	}
	wide := data[0] == commitPageVersionWide
	if data[0] != commitPageVersion && !wide {
		return nil, fmt.Errorf("commit page: unknown version %d", data[0])
	}
	count := binary.BigEndian.Uint32(data[1:5])
	if uint64(count) > uint64(maxCount) {
		return nil, fmt.Errorf("commit page: %d commits, more than the %d asked for", count, maxCount)
	}
	// Each commit takes at least 5 bytes: a count the data cannot hold is
	// refused before anything is allocated for it.
	rest := data[5:]
	if uint64(count)*5 > uint64(len(rest)) {
		return nil, fmt.Errorf("commit page: %d commits cannot fit in %d bytes", count, len(rest))
	}
	out := make([]coffer.SignedCommit, count)
	for i := range out {
		if len(rest) < 4 {
			return nil, fmt.Errorf("commit page: commit %d is truncated", i)
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if n > coffer.MaxCommitSize || uint64(n)+1 > uint64(len(rest)) {
			return nil, fmt.Errorf("commit page: commit %d has a body of %d bytes, over the limit or past the end", i, n)
		}
		out[i].Body, rest = rest[:n:n], rest[n:]
		var s int
		if wide {
			if len(rest) < 2 {
				return nil, fmt.Errorf("commit page: commit %d is truncated", i)
			}
			s, rest = int(binary.BigEndian.Uint16(rest)), rest[2:]
		} else {
			s, rest = int(rest[0]), rest[1:]
		}
		if s > len(rest) {
			return nil, fmt.Errorf("commit page: commit %d has a signature past the end", i)
		}
		out[i].Signature, rest = rest[:s:s], rest[s:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("commit page: %d trailing bytes", len(rest))
	}
	return out, nil
}

// AcceptsCommitPage reports whether an Accept header value lists
// CommitPageType.
func AcceptsCommitPage(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		if mt, params, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == CommitPageType && params["q"] != "0" {
			return true
		}
	}
	return false
}
