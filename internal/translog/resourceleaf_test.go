package translog_test

import (
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// A resource's map entry follows its leaves: Counter is the version, Hash
// the record hash of the last leaf, Deleted after the tombstone, and the
// map alone refuses a skipped or repeated version, a delete of another
// version, and anything after a tombstone.
func TestResourceLeafMapEntries(t *testing.T) {
	g, id := coffer.NewGroupID(), coffer.NewResourceID()
	version := func(v uint64) []byte {
		return translog.ResourceVersionLeaf(coffer.LoggedVersion{Group: g, Resource: id, Version: v, Epoch: 1,
			Author: coffer.AccountID{1}, Prev: [32]byte{byte(v)}, HeaderHash: [32]byte{byte(v), 1}})
	}
	del := func(v uint64) []byte {
		d := &coffer.ResourceDelete{Group: g, Resource: id, Version: v, Deleter: coffer.AccountID{1}}
		return translog.ResourceDeleteLeaf(coffer.SignedDelete{Body: d.Marshal(), Signature: make([]byte, 64)})
	}
	entry := func(prev *translog.MapEntry, idx int64, raw []byte) (translog.MapEntry, error) {
		l, err := translog.ParseLeaf(raw)
		if err != nil {
			t.Fatal(err)
		}
		return translog.EntryForLeaf(idx, raw, l, prev)
	}

	e1, err := entry(nil, 10, version(1))
	if err != nil || e1.Key != translog.ResourceKey(g, id) || e1.Counter != 1 || e1.Hash != translog.RecordHash(version(1)) || e1.LogIndex != 10 || e1.Deleted {
		t.Fatalf("version 1: %+v, %v", e1, err)
	}
	e2, err := entry(&e1, 11, version(2))
	if err != nil || e2.Counter != 2 || e2.Hash != translog.RecordHash(version(2)) {
		t.Fatalf("version 2: %+v, %v", e2, err)
	}
	tomb, err := entry(&e2, 12, del(2))
	if err != nil || tomb.Counter != 2 || !tomb.Deleted || tomb.Hash != translog.RecordHash(del(2)) || tomb.LogIndex != 12 {
		t.Fatalf("tombstone: %+v, %v", tomb, err)
	}
	for name, tc := range map[string]struct {
		prev *translog.MapEntry
		leaf []byte
	}{
		"first version 2":      {nil, version(2)},
		"version repeated":     {&e2, version(2)},
		"version skipped":      {&e1, version(3)},
		"delete of missing":    {nil, del(1)},
		"delete of old":        {&e2, del(1)},
		"version after delete": {&tomb, version(3)},
		"delete after delete":  {&tomb, del(2)},
	} {
		if e, err := entry(tc.prev, 20, tc.leaf); err == nil {
			t.Errorf("%s: accepted as %+v", name, e)
		}
	}
}
