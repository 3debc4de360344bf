package userspace

import (
	"sync/atomic"
)

// rcuTable is a chained hash table that readers use without any lock while one writer at a time
// (the caller serialises writers) inserts and removes entries. It is how the SAD and the SPD index
// scale to 100,000 SAs: an insert or removal touches one chain (O(1)), where copying a whole
// snapshot for every change cost O(n) under the engine's lock.
//
// Readers never see a half-made change because nothing a reader can reach is ever modified: a
// chain node is immutable once published, an insert publishes a new head node in front of the
// chain, and a removal publishes a copy of the nodes in front of the removed one (usually none or
// one). Old nodes stay valid for readers still walking them until the garbage collector sees them
// unreachable, which is what read-copy-update needs and Go provides for free.
//
// The table doubles when it holds more entries than buckets; growing rebuilds every chain (new
// nodes, since readers may still walk the old ones), so an insert costs amortised O(1).
//
// A key may appear more than once (the SAD keeps SAs that share an SPI under one key); entries are
// told apart by their values, which must be comparable (pointers).
type rcuTable[K comparable, V comparable] struct {
	hash    func(K) uint64
	buckets atomic.Pointer[rcuBuckets[K, V]]
	n       int // entries; written by the writer only
}

type rcuBuckets[K comparable, V comparable] struct {
	mask  uint64
	heads []atomic.Pointer[rcuNode[K, V]]
}

type rcuNode[K comparable, V comparable] struct {
	key  K
	val  V
	next *rcuNode[K, V]
}

const rcuMinBuckets = 64

func newRCUTable[K comparable, V comparable](hash func(K) uint64) *rcuTable[K, V] {
	t := &rcuTable[K, V]{hash: hash}
	t.buckets.Store(newRCUBuckets[K, V](rcuMinBuckets))
	return t
}

func newRCUBuckets[K comparable, V comparable](n int) *rcuBuckets[K, V] {
	return &rcuBuckets[K, V]{mask: uint64(n - 1), heads: make([]atomic.Pointer[rcuNode[K, V]], n)}
}

// head returns the first node of k's chain. Readers walk the chain from there.
func (t *rcuTable[K, V]) head(k K) *rcuNode[K, V] {
	b := t.buckets.Load()
	return b.heads[t.hash(k)&b.mask].Load()
}

// load returns the first value stored under k.
func (t *rcuTable[K, V]) load(k K) (v V, ok bool) {
	for n := t.head(k); n != nil; n = n.next {
		if n.key == k {
			return n.val, true
		}
	}
	return v, false
}

// len is the number of entries (writer only).
func (t *rcuTable[K, V]) len() int { return t.n }

// insert adds an entry (writer only). It does not look for an existing entry with this key.
func (t *rcuTable[K, V]) insert(k K, v V) {
	b := t.buckets.Load()
	if t.n >= len(b.heads) {
		b = t.resize(2 * len(b.heads))
	}
	h := &b.heads[t.hash(k)&b.mask]
	h.Store(&rcuNode[K, V]{key: k, val: v, next: h.Load()})
	t.n++
}

// replace swaps the entry (k, old) for (k, new) in place, so that readers see either the old or
// the new value and never neither (writer only). It reports whether (k, old) was found.
func (t *rcuTable[K, V]) replace(k K, old, new V) bool {
	return t.edit(k, old, &new)
}

// remove deletes the entry (k, v) (writer only) and reports whether it was there.
func (t *rcuTable[K, V]) remove(k K, v V) bool {
	if !t.edit(k, v, nil) {
		return false
	}
	t.n--
	if b := t.buckets.Load(); len(b.heads) > rcuMinBuckets && t.n < len(b.heads)/8 {
		t.resize(len(b.heads) / 2)
	}
	return true
}

// edit rebuilds the chain prefix in front of (k, v) and links it to the node's successor, or to a
// new node holding *with.
func (t *rcuTable[K, V]) edit(k K, v V, with *V) bool {
	b := t.buckets.Load()
	h := &b.heads[t.hash(k)&b.mask]
	first := h.Load()
	var target *rcuNode[K, V]
	for n := first; n != nil; n = n.next {
		if n.key == k && n.val == v {
			target = n
			break
		}
	}
	if target == nil {
		return false
	}
	rest := target.next
	if with != nil {
		rest = &rcuNode[K, V]{key: k, val: *with, next: rest}
	}
	h.Store(copyChain(first, target, rest))
	return true
}

// copyChain returns a copy of the nodes from first up to (not including) stop, ending in rest.
func copyChain[K comparable, V comparable](first, stop, rest *rcuNode[K, V]) *rcuNode[K, V] {
	if first == stop {
		return rest
	}
	head := &rcuNode[K, V]{key: first.key, val: first.val}
	tail := head
	for n := first.next; n != stop; n = n.next {
		c := &rcuNode[K, V]{key: n.key, val: n.val}
		tail.next = c
		tail = c
	}
	tail.next = rest
	return head
}

// resize rebuilds the table with n buckets and publishes it.
func (t *rcuTable[K, V]) resize(n int) *rcuBuckets[K, V] {
	old := t.buckets.Load()
	nb := newRCUBuckets[K, V](n)
	for i := range old.heads {
		// Reverse each old chain into the new table so that equal keys keep their order.
		var stack []*rcuNode[K, V]
		for c := old.heads[i].Load(); c != nil; c = c.next {
			stack = append(stack, c)
		}
		for j := len(stack) - 1; j >= 0; j-- {
			c := stack[j]
			h := &nb.heads[t.hash(c.key)&nb.mask]
			h.Store(&rcuNode[K, V]{key: c.key, val: c.val, next: h.Load()})
		}
	}
	t.buckets.Store(nb)
	return nb
}

// each calls f for every entry until f returns false (writer, or a reader content with a view that
// may miss concurrent changes).
func (t *rcuTable[K, V]) each(f func(K, V) bool) {
	b := t.buckets.Load()
	for i := range b.heads {
		for n := b.heads[i].Load(); n != nil; n = n.next {
			if !f(n.key, n.val) {
				return
			}
		}
	}
}

// mix64 is the finaliser of SplitMix64 (Steele, Lea, Flood 2014): it spreads every input bit over
// the whole word, so that sequential SPIs and addresses land in different buckets.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
