package engine

import (
	"hash/fnv"
	"sync"

	"github.com/goipsec/goipsec/ike"
)

// saShards spreads the SA table over several locks, so that lookups of different SAs from several
// receive goroutines do not meet on one.
const saShards = 64

// saTable maps our IKE SPI to its entry. Adding, removing and finding are O(1).
type saTable struct {
	shards [saShards]struct {
		mu sync.RWMutex
		m  map[uint64]*entry
	}
}

func (t *saTable) init() {
	for i := range t.shards {
		t.shards[i].m = map[uint64]*entry{}
	}
}

func (t *saTable) shard(spi uint64) int { return int((spi ^ spi>>29 ^ spi>>47) % saShards) }

func (t *saTable) get(spi uint64) *entry {
	sh := &t.shards[t.shard(spi)]
	sh.mu.RLock()
	en := sh.m[spi]
	sh.mu.RUnlock()
	return en
}

// add registers en unless its SPI is taken.
func (t *saTable) add(en *entry) bool {
	sh := &t.shards[t.shard(en.spi)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[en.spi]; ok {
		return false
	}
	sh.m[en.spi] = en
	return true
}

func (t *saTable) remove(en *entry) {
	sh := &t.shards[t.shard(en.spi)]
	sh.mu.Lock()
	if sh.m[en.spi] == en {
		delete(sh.m, en.spi)
	}
	sh.mu.Unlock()
}

func (t *saTable) each(fn func(*entry)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, en := range sh.m {
			fn(en)
		}
		sh.mu.RUnlock()
	}
}

// all returns every entry (a copy, so that callers may lock entries).
func (t *saTable) all() []*entry {
	var out []*entry
	t.each(func(en *entry) { out = append(out, en) })
	return out
}

func (t *saTable) count() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// identityHash identifies the authenticated identities of an IKE SA (with its connection), for
// INITIAL_CONTACT and the uniqueness policy: a 64-bit hash, so that the index costs a few bytes
// per IKE SA instead of three strings. Whoever acts on a match compares the identities themselves.
func identityHash(conn string, local, remote ike.Identity) uint64 {
	h := fnv.New64a()
	h.Write([]byte(conn))
	for _, id := range []ike.Identity{local, remote} {
		h.Write([]byte{0, byte(id.Type), byte(len(id.Data) >> 8), byte(len(id.Data))})
		h.Write(id.Data)
	}
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1
}

// indexes find IKE SAs by connection, by the inbound SPI of their Child SAs, and by identities.
// Owners update them as their SAs change; commands and the data plane's events read them.
type indexes struct {
	mu       sync.Mutex
	conns    map[string]map[*entry]struct{}
	children map[uint32]*entry
	// ids holds, by identity hash, the entries with those identities (usually one).
	ids map[uint64][]*entry
}

func (x *indexes) init() {
	x.conns = map[string]map[*entry]struct{}{}
	x.children = map[uint32]*entry{}
	x.ids = map[uint64][]*entry{}
}

func (x *indexes) addConn(s *ikeSA, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s.conn == name {
		return
	}
	x.removeConnLocked(s)
	set := x.conns[name]
	if set == nil {
		set = map[*entry]struct{}{}
		x.conns[name] = set
	}
	set[s.en] = struct{}{}
	s.conn = name
}

func (x *indexes) removeConnLocked(s *ikeSA) {
	if s.conn == "" {
		return
	}
	if set := x.conns[s.conn]; set != nil {
		delete(set, s.en)
		if len(set) == 0 {
			delete(x.conns, s.conn)
		}
	}
	s.conn = ""
}

// conn returns the entries of a connection, every entry for "".
func (x *indexes) conn(name string) []*entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*entry
	if name == "" {
		for _, set := range x.conns {
			for en := range set {
				out = append(out, en)
			}
		}
		return out
	}
	for en := range x.conns[name] {
		out = append(out, en)
	}
	return out
}

func (x *indexes) setChild(spi uint32, en *entry) {
	x.mu.Lock()
	x.children[spi] = en
	x.mu.Unlock()
}

func (x *indexes) removeChild(spi uint32, en *entry) {
	x.mu.Lock()
	if x.children[spi] == en {
		delete(x.children, spi)
	}
	x.mu.Unlock()
}

func (x *indexes) child(spi uint32) *entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.children[spi]
}

func identityOf(s *ikeSA) uint64 { return identityHash(s.connName(), s.LocalID, s.RemoteID) }

func (x *indexes) addIdentity(s *ikeSA) {
	k := identityOf(s)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeIdentityLocked(s)
	s.en.idPos = len(x.ids[k])
	x.ids[k] = append(x.ids[k], s.en)
	s.identity = k
}

func (x *indexes) removeIdentityLocked(s *ikeSA) {
	if s.identity == 0 {
		return
	}
	// O(1) however many IKE SAs share the identities (one PSK identity for every road warrior
	// is common): the entry knows its position; the last one moves into it.
	list := x.ids[s.identity]
	if i := s.en.idPos; i < len(list) && list[i] == s.en {
		last := list[len(list)-1]
		list[i], last.idPos = last, i
		list[len(list)-1] = nil
		list = list[:len(list)-1]
	}
	if len(list) == 0 {
		delete(x.ids, s.identity)
	} else {
		x.ids[s.identity] = list
	}
	s.identity = 0
}

// others returns the other entries whose identities hash like those of s.
func (x *indexes) others(s *ikeSA) []*entry {
	k := identityOf(s)
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*entry
	for _, en := range x.ids[k] {
		if en != s.en {
			out = append(out, en)
		}
	}
	return out
}

// remove drops every index entry of s (it is dead).
func (x *indexes) remove(s *ikeSA, children []uint32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeConnLocked(s)
	x.removeIdentityLocked(s)
	for _, spi := range children {
		if x.children[spi] == s.en {
			delete(x.children, spi)
		}
	}
}

// uniqueness answers ike.Deps.Unique: other established IKE SAs with the identities of sa. The
// caller owns sa; the others are looked at under their own locks only through the index.
func (e *Engine) uniqueness(sa *ike.SA) ike.Uniqueness {
	var u ike.Uniqueness
	k := identityHash(sa.Config.Name, sa.LocalID, sa.RemoteID)
	e.idx.mu.Lock()
	ens := append([]*entry(nil), e.idx.ids[k]...)
	e.idx.mu.Unlock()
	for _, en := range ens {
		if en.s == nil || en.s.SA == sa {
			continue
		}
		u.Existing++
		// The remote address is read without the other SA's lock: it is only a hint for
		// unique = keep, and reading the owner's field under its lock could deadlock two owners.
		if r := en.remoteHint.Load(); r != nil && r.Addr() != sa.Remote.Addr() {
			u.FromOtherAddress = true
		}
	}
	return u
}
