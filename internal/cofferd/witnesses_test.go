package cofferd_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/translog"
)

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// waitServed polls GET /v1/log/checkpoint until it serves a checkpoint of
// at least size leaves cosigned by each of want.
func waitServed(t *testing.T, s *cofferdtest.Server, size int64, want ...*translog.WitnessVerifier) translog.Cosigned {
	t.Helper()
	lv, err := translog.NewVerifier(s.LogKey())
	if err != nil {
		t.Fatal(err)
	}
	var all []*translog.WitnessVerifier
	for _, w := range s.Witnesses {
		v, _ := translog.NewWitnessVerifier(w.Key)
		all = append(all, v)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := translog.OpenCosigned(get(t, s.URL()+"/v1/log/checkpoint"), lv, all)
		if err != nil {
			t.Fatal(err)
		}
		ok := c.Checkpoint.Size >= size
		for _, w := range want {
			if _, has := c.Witnessed[w.Name()]; !has {
				ok = false
			}
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the served checkpoint is of size %d cosigned by %v; want size >= %d cosigned by %d witnesses", c.Checkpoint.Size, c.Witnessed, size, len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func register(t *testing.T, s *cofferdtest.Server, handle string) {
	t.Helper()
	c, err := clientlib.New(s.URL(), clientlib.NewMemoryKeyStore(), &clientlib.Options{LogKey: s.LogKey(), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(context.Background(), handle); err != nil {
		t.Fatal(err)
	}
}

// TestWitnessesCosignServedCheckpoints: cofferd pushes its checkpoints to
// both witnesses and serves them cosigned; with one witness down, writes
// go on, the failure is counted, and the served checkpoint moves on with
// the live witness's cosignature.
func TestWitnessesCosignServedCheckpoints(t *testing.T) {
	s := cofferdtest.Start(t, &cofferdtest.Options{Witnesses: 2})
	w1, _ := translog.NewWitnessVerifier(s.Witnesses[0].Key)
	w2, _ := translog.NewWitnessVerifier(s.Witnesses[1].Key)
	register(t, s, "alice")
	waitServed(t, s, 1, w1, w2)

	s.Witnesses[1].Stop()
	register(t, s, "bob")
	c := waitServed(t, s, 2, w1)
	if _, has := c.Witnessed[w2.Name()]; has {
		t.Fatal("a checkpoint signed after witness 2 stopped carries its cosignature")
	}
	// The log service with witnesses still proves heads-map entries.
	resp, err := http.Post(s.URL()+"/v1/log/map/proofs", "application/json",
		strings.NewReader(fmt.Sprintf(`{"size":%d,"keys":[{"kind":"account","account":"%s"}]}`, c.Checkpoint.Size, coffer.NewAccountID())))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("map proofs with witnesses configured: %s %s", resp.Status, body)
	}
	metrics := get(t, s.URL()+"/metrics")
	if !strings.Contains(metrics, `coffer_witness_pushes_total{result="error",witness="witness-2.test"}`) ||
		!strings.Contains(metrics, `coffer_witness_pushes_total{result="cosigned",witness="witness-1.test"}`) {
		t.Fatalf("the witness pushes are not counted:\n%s", grepLines(metrics, "coffer_witness"))
	}
}

// TestWitnessConflictIsFollowed: a second replica of the same log starts
// knowing nothing of the witness's size; the witness's 409 names it, and the
// replica retries from there with a consistency proof.
func TestWitnessConflictIsFollowed(t *testing.T) {
	first := cofferdtest.Start(t, &cofferdtest.Options{Witnesses: 1})
	w, _ := translog.NewWitnessVerifier(first.Witnesses[0].Key)
	register(t, first, "alice")
	waitServed(t, first, 1, w)

	second := cofferdtest.Start(t, &cofferdtest.Options{DatabaseURL: first.DatabaseURL, LogOrigin: "coffer.test",
		LogKeyFile: filepath.Join(first.DataDir, "log.key"), WithWitnesses: first.Witnesses})
	register(t, second, "bob")
	waitServed(t, second, 2, w)
	if m := get(t, second.URL()+"/metrics"); !strings.Contains(m, `coffer_witness_pushes_total{result="conflict",witness="witness-1.test"}`) {
		t.Fatalf("the second replica never followed a 409:\n%s", grepLines(m, "coffer_witness"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestWitnessFlag(t *testing.T) {
	_, vkey, err := translog.GenerateWitnessKey("w.example")
	if err != nil {
		t.Fatal(err)
	}
	var f cofferd.WitnessFlags
	if err := f.Set("http://a.example:1=" + vkey + ",https://b.example/=" + vkey); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("http://c.example=" + vkey); err != nil {
		t.Fatal(err)
	}
	if len(f) != 3 || f[1].URL != "https://b.example" || f[2].Key != vkey {
		t.Fatalf("parsed %+v", f)
	}
	for _, bad := range []string{"http://a.example", "ftp://a.example=" + vkey, "http://a.example=notakey", "=" + vkey} {
		var g cofferd.WitnessFlags
		if err := g.Set(bad); err == nil {
			t.Errorf("%q parses", bad)
		}
	}
}
