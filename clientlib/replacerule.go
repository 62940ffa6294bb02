package clientlib

import (
	"context"
	"fmt"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/translog"
)

// checkReplaceRule is the reader's form of the replace rule of
// coffer.CheckLoggedVersion: a version after the first is by the author of
// the version it replaces, or by an admin or owner (role, the author's role
// at the group head in force when the leaf was logged, as
// checkAuthorInForce found it). Without it a writer could, with the
// server's help, replace another writer's resource with content of their
// own, and readers that never saw the earlier version would accept it.
//
// The header names the version it replaces only by hash (Prev). Its author
// is in that version's log leaf, which the server finds and this device
// proves: the leaf must be the version before h of the same resource, with
// h.Prev as its header hash, included in the tree of cp before h's own
// leaf (leafIndex).
func (c *Client) checkReplaceRule(ctx context.Context, cp translog.Checkpoint, leafIndex int64, h *coffer.ResourceHeader, role coffer.Role) error {
	if h.Version <= 1 || role >= coffer.RoleAdmin {
		return nil
	}
	req := api.LogProofsRequest{Size: cp.Size, Versions: []api.LogVersionRef{{Group: h.Group, Resource: h.Resource, Version: h.Version - 1}}}
	resp, err := c.logProofs(ctx, req)
	if err != nil {
		return err
	}
	if resp.Size != cp.Size || len(resp.Versions) != 1 || len(resp.Commits) != 0 || len(resp.Accounts) != 0 {
		return logSecurity("the server answered a different proof request than the one for version %d of resource %s", h.Version-1, h.Resource)
	}
	p := resp.Versions[0]
	if p.Group == nil || *p.Group != h.Group || p.Resource == nil || *p.Resource != h.Resource || p.Version != h.Version-1 {
		return logSecurity("the server answered for another resource version than version %d of resource %s", h.Version-1, h.Resource)
	}
	if !p.Included {
		// The log holds version h.Version, whose leaf chains to this one:
		// a log without it is not the log the witnesses replayed.
		return coffer.Security("log", fmt.Errorf("group %s, resource %s: the log holds version %d but, says the server, not version %d, which it replaces",
			h.Group, h.Resource, h.Version, h.Version-1))
	}
	if p.Index >= leafIndex {
		return coffer.Security("log", fmt.Errorf("group %s, resource %s: version %d is logged at leaf %d, not before the leaf %d of version %d that replaces it",
			h.Group, h.Resource, h.Version-1, p.Index, leafIndex, h.Version))
	}
	l, err := translog.ParseLeaf(p.Leaf)
	if err != nil {
		return logSecurity("version %d of resource %s: %v", h.Version-1, h.Resource, err)
	}
	prev := l.Version
	if l.Kind != translog.KindResourceVersion || prev.Group != h.Group || prev.Resource != h.Resource ||
		prev.Version != h.Version-1 || prev.HeaderHash != h.Prev {
		return logSecurity("the leaf served as version %d of resource %s is not the version its successor replaces", h.Version-1, h.Resource)
	}
	proof, err := translog.BytesToHashes(p.Proof)
	if err != nil {
		return logSecurity("%v", err)
	}
	if err := translog.CheckInclusion(cp, p.Index, p.Leaf, proof); err != nil {
		return logSecurity("%v", err)
	}
	if prev.Author != h.Author {
		return coffer.Security("header", fmt.Errorf("group %s, resource %s: version %d by %s, a %s, replaces version %d by %s: only a version's author or an admin may replace it",
			h.Group, h.Resource, h.Version, h.Author, role, prev.Version, prev.Author))
	}
	return nil
}
