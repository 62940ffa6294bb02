package e2e_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
)

// TestWitnessProcesses runs three processes, cofferd and two
// `coffer-audit witness serve`, as operators run them: cofferd pushes every
// checkpoint to both and serves it cosigned by both. A witness killed with
// SIGKILL and restarted on its state carries on from the size it cosigned,
// and cofferd catches it up.
func TestWitnessProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds cofferd and coffer-audit and runs them as processes")
	}
	const logOrigin = "coffer.e2e-witnesses"
	cofferdBin := cofferdtest.BuildCofferd(t)
	auditBin := cofferdtest.BuildCofferAudit(t)
	keys := t.TempDir()
	jwtKey := MustKeyFile(t, keys, "jwt.key", "witness test's JWT signing key")
	logKeyFile := MustKeyFile(t, keys, "log.key", "witness test's transparency log key")
	b, err := os.ReadFile(logKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := translog.NewSigner(logOrigin, k.(ed25519.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := cofferdtest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr
	w1 := cofferdtest.StartWitnessProcess(t, auditBin, "witness-1.e2e", signer.VerifierKey(), url)
	w2 := cofferdtest.StartWitnessProcess(t, auditBin, "witness-2.e2e", signer.VerifierKey(), url)
	recordWitnessKeySecret(t, w1.KeyFile)
	recordWitnessKeySecret(t, w2.KeyFile)
	sink := NewLogSink()
	t.Cleanup(func() { sink.Check(t) })
	cofferdtest.StartProcess(t, cofferdBin, cofferdtest.ProcessOptions{
		Addr: addr,
		Args: []string{
			"-database-url", pgtest.NewURL(t), "-data", t.TempDir(), "-jwt-key", jwtKey,
			"-log-key", logKeyFile, "-log-origin", logOrigin, "-origin", url, "-blob-dir", filepath.Join(t.TempDir(), "blobs"),
			"-auth-rate-limit", "1000000",
			"-witness", w1.URL + "=" + w1.Key, "-witness", w2.URL + "=" + w2.Key,
		},
		Output: sink,
	})
	lv, _ := translog.NewVerifier(signer.VerifierKey())
	v1, _ := translog.NewWitnessVerifier(w1.Key)
	v2, _ := translog.NewWitnessVerifier(w2.Key)
	waitCosigned := func(size int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(url + "/v1/log/checkpoint")
			var c translog.Cosigned
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				c, err = translog.OpenCosigned(string(b), lv, []*translog.WitnessVerifier{v1, v2})
			}
			if err == nil && c.Checkpoint.Size >= size && len(c.Witnessed) == 2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of size >= %d cosigned by both witnesses (%v %v)\nwitness 2:\n%s", size, c.Witnessed, err, w2.Output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ctx := context.Background()
	register := func(handle string) {
		t.Helper()
		c := MustNewClient(t, url, NewCanaryKeyStore())
		if err := c.Register(ctx, handle); err != nil {
			t.Fatal(err)
		}
	}
	register("alice")
	waitCosigned(1)
	for i := range 3 {
		w2.Kill()
		register(fmt.Sprintf("user-%d", i))
		w2.Start(t)
		waitCosigned(int64(i + 2))
	}
}
