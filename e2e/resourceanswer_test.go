package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
)

// A read of one resource comes in the compact encoding (api.ResourceType)
// to clients that ask for it, which clientlib does, and in JSON to others.
// These tests play the malicious server against the compact answer as the
// inline tests do against the row: every change to a byte of the header,
// its signature, the metadata or the content, and every malformed answer,
// is a *coffer.SecurityError with no plaintext returned.

// editResourceAnswer decodes a read answer in whichever encoding it came,
// lets edit change it, and encodes it again the same way. A body that is
// neither (a problem) is returned as it is.
func editResourceAnswer(body []byte, edit func(*api.Resource)) []byte {
	if len(body) > 0 && body[0] == '{' {
		var ar api.Resource
		if json.Unmarshal(body, &ar) != nil {
			return body
		}
		edit(&ar)
		out, _ := json.Marshal(ar)
		return out
	}
	ar, err := api.ParseResource(body)
	if err != nil {
		return body
	}
	edit(ar)
	out, err := api.AppendResource(nil, ar)
	if err != nil {
		return body
	}
	return out
}

// answerProxy forwards to the server and passes each read answer of one
// resource through rewrite, with the request's Accept replaced by accept
// when that is not empty. It counts the answers it saw in each encoding.
type answerProxy struct {
	url           string
	compact, json atomic.Int64
}

