package translog

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer"
)

// Resource leaves. A finalized version is logged as hashes and ids only
// (its content, metadata and even its signature stay off the log: the
// reader who holds the header checks the signature, and rebuilds this leaf
// from the header to prove it); a delete is logged as the deleter's signed
// tombstone, which a witness verifies. coffer.CheckLoggedVersion and
// coffer.CheckLoggedDelete are the rules both replay.
const (
	KindResourceVersion Kind = 3 // a finalized resource version
	KindResourceDelete  Kind = 4 // a signed resource delete (tombstone)
)

// ResourceVersionLeaf encodes the log entry of a finalized version:
//
//	"coffer/v1/log-leaf" 0x00
//	kind        uint8 = 3
//	group       [16]byte
//	resource    [16]byte
//	version     uint64
//	epoch       uint64
//	author      [16]byte
//	prev        [32]byte  the header's Prev
//	header_hash [32]byte  coffer.HeaderHash of the signed header body
func ResourceVersionLeaf(v coffer.LoggedVersion) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(leafPrefix)+1+16+16+8+8+16+32+32))
	b.AddBytes(leafPrefix)
	b.AddUint8(uint8(KindResourceVersion))
	b.AddBytes(v.Group[:])
	b.AddBytes(v.Resource[:])
	b.AddUint64(v.Version)
	b.AddUint64(v.Epoch)
	b.AddBytes(v.Author[:])
	b.AddBytes(v.Prev[:])
	b.AddBytes(v.HeaderHash[:])
	return b.BytesOrPanic()
}

// ResourceDeleteLeaf encodes the log entry of a delete:
//
//	"coffer/v1/log-leaf" 0x00
//	kind      uint8 = 4
//	delete    [coffer.ResourceDeleteSize]byte  the signed ResourceDelete body
//	signature [64]byte, or [coffer.HybridSignatureSize]byte after a body of
//	          version coffer.ResourceDeleteSuiteHybrid (suite v2 groups)
func ResourceDeleteLeaf(sd coffer.SignedDelete) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(leafPrefix)+1+len(sd.Body)+len(sd.Signature)))
	b.AddBytes(leafPrefix)
	b.AddUint8(uint8(KindResourceDelete))
	b.AddBytes(sd.Body)
	b.AddBytes(sd.Signature)
	return b.BytesOrPanic()
}

// parseResource parses the fields of a resource leaf after its kind. Group
// and Resource are set for both kinds, so that callers can find the
// resource without looking into the kind's own fields.
func (l *Leaf) parseResource(s *cryptobyte.String) error {
	switch l.Kind {
	case KindResourceVersion:
		var g, id, author, prev, hh []byte
		v := &l.Version
		if !s.ReadBytes(&g, 16) || !s.ReadBytes(&id, 16) || !s.ReadUint64(&v.Version) || !s.ReadUint64(&v.Epoch) ||
			!s.ReadBytes(&author, 16) || !s.ReadBytes(&prev, 32) || !s.ReadBytes(&hh, 32) || !s.Empty() {
			return errors.New("translog: malformed resource version leaf")
		}
		v.Group, v.Resource, v.Author = coffer.GroupID(g), coffer.ResourceID(id), coffer.AccountID(author)
		v.Prev, v.HeaderHash = [32]byte(prev), [32]byte(hh)
		if v.Group.IsZero() || v.Resource.IsZero() || v.Author.IsZero() || v.Version == 0 {
			return errors.New("translog: resource version leaf with a zero id or version")
		}
		l.Group, l.Resource = v.Group, v.Resource
	case KindResourceDelete:
		var body, sig []byte
		if !s.ReadBytes(&body, coffer.ResourceDeleteSize) || !s.ReadBytes(&sig, coffer.ResourceDeleteSignatureSize(body)) || !s.Empty() {
			return errors.New("translog: malformed resource delete leaf")
		}
		d, err := coffer.ParseResourceDelete(body)
		if err != nil {
			return errors.New("translog: resource delete leaf: " + err.Error())
		}
		l.Delete = coffer.SignedDelete{Body: append([]byte(nil), body...), Signature: append([]byte(nil), sig...)}
		l.Group, l.Resource = d.Group, d.Resource
	}
	return nil
}

