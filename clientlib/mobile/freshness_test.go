package mobile_test

import (
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib/mobile"
	"github.com/cofferhq/coffer/internal/translog"
)

// TestWitnessOptions: the facade passes witness keys (one per line), the
// quorum and the freshness bound to clientlib, which checks them.
func TestWitnessOptions(t *testing.T) {
	var keys []string
	for _, name := range []string{"w1.test", "w2.test"} {
		_, vkey, err := translog.GenerateWitnessKey(name)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, vkey)
	}
	two := strings.Join(keys, "\n") + "\n"
	for _, tc := range []struct {
		opts *mobile.Options
		want string // error code, "" for success
	}{
		{&mobile.Options{Witnesses: two, Quorum: 2, MaxStalenessMillis: 60_000}, ""},
		{&mobile.Options{Witnesses: " " + keys[0] + " \r\n\n" + keys[1]}, ""},
		{&mobile.Options{Witnesses: two, Quorum: 3}, mobile.CodeInvalid},
		{&mobile.Options{Witnesses: "not a key"}, mobile.CodeInvalid},
		{&mobile.Options{Witnesses: keys[0] + "\n" + keys[0]}, mobile.CodeInvalid},
		{&mobile.Options{Quorum: -1}, mobile.CodeInvalid},
		{&mobile.Options{MaxStalenessMillis: -1}, mobile.CodeInvalid},
	} {
		_, err := mobile.NewClientWithOptions("http://127.0.0.1:1", newMemStore(), tc.opts)
		if got := mobile.ErrorCode(err); got != tc.want {
			t.Errorf("%+v: code %q (%v), want %q", tc.opts, got, err, tc.want)
		}
	}
}

// TestStaleCheckpointCode: clientlib's stale_checkpoint reaches apps as
// CodeStaleCheckpoint.
func TestStaleCheckpointCode(t *testing.T) {
	err := mobile.WrapForTest(coffer.Errorf(coffer.ESTALECHECKPOINT, "too old"))
	if mobile.ErrorCode(err) != mobile.CodeStaleCheckpoint || mobile.CodeStaleCheckpoint != "stale_checkpoint" {
		t.Fatalf("code %q, want %q", mobile.ErrorCode(err), mobile.CodeStaleCheckpoint)
	}
}
