package coffer_test

import (
	"testing"

	"github.com/cofferhq/coffer"
)

// TestLeaveVariants tries leaves beside every other op kind, by members of
// every role, and what may follow a leave, beyond the named vectors.
func TestLeaveVariants(t *testing.T) {
	p := MustChainCast(t)
	cases := []struct {
		name  string
		build func() *chainBuilder
		rule  string
	}{
		{"leave beside a removal of another member", func() *chainBuilder {
			return p.base(t).Do(p.admin, leaveOp(p.admin), removeOp(p.reader), rotateOp)
		}, coffer.RuleLeave},
		{"leave beside a removal, without a rotation", func() *chainBuilder {
			return p.base(t).Do(p.admin, leaveOp(p.admin), removeOp(p.reader))
		}, coffer.RuleLeave},
		{"leave beside a promotion of another member", func() *chainBuilder {
			return p.base(t).Do(p.admin, leaveOp(p.admin), setRoleOp(p.reader, coffer.RoleWriter))
		}, coffer.RuleLeave},
		{"leave beside a self-demotion", func() *chainBuilder {
			return p.base(t).Do(p.writer, setRoleOp(p.writer, coffer.RoleReader), leaveOp(p.writer))
		}, coffer.RuleLeave},
		{"an owner leaves beside promoting another owner", func() *chainBuilder {
			return p.base(t).Do(p.owner, setRoleOp(p.admin, coffer.RoleOwner), leaveOp(p.owner))
		}, coffer.RuleLeave},
		{"leave for another member beside the author's own", func() *chainBuilder {
			return p.base(t).Do(p.reader, leaveOp(p.reader), leaveOp(p.writer))
		}, coffer.RuleLeave},
		{"an owner leaves while another owner remains", func() *chainBuilder {
			return p.base(t).Do(p.owner, setRoleOp(p.admin, coffer.RoleOwner)).Do(p.owner, leaveOp(p.owner))
		}, ""},
		{"after a leave, a writer rotates", func() *chainBuilder {
			return p.base(t).Do(p.reader, leaveOp(p.reader)).Do(p.writer, rotateOp)
		}, coffer.RuleAuthor},
		{"after a leave, a writer removes the leaver's replacement", func() *chainBuilder {
			return p.base(t).Do(p.reader, leaveOp(p.reader)).Do(p.writer, removeOp(p.admin), rotateOp)
		}, coffer.RuleAuthor},
		{"after a leave, the admin removes a member with a rotation", func() *chainBuilder {
			return p.base(t).Do(p.reader, leaveOp(p.reader)).Do(p.admin, removeOp(p.writer), rotateOp).Do(p.admin, addOp(p.m5, coffer.RoleReader))
		}, ""},
		{"after a leave, the admin demotes without a rotation", func() *chainBuilder {
			return p.base(t).Do(p.reader, leaveOp(p.reader)).Do(p.admin, setRoleOp(p.writer, coffer.RoleReader))
		}, coffer.RuleRotation},
		{"after a leave, the admin removes the leaver", func() *chainBuilder {
			return p.base(t).Do(p.reader, leaveOp(p.reader)).Do(p.admin, removeOp(p.reader), rotateOp)
		}, coffer.RuleNotMember},
		{"after a leave, the admin leaves too, then the owner adds without a rotation", func() *chainBuilder {
			return p.base(t).Do(p.reader, leaveOp(p.reader)).Do(p.admin, leaveOp(p.admin)).Do(p.owner, addOp(p.m5, coffer.RoleReader))
		}, coffer.RulePendingRotation},
		{"after a rotation that cleared the pending leave, an add needs none", func() *chainBuilder {
			return p.base(t).Do(p.reader, leaveOp(p.reader)).Do(p.owner, rotateOp).Do(p.owner, addOp(p.m5, coffer.RoleReader))
		}, ""},
		{"a leave replayed with the leaver's signature at the next seq", func() *chainBuilder {
			return p.base(t).Do(p.reader, leaveOp(p.reader)).Do(p.reader, leaveOp(p.reader))
		}, coffer.RuleAuthor},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkChain(t, tc.build().commits, tc.rule)
		})
	}
}
