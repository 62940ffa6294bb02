package witness

import (
	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// RuleResource: a resource version or delete breaks the resource log's
// rules (coffer.CheckLoggedVersion, coffer.CheckLoggedDelete): a skipped,
// repeated or unchained version, a version under another epoch or by a
// non-writer at the group head in force, a replace or delete by someone
// other than the current version's author or an admin, a tombstone that
// does not verify, or anything after a tombstone.
const RuleResource Rule = "resource"

// ResourceRef names a resource in the witness state.
type ResourceRef struct {
	Group    coffer.GroupID
	Resource coffer.ResourceID
}

func init() {
	leafRules[translog.KindResourceVersion] = (*replay).applyResourceVersion
	leafRules[translog.KindResourceDelete] = (*replay).applyResourceDelete
}

// applyResourceVersion checks a version leaf against the resource's state
// and its group's state at this point of the log: the head in force.
func (r *replay) applyResourceVersion(index int64, l *translog.Leaf) *Refusal {
	ref := ResourceRef{l.Group, l.Resource}
	next, err := coffer.CheckLoggedVersion(r.groups[l.Group], r.resources[ref], l.Version)
	if err != nil {
		return refuse(RuleResource, "log leaf %d: version %d of resource %s of group %s: %s", index, l.Version.Version, l.Resource, l.Group, coffer.ErrorMessage(err))
	}
	r.setResource(ref, next)
	return nil
}

// applyResourceDelete checks a tombstone the same way, and its signature
// under the deleter's key in the group.
func (r *replay) applyResourceDelete(index int64, l *translog.Leaf) *Refusal {
	ref := ResourceRef{l.Group, l.Resource}
	s := r.groups[l.Group]
	next, err := coffer.CheckLoggedDelete(s, r.resources[ref], l.Delete, r.memberKeys)
	if err != nil {
		return refuse(RuleResource, "log leaf %d: delete of resource %s of group %s: %s", index, l.Resource, l.Group, coffer.ErrorMessage(err))
	}
	r.setResource(ref, next)
	return nil
}

func (r *replay) setResource(ref ResourceRef, s *coffer.ResourceLogState) {
	if r.resources == nil {
		r.resources = map[ResourceRef]*coffer.ResourceLogState{}
	}
	r.resources[ref] = s
}
