package e2e_test

import (
	"context"
	"fmt"
	"testing"
)

// TestWitnessProcesses runs three processes, cofferd and two
// `coffer-audit witness serve`, as operators run them: cofferd pushes every
// checkpoint to both and serves it cosigned by both. A witness killed with
// SIGKILL and restarted on its state carries on from the size it cosigned,
// and cofferd catches it up.
func TestWitnessProcesses(t *testing.T) {
	t.Parallel()
	d := startDeployment(t, deploymentOptions{Origin: "coffer.e2e-witnesses", Witnesses: []string{"witness-1.e2e", "witness-2.e2e"}})
	ctx := context.Background()
	register := func(handle string) {
		t.Helper()
		c := MustNewClient(t, d.URL, NewCanaryKeyStore())
		if err := c.Register(ctx, handle); err != nil {
			t.Fatal(err)
		}
	}
	w2 := d.Witnesses[1]
	register("alice")
	d.waitCosigned(t, 1)
	for i := range 3 {
		w2.Kill()
		register(fmt.Sprintf("user-%d", i))
		w2.Start(t)
		d.waitCosigned(t, int64(i+2))
	}
}
