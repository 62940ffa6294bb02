package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
)

func TestExitCodeAndMessage(t *testing.T) {
	unverified := &coffer.Error{Code: coffer.EUNVERIFIED, Message: "bob's keys are not verified: compare safety numbers with bob, then verify the contact"}
	changed := coffer.Security("contact-key", &coffer.Error{Code: coffer.EKEYCHANGED, Message: "the keys the server shows for bob differ"})
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantText []string
		notText  []string
	}{
		{
			name:     "cobra's own errors are usage errors",
			err:      errors.New(`unknown command "bogus" for "coffer"`),
			wantCode: exitUsage,
			wantText: []string{"unknown command"},
		},
		{
			name:     "unverified handle names the exact fix",
			err:      &runError{withHandle("bob", unverified)},
			wantCode: exitError,
			wantText: []string{"bob's keys are not verified: compare safety numbers with bob, then run: coffer contact verify bob <number>"},
		},
		{
			name:     "unverified without a handle still names the command",
			err:      &runError{unverified},
			wantCode: exitError,
			wantText: []string{"coffer contact verify HANDLE <number>"},
		},
		{
			name:     "changed keys are a security error with the fix",
			err:      &runError{withHandle("bob", changed)},
			wantCode: exitSecurity,
			wantText: []string{"bob's keys have changed", "coffer contact verify bob <number>"},
		},
		{
			name:     "a security error says the server misbehaved and what was detected",
			err:      &runError{fmt.Errorf("listing: %w", coffer.Security("wrap", errors.New("epoch 2 wrap does not open for this member")))},
			wantCode: exitSecurity,
			wantText: []string{"server misbehaved", `"wrap" check`, "epoch 2 wrap does not open", "http://srv"},
		},
		{
			name:     "a chain rule violation names the rule",
			err:      &runError{coffer.Security("chain", &coffer.Error{Code: coffer.EINVALID, Message: "author x is a reader", Rule: coffer.RuleAuthor})},
			wantCode: exitSecurity,
			wantText: []string{`"chain" check`, "author x is a reader (rule author)"},
		},
		{
			name:     "unreachable server names the server",
			err:      &runError{coffer.Errorf(coffer.EUNAVAILABLE, "cannot reach the server: connection refused")},
			wantCode: exitError,
			wantText: []string{"connection refused", "is cofferd running at http://srv?"},
		},
		{
			name:     "a missing group suggests it may be membership",
			err:      &runError{coffer.Errorf(coffer.ENOTFOUND, "no such group")},
			wantCode: exitError,
			wantText: []string{"not a member", "coffer group ls"},
		},
		{
			name:     "a hint survives a security error",
			err:      &runError{withHint(coffer.Security("resource", errors.New("chunk 3 does not authenticate")), "discard the output")},
			wantCode: exitSecurity,
			wantText: []string{"chunk 3 does not authenticate", "\n  discard the output"},
		},
		{
			name:     "local errors keep their text",
			err:      &runError{errors.New("open report.pdf: no such file or directory")},
			wantCode: exitError,
			wantText: []string{"open report.pdf: no such file or directory"},
		},
		{
			name:     "coffer errors lose their code prefix",
			err:      &runError{coffer.Errorf(coffer.ECONFLICT, "bob is already a member")},
			wantCode: exitError,
			wantText: []string{"bob is already a member"},
			notText:  []string{"coffer: conflict"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.wantCode {
				t.Errorf("exit code %d, want %d", got, tt.wantCode)
			}
			msg := describe(tt.err, "http://srv")
			for _, s := range tt.wantText {
				if !strings.Contains(msg, s) {
					t.Errorf("message\n%s\ndoes not contain %q", msg, s)
				}
			}
			for _, s := range tt.notText {
				if strings.Contains(msg, s) {
					t.Errorf("message\n%s\ncontains %q", msg, s)
				}
			}
		})
	}
	if exitCode(nil) != exitOK {
		t.Error("nil error is not exit code 0")
	}
}
