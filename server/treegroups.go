package server

import "github.com/cofferhq/coffer"

// RuleTreeUnsupported: this server does not yet store the path ciphertexts
// that travel beside a tree group's commits (version 3), so it refuses
// them rather than accept a commit whose members could not get its key.
const RuleTreeUnsupported = "tree-unsupported"

func refuseTreeCommit(c *coffer.Commit) error {
	if c.Tree == nil {
		return nil
	}
	return &coffer.Error{Code: coffer.EINVALID, Rule: RuleTreeUnsupported,
		Message: "this server does not take tree group commits (version 3) yet"}
}
