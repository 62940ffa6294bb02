package groupkey

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cofferhq/coffer"
)

// TestMetadataKeyPerObject checks that each object version has its own
// metadata key, not only its own AAD: with one key per epoch, a member (or
// code) holding the key to open resource A's metadata could open every other
// object's metadata of that epoch with it.
func TestMetadataKeyPerObject(t *testing.T) {
	k := NewEpochKey()
	g, g2 := coffer.NewGroupID(), coffer.NewGroupID()
	a, b := coffer.NewResourceID(), coffer.NewResourceID()
	bind := func(r coffer.ResourceID, v uint64) []byte {
		return binary.BigEndian.AppendUint64(append([]byte(nil), r[:]...), v)
	}
	keys := map[string][]byte{
		"A v1":         metadataKey(k, g, 3, coffer.LabelResourceMeta, bind(a, 1)),
		"A v2":         metadataKey(k, g, 3, coffer.LabelResourceMeta, bind(a, 2)),
		"B v1":         metadataKey(k, g, 3, coffer.LabelResourceMeta, bind(b, 1)),
		"A v1 epoch 4": metadataKey(k, g, 4, coffer.LabelResourceMeta, bind(a, 1)),
		"group name":   metadataKey(k, g, 3, coffer.LabelGroupMeta, nil),
		"group 2 name": metadataKey(k, g2, 3, coffer.LabelGroupMeta, nil),
	}
	for n1, k1 := range keys {
		for n2, k2 := range keys {
			if n1 < n2 && bytes.Equal(k1, k2) {
				t.Errorf("metadata of %s and %s share a key", n1, n2)
			}
		}
	}

	// Resource A's metadata must not open under resource B's key, even with
	// A's additional data: the key, not only the AAD, names the object.
	ct := SealMetadata(k, g, 3, coffer.LabelResourceMeta, bind(a, 1), []byte(`{"name":"a"}`))
	aad := coffer.SignedMessage(coffer.LabelResourceMeta, bindContext(g, 3, bind(a, 1)))
	if _, err := newAEAD(keys["B v1"]).Open(nil, nil, ct, aad); err == nil {
		t.Error("resource A's metadata opened under resource B's key")
	}
	if _, err := newAEAD(keys["A v2"]).Open(nil, nil, ct, aad); err == nil {
		t.Error("version 1's metadata opened under version 2's key")
	}
	if _, err := newAEAD(keys["A v1"]).Open(nil, nil, ct, aad); err != nil {
		t.Errorf("resource A's metadata does not open under its own key: %v", err)
	}
}

func TestMetadataBindingLength(t *testing.T) {
	k, g := NewEpochKey(), coffer.NewGroupID()
	for _, tt := range []struct {
		purpose string
		binding []byte
	}{
		{coffer.LabelResourceMeta, nil},
		{coffer.LabelResourceMeta, make([]byte, 23)},
		{coffer.LabelResourceMeta, make([]byte, 25)},
		{coffer.LabelGroupMeta, make([]byte, 1)},
	} {
		if _, err := OpenMetadata(k, g, 1, tt.purpose, tt.binding, make([]byte, 40)); err == nil {
			t.Errorf("%s accepted a %d-byte binding", tt.purpose, len(tt.binding))
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SealMetadata(%s) accepted a %d-byte binding", tt.purpose, len(tt.binding))
				}
			}()
			SealMetadata(k, g, 1, tt.purpose, tt.binding, nil)
		}()
	}
}
