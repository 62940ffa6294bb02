package coffer_test

import (
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
)

func TestAccountVerificationCode(t *testing.T) {
	p := MustAccountCast(t)
	b := MustAccount(t)
	s0, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	number, qr := s0.SafetyNumber(), s0.QRPayload()
	if len(strings.ReplaceAll(number, " ", "")) != 60 || !strings.HasPrefix(qr, "coffer:v2:alice:") {
		t.Fatalf("safety number %q, QR payload %q", number, qr)
	}
	b.DoAdd(p.d1, p.d2).DoRevoke(p.d2, p.d1).DoSetRecovery(p.d2, p.r2)
	s, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{number, strings.ReplaceAll(number, " ", ""), strings.ReplaceAll(number, " ", "-"), " " + qr + "\n"} {
		if !s.MatchVerificationCode(code) {
			t.Errorf("%q does not match after device changes", code)
		}
	}
	f := s.Fingerprint()
	other := number[:len(number)-1] + string('0'+(number[len(number)-1]-'0'+1)%10)
	for _, code := range []string{"", other, number[:20], f.QRPayload("alice"), strings.Replace(qr, "alice", "mallory", 1), qr + "A"} {
		if s.MatchVerificationCode(code) {
			t.Errorf("%q matched", code)
		}
	}
	if (&coffer.AccountState{}).MatchVerificationCode("") {
		t.Errorf("a state before its genesis matched the empty code")
	}
}
