// Package pool hands out addresses to remote clients from configured ranges: IKEv2's
// configuration payload (virtual IPs), IKEv1 Mode Config and PPP's IPCP share it.
//
// A client is named by an identity (its IKE or EAP identity, a user name). It gets the same
// address again while its lease is held, and after release as long as nobody else took it —
// strongSwan's pools behave the same way — so a reconnecting client keeps its address. An address
// may be held several times by one identity at once (make-before-break re-authentication: the new
// IKE SA asks for the address the old one still holds); it goes offline when the last hold ends.
//
// Leases are kept by offset into the range, so an IPv6 /64 costs nothing until addresses are
// handed out: state grows with the number of clients, not with the size of the range. Every
// operation is O(1) (the stickiness lookup is a map by identity).
package pool

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// ErrExhausted means every address of the pool is held.
var ErrExhausted = errors.New("pool: no free address")

// maxSize caps how many addresses a pool hands out (an IPv6 /64 is "big enough"); strongSwan caps
// its in-memory pools the same way.
const maxSize = 1 << 32

// Pool is a range of addresses and their leases. It is safe for concurrent use.
type Pool struct {
	Name       string
	start, end netip.Addr
	size       uint64
	// DNS servers handed out with an address (RFC 1877 for PPP, INTERNAL_IP4_DNS for Mode Config
	// and IKEv2). Attributes beyond these are the caller's (config.Pool).
	DNS []netip.Addr

	now func() time.Time

	mu     sync.Mutex
	leases map[uint64]*lease   // every address ever handed out and not reclaimed, by offset
	byID   map[string][]uint64 // identity → its addresses (held or offline)
	next   uint64              // offsets below next have been handed out at least once
	// offline lists released addresses, oldest first; they are reused (from another identity)
	// only when no never-used address is left.
	offline []uint64
	held    int
	// changed is called (without the lock) after each change, for persistence.
	changed func()
}

type lease struct {
	id       string
	holds    int
	released time.Time // when the last hold ended (offline leases)
}

// New returns a pool over start..end (inclusive, one address family). A prefix's network and
// broadcast addresses are the caller's to leave out (FromPrefix does).
func New(name string, start, end netip.Addr, dns []netip.Addr) (*Pool, error) {
	start, end = start.Unmap(), end.Unmap()
	if !start.IsValid() || !end.IsValid() || start.Is4() != end.Is4() || end.Less(start) {
		return nil, fmt.Errorf("pool %s: invalid range %s-%s", name, start, end)
	}
	size := distance(start, end) + 1
	if size > maxSize || size == 0 {
		size = maxSize
	}
	return &Pool{Name: name, start: start, end: end, size: size, DNS: dns, now: time.Now,
		leases: map[uint64]*lease{}, byID: map[string][]uint64{}}, nil
}

// FromPrefix returns a pool of a prefix's host addresses: for IPv4 without the network and
// broadcast address (and, for a /31 or /32, every address); for IPv6 without the subnet-router
// anycast address (RFC 4291 §2.6.1) unless it is a /127 or /128.
func FromPrefix(name string, p netip.Prefix, dns []netip.Addr) (*Pool, error) {
	start, end := PrefixRange(p)
	return New(name, start, end, dns)
}

// PrefixRange is the range FromPrefix hands out.
func PrefixRange(p netip.Prefix) (netip.Addr, netip.Addr) {
	p = p.Masked()
	start, end := p.Addr(), Last(p)
	switch {
	case start.Is4() && p.Bits() < 31:
		start, end = start.Next(), end.Prev()
	case start.Is6() && p.Bits() < 127:
		start = start.Next()
	}
	return start, end
}

