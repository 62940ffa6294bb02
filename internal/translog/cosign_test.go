package translog_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/translog"
)

func TestCosignatures(t *testing.T) {
	_, logKey, _ := ed25519.GenerateKey(rand.Reader)
	s, err := translog.NewSigner("coffer.example.com", logKey)
	if err != nil {
		t.Fatal(err)
	}
	lv, _ := translog.NewVerifier(s.VerifierKey())
	signed, err := s.Sign(translog.Checkpoint{Size: 3, MapSize: 2, Time: time.Now().Unix()})
	if err != nil {
		t.Fatal(err)
	}
	body := signed[:strings.Index(signed, "\n\n")+1]

	var (
		cosigners []*translog.Cosigner
		verifiers []*translog.WitnessVerifier
	)
	for _, name := range []string{"witness-a", "witness-b", "witness-c"} {
		skey, vkey, err := translog.GenerateWitnessKey(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := translog.NewCosigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		if c.VerifierKey() != vkey {
			t.Fatalf("cosigner key %s, generated %s", c.VerifierKey(), vkey)
		}
		v, err := translog.NewWitnessVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		cosigners, verifiers = append(cosigners, c), append(verifiers, v)
	}
	lineA, err := cosigners[0].Cosign(body)
	if err != nil {
		t.Fatal(err)
	}
	lineB, _ := cosigners[1].Cosign(body)
	both := translog.AddCosignatures(signed, lineA, lineB, lineA)
	if strings.Count(both, lineA) != 1 {
		t.Fatal("AddCosignatures duplicated a line")
	}
	got, err := translog.OpenCosigned(both, lv, verifiers)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Witnessed) != 2 || got.Checkpoint.Size != 3 {
		t.Fatalf("witnessed %v, checkpoint %+v", got.Witnessed, got.Checkpoint)
	}
	if at, ok := got.Oldest(2); !ok || time.Since(at) > time.Minute {
		t.Fatalf("Oldest(2) = %v, %v", at, ok)
	}
	if _, ok := got.Oldest(3); ok {
		t.Fatal("a quorum of 3 met by 2 cosignatures")
	}

	// Only the log's own signature: no witness.
	if got, err := translog.OpenCosigned(signed, lv, verifiers); err != nil || len(got.Witnessed) != 0 {
		t.Fatalf("log-only note: %v, %v", got.Witnessed, err)
	}
	// A cosignature of another checkpoint, pasted onto this one, is a
	// forgery: a known key whose signature fails.
	other, _ := s.Sign(translog.Checkpoint{Size: 4, MapSize: 2, Time: time.Now().Unix()})
	lineOther, _ := cosigners[2].Cosign(other[:strings.Index(other, "\n\n")+1])
	if _, err := translog.OpenCosigned(translog.AddCosignatures(signed, lineA, lineOther), lv, verifiers); err == nil {
		t.Fatal("a cosignature of another checkpoint verifies")
	}
	// Witnesses alone do not make a checkpoint: the log must sign it.
	stripped := body + "\n" + lineA + lineB
	if _, err := translog.OpenCosigned(stripped, lv, verifiers); err == nil {
		t.Fatal("a note without the log's signature opens")
	}
	// An unconfigured witness's cosignature counts for nothing.
	if got, err := translog.OpenCosigned(translog.AddCosignatures(signed, lineA, lineB), lv, verifiers[2:]); err != nil || len(got.Witnessed) != 0 {
		t.Fatalf("unconfigured witnesses: %v, %v", got.Witnessed, err)
	}
}
