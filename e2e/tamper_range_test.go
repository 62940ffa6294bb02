package e2e_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
)

// These tests tamper with verified range reads (GET …/chunks) through a
// proxy that rewrites the request or the frames the server answers. Each
// read must stop at the chunk concerned with a security error naming it,
// after exactly the range's plaintext before that chunk.

// rangeFrame is one leaf of a /chunks answer: its proof and its bytes.
type rangeFrame struct {
	proof []byte
	data  []byte
}

func parseRangeFrames(t *testing.T, b []byte) []rangeFrame {
	t.Helper()
	var fs []rangeFrame
	for len(b) > 0 {
		np := int(binary.BigEndian.Uint16(b))
		f := rangeFrame{proof: bytes.Clone(b[2 : 2+32*np])}
		b = b[2+32*np:]
		n := int(binary.BigEndian.Uint32(b))
		f.data = bytes.Clone(b[4 : 4+n])
		b = b[4+n:]
		fs = append(fs, f)
	}
	return fs
}

func encodeRangeFrames(fs []rangeFrame) []byte {
	var b []byte
	for _, f := range fs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f.proof)/32))
		b = append(b, f.proof...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(f.data)))
		b = append(b, f.data...)
	}
	return b
}

// rangeProxy forwards to srv, letting request change the request and
// rewrite change the body of every answer to …/chunks.
func rangeProxy(t *testing.T, srv *Server, request func(*http.Request), rewrite func([]byte) []byte) string {
	t.Helper()
	target, _ := url.Parse(srv.URL())
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			if strings.HasSuffix(pr.Out.URL.Path, "/chunks") && request != nil {
				request(pr.Out)
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			if !strings.HasSuffix(resp.Request.URL.Path, "/chunks") || rewrite == nil || resp.StatusCode != http.StatusOK {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			resp.Body.Close()
			body = rewrite(body)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
	}
	ps := httptest.NewServer(rp)
	t.Cleanup(ps.Close)
	return ps.URL
}

func readRange(c *clientlib.Client, g coffer.GroupID, id coffer.ResourceID, off, n int64) ([]byte, error) {
	rr, err := c.GetRange(context.Background(), g, id, off, n)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	return io.ReadAll(rr)
}

// TestRangeRead reads ranges of an honest resource: each is the exact
// plaintext, and only the chunks holding it travel.
func TestRangeRead(t *testing.T) {
	t.Parallel()
	f := newChunkTamper(t)
	var served int
	proxyURL := rangeProxy(t, f.srv, nil, func(b []byte) []byte { served += len(b); return b })
	c, err := clientlib.New(proxyURL, f.carolKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(f.dataA))
	for _, rg := range [][2]int64{{0, n}, {0, 1}, {ptChunk - 1, 2}, {ptChunk + 100, 3*ptChunk - 200}, {n - 1, 1}, {4 * ptChunk, -1}, {3, -1}, {n - 5, 100}} {
		served = 0
		got, err := readRange(c, f.g, f.a.ID, rg[0], rg[1])
		end := n
		if rg[1] >= 0 {
			end = min(n, rg[0]+rg[1])
		}
		if err != nil || !bytes.Equal(got, f.dataA[rg[0]:end]) {
			t.Fatalf("range %d+%d: %d bytes, %v", rg[0], rg[1], len(got), err)
		}
		if first, count := content.ChunkSpan(rg[0], end-rg[0]); served > int(count)*(encChunk+1024)+1024 {
			t.Errorf("range %d+%d (chunks %d+%d) moved %d bytes", rg[0], rg[1], first, count, served)
		}
	}
	if got, err := readRange(c, f.g, f.a.ID, n, 10); err != nil || len(got) != 0 {
		t.Errorf("an empty range at the end: %d bytes, %v", len(got), err)
	}
	if _, err := readRange(c, f.g, f.a.ID, n+1, 10); coffer.ErrorCode(err) != coffer.EINVALID {
		t.Errorf("a range past the end: %v, want EINVALID", err)
	}
}

// TestTamperRange serves chunks 1 … 3 for the range from inside chunk 1 to
// inside chunk 3, mangled in every way a server can.
func TestTamperRange(t *testing.T) {
	t.Parallel()
	f := newChunkTamper(t)
	off, n := int64(ptChunk+100), int64(3*ptChunk-200)
	// Frames of resource b for the same span, captured through an honest
	// proxy: a chunk from another resource comes with its own proof.
	var otherFrames []rangeFrame
	capURL := rangeProxy(t, f.srv, nil, func(b []byte) []byte { otherFrames = parseRangeFrames(t, b); return b })
	capC, err := clientlib.New(capURL, f.carolKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readRange(capC, f.g, f.b.ID, off, n); err != nil || len(otherFrames) != 4 {
		t.Fatalf("capturing b's frames: %d frames, %v", len(otherFrames), err)
	}
	frames := func(mangle func(fs []rangeFrame) []rangeFrame) func([]byte) []byte {
		return func(b []byte) []byte { return encodeRangeFrames(mangle(parseRangeFrames(t, b))) }
	}
	// fs[0] is the header leaf, fs[i] chunk i for i = 1 … 3.
	for _, tc := range []struct {
		name    string
		request func(*http.Request)
		rewrite func([]byte) []byte
		chunk   int64
		kind    error
	}{
		{"swapped chunks 2 and 3", nil, frames(func(fs []rangeFrame) []rangeFrame {
			fs[2], fs[3] = fs[3], fs[2]
			return fs
		}), 2, content.ErrTampered},
		{"chunk 2 from another resource, with its proof", nil, frames(func(fs []rangeFrame) []rangeFrame {
			fs[2] = otherFrames[2]
			return fs
		}), 2, content.ErrTampered},
		{"reordered: chunk 3 first", nil, frames(func(fs []rangeFrame) []rangeFrame {
			return []rangeFrame{fs[0], fs[3], fs[1], fs[2]}
		}), 1, content.ErrTampered},
		{"truncated after chunk 1", nil, frames(func(fs []rangeFrame) []rangeFrame { return fs[:2] }), 2, content.ErrTruncated},
		{"truncated inside chunk 3", nil, func(b []byte) []byte { return b[:len(b)-500] }, 3, content.ErrTruncated},
		{"forged tree node in chunk 2's proof", nil, frames(func(fs []rangeFrame) []rangeFrame {
			fs[2].proof[40] ^= 1
			return fs
		}), 2, content.ErrTampered},
		{"forged tree node in the header's proof", nil, frames(func(fs []rangeFrame) []rangeFrame {
			fs[0].proof[0] ^= 1
			return fs
		}), -1, content.ErrTampered},
		{"chunk 3's bytes changed", nil, frames(func(fs []rangeFrame) []rangeFrame {
			fs[3].data[100] ^= 1
			return fs
		}), 3, content.ErrTampered},
		{"the proof is for another offset: chunks 2 … 4 served", func(r *http.Request) {
			q := r.URL.Query()
			q.Set("first", "2")
			r.URL.RawQuery = q.Encode()
		}, nil, 1, content.ErrTampered},
		{"the proof is for another offset: chunks 0 … 2 served", func(r *http.Request) {
			q := r.URL.Query()
			q.Set("first", "0")
			r.URL.RawQuery = q.Encode()
		}, nil, 1, content.ErrTampered},
		{"another resource's frames", func(r *http.Request) {
			r.URL.Path = strings.Replace(r.URL.Path, f.a.ID.String(), f.b.ID.String(), 1)
		}, nil, -1, content.ErrTampered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := clientlib.New(rangeProxy(t, f.srv, tc.request, tc.rewrite), f.carolKS, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readRange(c, f.g, f.a.ID, off, n)
			wantSecurity(t, err)
			var ce *content.ChunkError
			if !errors.Is(err, tc.kind) || !errors.As(err, &ce) || ce.Chunk != tc.chunk {
				t.Fatalf("got %v, want %v at chunk %d", err, tc.kind, tc.chunk)
			}
			if tc.chunk >= 0 && !strings.Contains(err.Error(), "chunk "+strconv.FormatInt(tc.chunk, 10)) {
				t.Errorf("%v does not name the chunk", err)
			}
			want := []byte{}
			if tc.chunk > 1 {
				want = f.dataA[off : tc.chunk*ptChunk]
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("the caller received %d bytes, want exactly the %d before chunk %d", len(got), len(want), tc.chunk)
			}
		})
	}
}
