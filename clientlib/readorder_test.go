package clientlib

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer"
)

// TestSeenWhenAsked checks the rule of readorder.go: an answer is judged
// against the highest version verified when its request was sent, never
// against less, and against a bound above the truth once the raises it
// needs were forgotten.
func TestSeenWhenAsked(t *testing.T) {
	c := &Client{}
	rc := &c.resources
	k := resourceKey{coffer.NewGroupID(), coffer.NewResourceID()}
	rc.noteBaseline(k, 2) // from the key store
	before := c.beginRead(context.Background())
	rc.noteRaise(k, 3)
	between := c.beginRead(context.Background())
	rc.noteRaise(k, 5)
	after := c.beginRead(context.Background())

	for _, tt := range []struct {
		name string
		ctx  context.Context
		want uint64
	}{
		{"unmarked request", context.Background(), 5},
		{"sent before both raises", before, 2},
		{"sent between them", between, 3},
		{"sent after them", after, 5},
	} {
		if got := c.seenWhenAsked(tt.ctx, k, 5); got != tt.want {
			t.Errorf("%s: judged against %d, want %d", tt.name, got, tt.want)
		}
	}

	// Raises past the bound push out the old ones, baseline included: an
	// old request is then held to just below the oldest raise kept.
	for v := uint64(6); v < 6+maxVersionRaises; v++ {
		rc.noteRaise(k, v)
	}
	oldest := rc.raises[k][0].version
	if got := c.seenWhenAsked(before, k, 5+maxVersionRaises); got != oldest-1 {
		t.Errorf("after truncation: judged against %d, want %d", got, oldest-1)
	}
	if len(rc.raises[k]) != maxVersionRaises {
		t.Errorf("%d raises kept, want %d", len(rc.raises[k]), maxVersionRaises)
	}
}
