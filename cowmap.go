package coffer

import "maps"

// cowMap is a map that GroupState.Clone shares instead of copying. A
// verifier clones the state for every commit it checks, and at 100,000
// members copying the role histories and the handle index was most of a
// clone (about 6 MB a commit, on the server, the committer and every
// receiver). A cowMap keeps a base, which no state writes once it is
// shared, and the changes of its own state over it; a clone shares the
// base and copies the changes. When the changes pass an eighth of the
// base, a clone folds them into a new base of its own, so a clone costs
// O(changes) amortized and a read at most two lookups.
type cowMap[K comparable, V any] struct {
	base  map[K]V
	delta map[K]cowEntry[V]
	n     int
}

type cowEntry[V any] struct {
	v    V
	gone bool // deleted over the base
}

func newCowMap[K comparable, V any](base map[K]V) cowMap[K, V] {
	if base == nil {
		base = map[K]V{}
	}
	return cowMap[K, V]{base: base, n: len(base)}
}

func (m *cowMap[K, V]) get(k K) (V, bool) {
	if e, ok := m.delta[k]; ok {
		return e.v, !e.gone
	}
	v, ok := m.base[k]
	return v, ok
}

func (m *cowMap[K, V]) set(k K, v V) {
	if _, ok := m.get(k); !ok {
		m.n++
	}
	if m.delta == nil {
		m.delta = map[K]cowEntry[V]{}
	}
	m.delta[k] = cowEntry[V]{v: v}
}

func (m *cowMap[K, V]) del(k K) {
	if _, ok := m.get(k); !ok {
		return
	}
	m.n--
	if _, inBase := m.base[k]; !inBase {
		delete(m.delta, k)
		return
	}
	if m.delta == nil {
		m.delta = map[K]cowEntry[V]{}
	}
	m.delta[k] = cowEntry[V]{gone: true}
}

func (m *cowMap[K, V]) len() int { return m.n }

// all calls f for each entry, in no order.
func (m *cowMap[K, V]) all(f func(K, V)) {
	for k, e := range m.delta {
		if !e.gone {
			f(k, e.v)
		}
	}
	for k, v := range m.base {
		if _, ok := m.delta[k]; !ok {
			f(k, v)
		}
	}
}

// clone returns a copy that can be changed without changing m.
func (m *cowMap[K, V]) clone() cowMap[K, V] {
	if len(m.delta) <= 64+len(m.base)/8 {
		return cowMap[K, V]{base: m.base, delta: maps.Clone(m.delta), n: m.n}
	}
	base := make(map[K]V, m.n)
	m.all(func(k K, v V) { base[k] = v })
	return cowMap[K, V]{base: base, n: m.n}
}