func newAnswerProxy(t *testing.T, srv *Server, accept string, rewrite func([]byte) []byte) *answerProxy {
	t.Helper()
	target, _ := url.Parse(srv.URL())
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		if accept != "" && isResourceRead(pr.In) {
			pr.Out.Header.Set("Accept", accept)
		}
	}}
	p := &answerProxy{}
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isResourceRead(r) {
			rp.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK {
			switch rec.Header().Get("Content-Type") {
			case api.ResourceType:
				p.compact.Add(1)
			case "application/json":
				p.json.Add(1)
			}
			body = rewrite(body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(ps.Close)
	p.url = ps.URL
	return p
}

// TestReadAnswerEncodings: clientlib reads in the compact encoding and
// still reads a server that answers only JSON (a proxy drops the compact
// type from Accept, as an older server would not know it).
func TestReadAnswerEncodings(t *testing.T) {
	f := newInlineTamper(t)
	for name, accept := range map[string]string{"compact": "", "json": "application/json"} {
		t.Run(name, func(t *testing.T) {
			p := newAnswerProxy(t, f.srv, accept, func(b []byte) []byte { return b })
			c, err := clientlib.New(p.url, f.carolKS, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []struct {
				id   coffer.ResourceID
				data []byte
			}{{f.a.ID, f.dataA}, {f.b.ID, f.dataB}} {
				if got := mustReadResource(t, c, f.g, want.id); !bytes.Equal(got, want.data) {
					t.Fatalf("read %d bytes that differ from the %d written", len(got), len(want.data))
				}
			}
			compact, js := p.compact.Load(), p.json.Load()
			if (name == "compact") != (compact > 0 && js == 0) || (name == "json") != (js > 0 && compact == 0) {
				t.Fatalf("%d compact and %d JSON answers", compact, js)
			}
		})
	}
}

// compactFieldRanges locates the variable fields of a compact answer.
func compactFieldRanges(t *testing.T, body []byte) map[string][2]int {
	t.Helper()
	ar, err := api.ParseResource(body)
	if err != nil {
		t.Fatal(err)
	}
	if ar.Content == nil {
		t.Fatal("the answer carries no content")
	}
	off := 1 + 16 + 16 + 8 + 16 + 8 + 8 + 8 + 8
	out := map[string][2]int{}
	add := func(name string, prefix, n int) {
		out[name] = [2]int{off + prefix, off + prefix + n}
		off += prefix + n
	}
	add("header", 4, len(ar.Header.Body))
	add("signature", 2, len(ar.Header.Signature))
	add("meta", 4, len(ar.Meta))
	add("content", 1+4, len(ar.Content))
	add("checkpoint", 4, len(ar.Checkpoint))
	return out
}

// TestTamperCompactAnswer flips bits across the header, its signature, the
// metadata, the content and the checkpoint of the compact answer, and
// changes the fixed fields and the lengths: each read is refused with a
// security error and returns no plaintext.
func TestTamperCompactAnswer(t *testing.T) {
	f := newInlineTamper(t)
	var sample []byte
	p := newAnswerProxy(t, f.srv, "", func(b []byte) []byte { sample = slices.Clone(b); return b })
	c, err := clientlib.New(p.url, f.carolKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustReadResource(t, c, f.g, f.a.ID)
	if p.compact.Load() != 1 {
		t.Fatal("the read did not come in the compact encoding")
	}
	fields := compactFieldRanges(t, sample)

	type lie struct {
		name string
		edit func(b []byte) []byte
	}
	var lies []lie
	for name, r := range fields {
		for _, at := range []int{r[0], r[0] + 1, (r[0] + r[1]) / 2, r[1] - 2, r[1] - 1} {
			lies = append(lies, lie{name + " bit", func(b []byte) []byte { b = slices.Clone(b); b[at] ^= 0x01; return b }})
		}
	}
	// Fixed fields the signed header also states: id, group, version,
	// author, epoch.
	for name, at := range map[string]int{"id": 1, "group": 17, "version": 33 + 7, "author": 41, "epoch": 57 + 7} {
		lies = append(lies, lie{name, func(b []byte) []byte { b = slices.Clone(b); b[at] ^= 0x01; return b }})
	}
	// Lengths one more and one less, and the structure.
	for name, r := range fields {
		if name == "content" {
			continue // has_content is covered below
		}
		for _, d := range []int{-1, 1} {
			lies = append(lies, lie{name + " length", func(b []byte) []byte { b = slices.Clone(b); b[r[0]-1] += byte(d); return b }})
		}
	}
	lies = append(lies,
		lie{"has_content 2", func(b []byte) []byte { b = slices.Clone(b); b[fields["content"][0]-5] = 2; return b }},
		lie{"trailing byte", func(b []byte) []byte { return append(slices.Clone(b), 0) }},
		lie{"cut short", func(b []byte) []byte { return b[:len(b)-1] }},
		lie{"version 2", func(b []byte) []byte { b = slices.Clone(b); b[0] = 2; return b }},
		lie{"empty", func([]byte) []byte { return nil }},
	)
	for _, l := range lies {
		edited := 0
		p := newAnswerProxy(t, f.srv, "", func(b []byte) []byte {
			if ar, err := api.ParseResource(b); err != nil || ar.ID != f.a.ID {
				return b
			}
			edited++
			return l.edit(b)
		})
		c, err := clientlib.New(p.url, f.carolKS, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readResource(c, f.g, f.a.ID)
		if edited == 0 {
			t.Fatalf("%s: no answer was edited", l.name)
		}
		if !coffer.IsSecurity(err) || len(got) > 0 {
			t.Fatalf("%s: read %d bytes, err %v; want a security error and nothing read", l.name, len(got), err)
		}
	}
	if got := mustReadResource(t, c, f.g, f.a.ID); !bytes.Equal(got, f.dataA) {
		t.Fatal("the honest answer reads differently")
	}
}

// TestTamperCompactAnswerSwapped: the compact answer of one resource
// served for another, whole and with only its content.
func TestTamperCompactAnswerSwapped(t *testing.T) {
	f := newInlineTamper(t)
	var answerB *api.Resource
	p := newAnswerProxy(t, f.srv, "", func(b []byte) []byte {
		if ar, err := api.ParseResource(b); err == nil && ar.ID == f.b.ID {
			answerB = ar
		}
		return b
	})
	c, err := clientlib.New(p.url, f.carolKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustReadResource(t, c, f.g, f.b.ID)
	for name, edit := range map[string]func(*api.Resource){
		"whole":   func(ar *api.Resource) { cp := *answerB; cp.Checkpoint = ar.Checkpoint; *ar = cp },
		"content": func(ar *api.Resource) { ar.Content = answerB.Content },
		"meta":    func(ar *api.Resource) { ar.Meta = answerB.Meta },
	} {
		p := newAnswerProxy(t, f.srv, "", func(b []byte) []byte {
			return editResourceAnswer(b, func(ar *api.Resource) {
				if ar.ID == f.a.ID {
					edit(ar)
				}
			})
		})
		c, err := clientlib.New(p.url, f.carolKS, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readResource(c, f.g, f.a.ID)
		if !coffer.IsSecurity(err) || len(got) > 0 {
			t.Fatalf("%s: read %d bytes, err %v; want a security error", name, len(got), err)
		}
	}
}