// Last returns the last address of a prefix.
func Last(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// distance is end - start as a number (saturating at maxSize).
func distance(start, end netip.Addr) uint64 {
	a := new(big.Int).SetBytes(start.AsSlice())
	b := new(big.Int).SetBytes(end.AsSlice())
	d := b.Sub(b, a)
	if !d.IsUint64() || d.Uint64() >= maxSize {
		return maxSize - 1
	}
	return d.Uint64()
}

// addrAt returns start + off.
func (p *Pool) addrAt(off uint64) netip.Addr {
	b := p.start.AsSlice()
	carry := off
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		s := uint64(b[i]) + carry&0xff
		b[i] = byte(s)
		carry = carry>>8 + s>>8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// offsetOf returns a's offset in the range, ok false outside it.
func (p *Pool) offsetOf(a netip.Addr) (uint64, bool) {
	a = a.Unmap()
	if !p.Contains(a) {
		return 0, false
	}
	off := distance(p.start, a)
	if off >= p.size {
		return 0, false
	}
	return off, true
}

// SetClock replaces the clock that stamps releases (tests).
func (p *Pool) SetClock(now func() time.Time) { p.now = now }

// OnChange sets a function called after every change of the leases (persistence).
func (p *Pool) OnChange(fn func()) {
	p.mu.Lock()
	p.changed = fn
	p.mu.Unlock()
}

func (p *Pool) notify() {
	p.mu.Lock()
	fn := p.changed
	p.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// Acquire leases an address to id: its held address, else the address it had before if still
// free, else a never-used one, else the longest-released one.
func (p *Pool) Acquire(id string) (netip.Addr, error) { return p.AcquireRequested(id, netip.Addr{}) }

// AcquireRequested is Acquire when the client asks for an address (a re-authenticating IKEv2
// client asks for the one it has): the requested address is given if id holds it or had it, or if
// it is free. Otherwise the rules of Acquire apply.
func (p *Pool) AcquireRequested(id string, want netip.Addr) (netip.Addr, error) {
	a, err := p.acquire(id, want)
	if err == nil {
		p.notify()
	}
	return a, err
}

func (p *Pool) acquire(id string, want netip.Addr) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if off, ok := p.offsetOf(want); ok && !want.IsUnspecified() {
		l := p.leases[off]
		switch {
		case l != nil && l.id == id:
			p.holdLocked(off, l)
			return want, nil
		case l == nil && off >= p.next:
			// Never handed out: take it, and leave the cursor where it is (it skips taken ones).
			p.leases[off] = &lease{id: id}
			p.byID[id] = append(p.byID[id], off)
			p.holdLocked(off, p.leases[off])
			return want, nil
		}
	}
	// An address id has but does not hold (offline) comes first; then a held one is not shared:
	// a second device with the same identity gets an address of its own.
	for _, off := range p.byID[id] {
		if l := p.leases[off]; l.holds == 0 {
			p.holdLocked(off, l)
			return p.addrAt(off), nil
		}
	}
	for p.next < p.size {
		off := p.next
		p.next++
		if _, used := p.leases[off]; used {
			continue
		}
		p.leases[off] = &lease{id: id}
		p.byID[id] = append(p.byID[id], off)
		p.holdLocked(off, p.leases[off])
		return p.addrAt(off), nil
	}
	for len(p.offline) > 0 {
		off := p.offline[0]
		p.offline = p.offline[1:]
		l := p.leases[off]
		if l == nil || l.holds > 0 {
			continue
		}
		// Reclaim the address from its former owner.
		p.dropFromIDLocked(l.id, off)
		l.id = id
		p.byID[id] = append(p.byID[id], off)
		p.holdLocked(off, l)
		return p.addrAt(off), nil
	}
	return netip.Addr{}, ErrExhausted
}

func (p *Pool) holdLocked(off uint64, l *lease) {
	if l.holds == 0 {
		p.held++
		p.removeOfflineLocked(off)
	}
	l.holds++
}

func (p *Pool) removeOfflineLocked(off uint64) {
	for i, x := range p.offline {
		if x == off {
			p.offline = append(p.offline[:i], p.offline[i+1:]...)
			return
		}
	}
}

func (p *Pool) dropFromIDLocked(id string, off uint64) {
	list := p.byID[id]
	for i, x := range list {
		if x == off {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(p.byID, id)
	} else {
		p.byID[id] = list
	}
}

// Release ends one hold of id on every address it holds; an address whose last hold ends stays
// reserved for id until the pool runs out. (L2TP and IKEv1 hold one address per identity.)
func (p *Pool) Release(id string) {
	p.mu.Lock()
	changed := false
	for _, off := range p.byID[id] {
		if p.releaseLocked(off) {
			changed = true
		}
	}
	p.mu.Unlock()
	if changed {
		p.notify()
	}
}

// ReleaseAddr ends one hold of id on a.
func (p *Pool) ReleaseAddr(id string, a netip.Addr) bool {
	off, ok := p.offsetOf(a)
	if !ok {
		return false
	}
	p.mu.Lock()
	l := p.leases[off]
	changed := l != nil && l.id == id && p.releaseLocked(off)
	p.mu.Unlock()
	if changed {
		p.notify()
	}
	return changed
}

func (p *Pool) releaseLocked(off uint64) bool {
	l := p.leases[off]
	if l == nil || l.holds == 0 {
		return false
	}
	l.holds--
	if l.holds == 0 {
		p.held--
		l.released = p.now()
		p.offline = append(p.offline, off)
	}
	return true
}

// Contains reports whether a lies in the pool's range.
func (p *Pool) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && a.Is4() == p.start.Is4() && !a.Less(p.start) && !p.end.Less(a)
}

// Range returns the pool's first and last address.
func (p *Pool) Range() (netip.Addr, netip.Addr) { return p.start, p.end }

// Is6 reports whether the pool hands out IPv6 addresses.
func (p *Pool) Is6() bool { return p.start.Is6() }

// Lease is one address and who has it.
type Lease struct {
	ID   string
	Addr netip.Addr
	// Online: held (by Holds IKE SAs or sessions); otherwise reserved for ID since Released.
	Online   bool
	Holds    int
	Released time.Time
}

// Leases lists the held leases, by address.
func (p *Pool) Leases() []Lease {
	var out []Lease
	for _, l := range p.AllLeases() {
		if l.Online {
			out = append(out, l)
		}
	}
	return out
}

// AllLeases lists held and offline (reserved) leases, by address.
func (p *Pool) AllLeases() []Lease {
	p.mu.Lock()
	out := make([]Lease, 0, len(p.leases))
	for off, l := range p.leases {
		out = append(out, Lease{ID: l.id, Addr: p.addrAt(off), Online: l.holds > 0, Holds: l.holds, Released: l.released})
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}

// Restore puts back a lease saved before a restart or kept across a reload: an offline reservation
// of a for id (held ones are re-acquired by their clients when they reconnect). Addresses outside
// the range or taken already are skipped (false).
func (p *Pool) Restore(id string, a netip.Addr, released time.Time) bool {
	off, ok := p.offsetOf(a)
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, taken := p.leases[off]; taken {
		return false
	}
	p.leases[off] = &lease{id: id, released: released}
	p.byID[id] = append(p.byID[id], off)
	// Oldest first: a restored reservation is older than anything released from now on.
	i := sort.Search(len(p.offline), func(i int) bool { return p.leases[p.offline[i]].released.After(released) })
	p.offline = append(p.offline, 0)
	copy(p.offline[i+1:], p.offline[i:])
	p.offline[i] = off
	return true
}

// Size is the number of addresses (at most 1<<32).
func (p *Pool) Size() uint64 { return p.size }

// Held is the number of addresses held now.
func (p *Pool) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// Offline is the number of released addresses still reserved for their last identity.
func (p *Pool) Offline() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.leases) - p.held
}

// ErrTaken means a specific address is held by someone else.
var ErrTaken = errors.New("pool: address is leased to another client")

// Reserve makes id hold the specific address a (the L2TP server's own PPP address, say), once:
// reserving again is a no-op. An address outside the range is not the pool's to keep (nil); one
// held by another identity is refused (ErrTaken); one only reserved offline for another identity
// is taken over. Another address id held is released.
func (p *Pool) Reserve(id string, a netip.Addr) error {
	off, ok := p.offsetOf(a)
	if !ok {
		return nil
	}
	p.mu.Lock()
	l := p.leases[off]
	if l != nil && l.id != id && l.holds > 0 {
		p.mu.Unlock()
		return ErrTaken
	}
	if l != nil && l.id == id && l.holds > 0 {
		p.mu.Unlock()
		return nil
	}
	for _, o := range append([]uint64(nil), p.byID[id]...) {
		for p.releaseLocked(o) {
		}
	}
	switch {
	case l == nil:
		l = &lease{id: id}
		p.leases[off] = l
		p.byID[id] = append(p.byID[id], off)
	case l.id != id:
		p.dropFromIDLocked(l.id, off)
		l.id = id
		p.byID[id] = append(p.byID[id], off)
	}
	p.holdLocked(off, l)
	p.mu.Unlock()
	p.notify()
	return nil
}
