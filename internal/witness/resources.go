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
	if s != nil && s.Suite == coffer.SuiteV2 {
		// A suite v2 entry names its keys by hash, and deletes are signed
		// with the Ed25519 half of the deleter's hybrid key (as the server
		// checks them): give the check that half, for this leaf only.
		restore, refusal := r.deleterKey(index, s, l)
		if refusal != nil {
			return refusal
		}
		defer restore()
	}
	next, err := coffer.CheckLoggedDelete(s, r.resources[ref], l.Delete)
	if err != nil {
		return refuse(RuleResource, "log leaf %d: delete of resource %s of group %s: %s", index, l.Resource, l.Group, coffer.ErrorMessage(err))
	}
	r.setResource(ref, next)
	return nil
}

// deleterKey sets the deleter's entry in suite v2 group s to the Ed25519
// half of the keys it names, and returns what puts the entry back. The
// replay runs alone, so nothing sees the entry in between. A deleter that
// is not a member is left to CheckLoggedDelete to refuse.
func (r *replay) deleterKey(index int64, s *coffer.GroupState, l *translog.Leaf) (func(), *Refusal) {
	d, err := coffer.ParseResourceDelete(l.Delete.Body)
	if err != nil || s.Members[d.Deleter] == nil {
		return func() {}, nil
	}
	k, err := s.MemberKeys(d.Deleter, r.memberKeys)
	if err != nil {
		return nil, refuse(RuleResource, "log leaf %d: delete of resource %s of group %s: %s", index, l.Resource, l.Group, coffer.ErrorMessage(err))
	}
	m := s.Members[d.Deleter]
	old := m.SigningKey
	m.SigningKey = k.SigningKey.Ed25519()
	return func() { m.SigningKey = old }, nil
}

func (r *replay) setResource(ref ResourceRef, s *coffer.ResourceLogState) {
	if r.resources == nil {
		r.resources = map[ResourceRef]*coffer.ResourceLogState{}
	}
	r.resources[ref] = s
}
