package engine

import (
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

// idKey identifies the authenticated identities of an IKE SA, for INITIAL_CONTACT and the
// uniqueness policy.
type idKey struct {
	conn          string
	local, remote string
}

// indexes find IKE SAs by connection, by the inbound SPI of their Child SAs, and by identities.
// Owners update them as their SAs change; commands and the data plane's events read them.
type indexes struct {
	mu       sync.Mutex
	conns    map[string]map[*entry]struct{}
	children map[uint32]*entry
	ids      map[idKey]map[*entry]struct{}
}

func (x *indexes) init() {
	x.conns = map[string]map[*entry]struct{}{}
	x.children = map[uint32]*entry{}
	x.ids = map[idKey]map[*entry]struct{}{}
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

func identityOf(s *ikeSA) idKey {
	return idKey{conn: s.connName(), local: s.LocalID.String(), remote: s.RemoteID.String()}
}

func (x *indexes) addIdentity(s *ikeSA) {
	k := identityOf(s)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeIdentityLocked(s)
	set := x.ids[k]
	if set == nil {
		set = map[*entry]struct{}{}
		x.ids[k] = set
	}
	set[s.en] = struct{}{}
	s.identity = &k
}

func (x *indexes) removeIdentityLocked(s *ikeSA) {
	if s.identity == nil {
		return
	}
	if set := x.ids[*s.identity]; set != nil {
		delete(set, s.en)
		if len(set) == 0 {
			delete(x.ids, *s.identity)
		}
	}
	s.identity = nil
}

// others returns the other entries with the same identities as s.
func (x *indexes) others(s *ikeSA) []*entry {
	k := identityOf(s)
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*entry
	for en := range x.ids[k] {
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
	k := idKey{conn: sa.Config.Name, local: sa.LocalID.String(), remote: sa.RemoteID.String()}
	if sa.Initiator && sa.RemoteID.IsAny() {
		k.remote = ike.Identity{}.String()
	}
	e.idx.mu.Lock()
	set := e.idx.ids[k]
	ens := make([]*entry, 0, len(set))
	for en := range set {
		ens = append(ens, en)
	}
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