// ResourceDelete returns the parsed tombstone of a delete leaf. Its
// signature is checked by coffer.CheckLoggedDelete, which needs the
// deleter's key at that point of the log.
func (l *Leaf) ResourceDelete() (*coffer.ResourceDelete, error) {
	if l.Kind != KindResourceDelete {
		return nil, errors.New("translog: not a resource delete leaf")
	}
	return coffer.ParseResourceDelete(l.Delete.Body)
}

// ResourceReplay is the resource half of a replay of the log, for a
// witness or an auditor: it holds every resource's state and checks each
// resource leaf, in log order, against it and against the state of the
// leaf's group at that point of the log (the caller keeps group states,
// applying each commit leaf as it comes). The zero value is empty.
type ResourceReplay struct {
	m map[resourceRef]*coffer.ResourceLogState
}

type resourceRef struct {
	g  coffer.GroupID
	id coffer.ResourceID
}

// Apply checks the resource leaf l (KindResourceVersion or
// KindResourceDelete) with coffer.CheckLoggedVersion or
// coffer.CheckLoggedDelete, given group, the state of l.Group after its last
// commit logged before l (nil if it has none), and src, where the keys of
// a suite v2 group's members are found (nil for suite v1 groups, or when
// group has them resolved), and records the result. A refused leaf changes
// nothing. Errors are *coffer.Error with a Rule.
func (r *ResourceReplay) Apply(l *Leaf, group *coffer.GroupState, src coffer.MemberKeySource) error {
	key := resourceRef{l.Group, l.Resource}
	prev := r.m[key]
	var (
		next *coffer.ResourceLogState
		err  error
	)
	switch l.Kind {
	case KindResourceVersion:
		next, err = coffer.CheckLoggedVersion(group, prev, l.Version)
	case KindResourceDelete:
		next, err = coffer.CheckLoggedDelete(group, prev, l.Delete, src)
	default:
		return fmt.Errorf("translog: a %s leaf is not a resource leaf", l.Kind)
	}
	if err != nil {
		return err
	}
	if r.m == nil {
		r.m = map[resourceRef]*coffer.ResourceLogState{}
	}
	r.m[key] = next
	return nil
}

// State returns the state of resource id of g after the leaves applied so
// far.
func (r *ResourceReplay) State(g coffer.GroupID, id coffer.ResourceID) (coffer.ResourceLogState, bool) {
	s, ok := r.m[resourceRef{g, id}]
	if !ok {
		return coffer.ResourceLogState{}, false
	}
	return *s, true
}

// applyResource is the map's own rule for a resource leaf: a version is
// the next one (1 for a new resource), a tombstone names the current
// version, and nothing follows a tombstone. The roles, the chaining and the
// tombstone's signature are coffer.CheckLoggedVersion's and
// coffer.CheckLoggedDelete's, which a witness replays with ResourceReplay.
func (u MapUpdate) applyResource(prev *MapEntry) error {
	var cur uint64
	if prev != nil {
		if prev.Deleted {
			return fmt.Errorf("translog: log leaf %d changes %s, which was deleted at version %d", u.LogIndex, u.Key, prev.Counter)
		}
		cur = prev.Counter
	}
	want := cur + 1
	if u.Deleted {
		want = cur
	}
	if u.Seq != want || u.Seq == 0 {
		what := "version"
		if u.Deleted {
			what = "delete of version"
		}
		return fmt.Errorf("translog: log leaf %d is a %s %d of %s, whose current version in the map is %d", u.LogIndex, what, u.Seq, u.Key, cur)
	}
	return nil
}
