package coffer

import (
	"maps"
	"math/rand/v2"
	"testing"
)

// TestCowMap: random sets and deletes on a tree of clones, each checked
// against a plain map: a change to a clone never shows in the map it was
// cloned from, or the other way, across clones that share the base and
// clones that fold their changes into a new one.
func TestCowMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type pair struct {
		m    cowMap[int, int]
		want map[int]int
	}
	states := []*pair{{m: newCowMap[int, int](nil), want: map[int]int{}}}
	check := func(p *pair) {
		t.Helper()
		if p.m.len() != len(p.want) {
			t.Fatalf("len %d, want %d", p.m.len(), len(p.want))
		}
		got := map[int]int{}
		p.m.all(func(k, v int) {
			if _, dup := got[k]; dup {
				t.Fatalf("all yields %d twice", k)
			}
			got[k] = v
		})
		if !maps.Equal(got, p.want) {
			t.Fatalf("all yields %v, want %v", got, p.want)
		}
		for k := range 600 {
			v, ok := p.m.get(k)
			w, wok := p.want[k]
			if ok != wok || v != w {
				t.Fatalf("get(%d) = %d, %v; want %d, %v", k, v, ok, w, wok)
			}
		}
	}
	folded := 0
	for step := range 4000 {
		// Mostly the newest state, so that changes pile up and fold.
		p := states[len(states)-1]
		if rng.IntN(4) == 0 {
			p = states[rng.IntN(len(states))]
		}
		switch r := rng.IntN(40); {
		case r < 24:
			k, v := rng.IntN(600), rng.Int()
			p.m.set(k, v)
			p.want[k] = v
		case r < 39:
			k := rng.IntN(600)
			p.m.del(k)
			delete(p.want, k)
		default:
			c := &pair{m: p.m.clone(), want: maps.Clone(p.want)}
			if len(p.m.delta) > 0 && len(c.m.delta) == 0 {
				folded++
			}
			states = append(states, c)
		}
		if step%50 == 0 {
			for _, q := range states {
				check(q)
			}
		}
	}
	for _, q := range states {
		check(q)
	}
	if folded == 0 {
		t.Error("no clone folded its changes into a new base")
	}
}
