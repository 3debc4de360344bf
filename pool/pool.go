// Package pool hands out addresses to remote clients from a configured range: PPP's IPCP (the
// L2TP/IPsec server) and IKEv1 Mode Config use it now, IKEv2's configuration payload can later.
// A client (named by its identity or user name) gets the same address again while its lease is
// held, and after release as long as nobody else took it (strongSwan's pools behave the same
// way), so a reconnecting client keeps its address.
package pool

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// ErrExhausted means every address of the pool is leased.
var ErrExhausted = errors.New("pool: no free address")

// Pool is a range of addresses and their leases. It is safe for concurrent use.
type Pool struct {
	Name       string
	start, end netip.Addr
	// DNS servers handed out with an address (RFC 1877 for PPP, INTERNAL_IP4_DNS for Mode Config).
	DNS []netip.Addr

	mu      sync.Mutex
	byID    map[string]netip.Addr // held leases
	owner   map[netip.Addr]string // held and released addresses, for stickiness
	held    map[netip.Addr]bool
	next    netip.Addr   // where the search for a never-used address goes on
	offline []netip.Addr // released addresses, oldest first, reused when the range is used up
}

// New returns a pool over start..end (inclusive, one address family). A prefix's network and
// broadcast addresses are the caller's to leave out (FromPrefix does).
func New(name string, start, end netip.Addr, dns []netip.Addr) (*Pool, error) {
	if !start.IsValid() || !end.IsValid() || start.Is4() != end.Is4() || end.Less(start) {
		return nil, fmt.Errorf("pool %s: invalid range %s-%s", name, start, end)
	}
	return &Pool{Name: name, start: start, end: end, DNS: dns, byID: map[string]netip.Addr{}, owner: map[netip.Addr]string{},
		held: map[netip.Addr]bool{}, next: start}, nil
}

// FromPrefix returns a pool of a prefix's host addresses: for IPv4 without the network and
// broadcast address (and, for a /31 or /32, every address).
func FromPrefix(name string, p netip.Prefix, dns []netip.Addr) (*Pool, error) {
	p = p.Masked()
	start, end := p.Addr(), last(p)
	if p.Addr().Is4() && p.Bits() < 31 {
		start, end = start.Next(), end.Prev()
	}
	return New(name, start, end, dns)
}

func last(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Acquire leases an address to id: its current lease, else the address it had before if free,
// else a never-used one, else the longest-released one.
func (p *Pool) Acquire(id string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byID[id]; ok {
		return a, nil
	}
	for a, o := range p.owner {
		if o == id && !p.held[a] {
			p.take(id, a)
			return a, nil
		}
	}
	for p.next.IsValid() && !p.end.Less(p.next) {
		a := p.next
		p.next = p.next.Next()
		if _, used := p.owner[a]; !used {
			p.take(id, a)
			return a, nil
		}
	}
	for len(p.offline) > 0 {
		a := p.offline[0]
		p.offline = p.offline[1:]
		if !p.held[a] {
			p.take(id, a)
			return a, nil
		}
	}
	return netip.Addr{}, ErrExhausted
}

func (p *Pool) take(id string, a netip.Addr) {
	p.byID[id] = a
	p.owner[a] = id
	p.held[a] = true
	for i, x := range p.offline {
		if x == a {
			p.offline = append(p.offline[:i], p.offline[i+1:]...)
			break
		}
	}
}

// ErrTaken means a specific address is leased to someone else.
var ErrTaken = errors.New("pool: address is leased to another client")

// Reserve leases the specific address a to id (the L2TP server's own PPP address, say).
func (p *Pool) Reserve(id string, a netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.Contains(a) {
		return nil // outside the range: nothing to keep out of it
	}
	if p.held[a] && p.owner[a] != id {
		return ErrTaken
	}
	if old, ok := p.byID[id]; ok && old != a {
		delete(p.held, old)
		p.offline = append(p.offline, old)
	}
	p.take(id, a)
	return nil
}

// Release ends id's lease; the address stays reserved for id until the pool runs out.
func (p *Pool) Release(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.byID[id]
	if !ok {
		return
	}
	delete(p.byID, id)
	delete(p.held, a)
	p.offline = append(p.offline, a)
}

// Contains reports whether a lies in the pool's range.
func (p *Pool) Contains(a netip.Addr) bool {
	return !a.Less(p.start) && !p.end.Less(a) && a.Is4() == p.start.Is4()
}

// Lease is one held address.
type Lease struct {
	ID   string
	Addr netip.Addr
}

// Leases lists the held leases.
func (p *Pool) Leases() []Lease {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Lease, 0, len(p.byID))
	for id, a := range p.byID {
		out = append(out, Lease{ID: id, Addr: a})
	}
	return out
}

// Size is the number of addresses (capped at 1<<32 for huge IPv6 ranges).
func (p *Pool) Size() uint64 {
	var n uint64
	for a := p.start; n < 1<<32; a = a.Next() {
		n++
		if a == p.end {
			break
		}
	}
	return n
}
