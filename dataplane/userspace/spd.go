package userspace

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/goipsec/goipsec/dataplane"
)

// spd is the outbound policy database, indexed by the prefixes of each policy's remote selectors.
//
// A packet can only match a policy one of whose remote prefixes contains the packet's destination,
// so a lookup masks the destination to each prefix length in use (usually two or three: /32 road
// warriors, a few subnets, a /0) and looks the masked address up in one hash table. Each table
// entry lists the policies that hold that prefix in rank order (dataplane.PolicyRank), so the
// lookup checks candidates best first and stops as soon as the remaining ones cannot beat the best
// match found. The result is exactly what a scan of all policies in rank order returns — the first
// policy whose local and remote selectors (addresses, protocol, ports) match — at a cost that does
// not grow with the number of policies, only with the number of distinct prefix lengths and the
// policies sharing one prefix.
//
// Readers take no lock (rcuTable, and an atomically published list of prefix lengths); the writer
// (the engine, under Engine.mu) inserts and removes a policy in O(prefixes of its selectors ×
// policies sharing each prefix).
type spd struct {
	table *rcuTable[spdKey, *spdEntry]
	lens  atomic.Pointer[spdLengths]
	// lenRefs counts the prefixes of each family and length in the table (writer only).
	lenRefs [2][129]int
}

// spdKey is a masked destination prefix.
type spdKey struct {
	hi, lo uint64 // IPv6 address, or the IPv4 address in lo
	bits   uint8
	v6     bool
}

// prefix returns the prefix k stands for.
func (k spdKey) prefix() netip.Prefix {
	if !k.v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k.lo))
		return netip.PrefixFrom(netip.AddrFrom4(b), int(k.bits))
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), int(k.bits))
}

// routePrefixes returns the prefixes of a policy's remote selectors, for its routes.
func (p *policy) routePrefixes() []netip.Prefix {
	out := make([]netip.Prefix, len(p.prefixes))
	for i, k := range p.prefixes {
		out[i] = k.prefix()
	}
	return out
}

// spdEntry lists the policies holding one prefix, best rank first. It is immutable; the writer
// replaces it.
type spdEntry struct {
	policies []*policy
}

// spdLengths are the prefix lengths in use per family, longest first. Immutable.
type spdLengths struct {
	v4, v6 []uint8
}

func newSPD(seed uint64) *spd {
	s := &spd{table: newRCUTable[spdKey, *spdEntry](func(k spdKey) uint64 {
		h := mix64(k.lo ^ seed)
		h = mix64(h ^ k.hi ^ uint64(k.bits)<<1)
		if k.v6 {
			h = ^h
		}
		return h
	})}
	s.lens.Store(&spdLengths{})
	return s
}

// prefixKey returns the table key of prefix length n containing a.
func prefixKey(a netip.Addr, n int) spdKey {
	if a.Is4() {
		b := a.As4()
		v := uint64(binary.BigEndian.Uint32(b[:]))
		if n < 32 {
			v &^= (1<<(32-n) - 1)
		}
		return spdKey{lo: v, bits: uint8(n)}
	}
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	switch {
	case n == 0:
		hi, lo = 0, 0
	case n < 64:
		hi &^= 1<<(64-n) - 1
		lo = 0
	case n == 64:
		lo = 0
	case n < 128:
		lo &^= 1<<(128-n) - 1
	}
	return spdKey{hi: hi, lo: lo, bits: uint8(n), v6: true}
}

// lookup returns the policy that decides the packet, nil when none matches.
func (s *spd) lookup(f *flow) *policy {
	lens := s.lens.Load()
	list := lens.v4
	if f.dst.Is6() {
		list = lens.v6
	}
	var best *policy
	for _, n := range list {
		e, ok := s.table.load(prefixKey(f.dst, int(n)))
		if !ok {
			continue
		}
		for _, p := range e.policies {
			if best != nil && !p.rank.Before(best.rank) {
				break // the rest of this entry ranks lower still
			}
			if p.matches(f) {
				best = p
				break
			}
		}
	}
	return best
}

// remotePrefixes returns the index keys of the distinct prefixes that cover a policy's remote
// selectors.
func remotePrefixes(p *dataplane.PolicyParams) []spdKey {
	var out []spdKey
	for _, sel := range p.Remote {
		for _, pfx := range sel.Prefixes() {
			if k := prefixKey(pfx.Addr(), pfx.Bits()); !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return slices.Clip(out)
}

// add indexes a policy (writer only).
func (s *spd) add(pol *policy) {
	for _, k := range pol.prefixes {
		old, ok := s.table.load(k)
		if !ok {
			s.table.insert(k, &spdEntry{policies: []*policy{pol}})
			s.refLength(k, 1)
			continue
		}
		list := make([]*policy, 0, len(old.policies)+1)
		i, _ := slices.BinarySearchFunc(old.policies, pol, func(a, b *policy) int {
			if a.rank.Before(b.rank) {
				return -1
			}
			return 1
		})
		list = append(append(append(list, old.policies[:i]...), pol), old.policies[i:]...)
		s.table.replace(k, old, &spdEntry{policies: list})
	}
}

// remove takes a policy out of the index (writer only).
func (s *spd) remove(pol *policy) {
	for _, k := range pol.prefixes {
		old, ok := s.table.load(k)
		if !ok {
			continue
		}
		i := slices.Index(old.policies, pol)
		if i < 0 {
			continue
		}
		if len(old.policies) == 1 {
			s.table.remove(k, old)
			s.refLength(k, -1)
			continue
		}
		list := slices.Concat(old.policies[:i], old.policies[i+1:])
		s.table.replace(k, old, &spdEntry{policies: list})
	}
}

// refLength counts a prefix of k's family and length in or out and republishes the list of
// lengths when a length appears or disappears.
func (s *spd) refLength(k spdKey, d int) {
	fam := 0
	if k.v6 {
		fam = 1
	}
	before := s.lenRefs[fam][k.bits]
	s.lenRefs[fam][k.bits] += d
	if (before == 0) == (s.lenRefs[fam][k.bits] == 0) {
		return
	}
	var l spdLengths
	for n := 128; n >= 0; n-- {
		if n <= 32 && s.lenRefs[0][n] > 0 {
			l.v4 = append(l.v4, uint8(n))
		}
		if s.lenRefs[1][n] > 0 {
			l.v6 = append(l.v6, uint8(n))
		}
	}
	s.lens.Store(&l)
}

// all returns every indexed policy once, in rank order (tests, listing).
func (s *spd) all() []*policy {
	seen := map[*policy]bool{}
	var out []*policy
	s.table.each(func(_ spdKey, e *spdEntry) bool {
		for _, p := range e.policies {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
		return true
	})
	slices.SortFunc(out, func(a, b *policy) int {
		if a.rank.Before(b.rank) {
			return -1
		}
		return 1
	})
	return out
}

// flowMemo remembers the policy of the last packet a pipeline looked up: consecutive reads are
// mostly segments of one flow, which then cost one SPD lookup.
type flowMemo struct {
	src, dst         netip.Addr
	srcPort, dstPort uint16
	proto            uint8
	hasPorts, valid  bool
	pol              *policy
}

func (m *flowMemo) lookup(s *spd, f *flow) *policy {
	if m.valid && m.dst == f.dst && m.src == f.src && m.srcPort == f.srcPort && m.dstPort == f.dstPort &&
		m.proto == f.proto && m.hasPorts == f.hasPorts {
		return m.pol
	}
	pol := s.lookup(f)
	*m = flowMemo{src: f.src, dst: f.dst, srcPort: f.srcPort, dstPort: f.dstPort, proto: f.proto,
		hasPorts: f.hasPorts, valid: true, pol: pol}
	return pol
}
