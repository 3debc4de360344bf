package enginetest

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/goipsec/goipsec/proposal"
)

// Packet is a datagram on the fake network: an IKE message, or (ESP set) a data packet sent with
// the outbound SA SPI and the Child SA's protocol (Proto: ESP or AH).
type Packet struct {
	B        []byte
	From, To netip.AddrPort
	ESP      bool
	SPI      uint32
	Proto    proposal.Protocol
}

// Net connects Hosts by address. Packets queue until Deliver runs, so no engine is entered while
// another works. Drop decides losses; a NAT set with AddNAT rewrites addresses on the way.
type Net struct {
	Clock *ManualClock

	mu    sync.Mutex
	queue []Packet
	hosts map[netip.Addr]*Host
	// Drop, when set, loses the packets it returns true for.
	Drop func(Packet) bool
	// Sent counts IKE datagrams sent; Lost those dropped (by Drop or a NAT without mapping).
	Sent, Lost int
	nats       []*NAT
}

// NewNet returns an empty network on a new manual clock.
func NewNet() *Net { return &Net{Clock: NewManualClock(), hosts: map[netip.Addr]*Host{}} }

// NAT hides the hosts of Inside behind Public: it maps each inside address and port to a public
// port when the first packet goes out, and translates answers back (a port-restricted cone NAT).
type NAT struct {
	Public  netip.Addr
	Inside  map[netip.Addr]bool
	next    uint16
	out     map[netip.AddrPort]netip.AddrPort // inside → public
	in      map[netip.AddrPort]netip.AddrPort // public → inside
	Rebinds int
}

// AddNAT puts the given hosts behind a NAT with the public address pub.
func (n *Net) AddNAT(pub netip.Addr, inside ...netip.Addr) *NAT {
	nat := &NAT{Public: pub, Inside: map[netip.Addr]bool{}, next: 40000,
		out: map[netip.AddrPort]netip.AddrPort{}, in: map[netip.AddrPort]netip.AddrPort{}}
	for _, a := range inside {
		nat.Inside[a] = true
	}
	n.mu.Lock()
	n.nats = append(n.nats, nat)
	n.mu.Unlock()
	return nat
}

// Rebind forgets every mapping: the next packets out get new public ports, as when a NAT
// restarts or times mappings out.
func (n *Net) Rebind(nat *NAT) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nat.out = map[netip.AddrPort]netip.AddrPort{}
	nat.in = map[netip.AddrPort]netip.AddrPort{}
	nat.Rebinds++
}

// translateLocked applies the NATs to a packet: false when it is dropped (no mapping back, or
// an AH packet: AH has no ports to map and authenticates the addresses a NAT would rewrite).
func (n *Net) translateLocked(p *Packet) bool {
	for _, nat := range n.nats {
		if p.ESP && p.Proto == proposal.ProtoAH && (nat.Inside[p.From.Addr()] || p.To.Addr() == nat.Public) {
			return false
		}
		if nat.Inside[p.From.Addr()] {
			pub, ok := nat.out[p.From]
			if !ok {
				nat.next++
				pub = netip.AddrPortFrom(nat.Public, nat.next)
				nat.out[p.From] = pub
				nat.in[pub] = p.From
			}
			p.From = pub
		}
		if p.To.Addr() == nat.Public {
			inside, ok := nat.in[p.To]
			if !ok {
				return false
			}
			p.To = inside
		}
	}
	return true
}

// transport is one host's side of the network.
type transport struct {
	n *Net
	h *Host
}

func (t transport) Send(b []byte, local, remote netip.AddrPort) error {
	t.n.mu.Lock()
	self := t.h.Addr
	t.n.mu.Unlock()
	if local.Addr() != self && local.Addr().IsValid() {
		// A packet from an address the host no longer has (it moved) is lost.
		t.n.mu.Lock()
		t.n.Lost++
		t.n.mu.Unlock()
		return fmt.Errorf("enginetest: host %s sending from %s", self, local)
	}
	t.n.send(Packet{B: append([]byte(nil), b...), From: netip.AddrPortFrom(self, local.Port()), To: remote})
	return nil
}

// MoveHost gives a host a new address (another network, another interface): packets to its old
// address are lost from now on, and it sends from the new one.
func (n *Net) MoveHost(h *Host, addr netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.hosts, h.Addr)
	h.Addr = addr
	n.hosts[addr] = h
}

func (n *Net) send(p Packet) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !p.ESP {
		n.Sent++
	}
	n.queue = append(n.queue, p)
}

// Deliver hands queued packets to their hosts until none is left, polling every engine between
// packets so that answers are queued in order. It returns how many it delivered.
func (n *Net) Deliver() int {
	count := 0
	for {
		n.Poll()
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			return count
		}
		p := n.queue[0]
		n.queue = n.queue[1:]
		drop := n.Drop != nil && n.Drop(p)
		if !drop && !n.translateLocked(&p) {
			drop = true
		}
		h := n.hosts[p.To.Addr()]
		if drop || h == nil {
			if !p.ESP {
				n.Lost++
			}
			if p.ESP && h != nil {
				h.Plane.lost()
			}
			n.mu.Unlock()
			continue
		}
		n.mu.Unlock()
		count++
		if p.ESP {
			h.Plane.receive(p)
			continue
		}
		h.Engine.Receive(p.B, p.To, p.From)
	}
}

// Queued returns a copy of the packets waiting for delivery.
func (n *Net) Queued() []Packet {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Packet(nil), n.queue...)
}

// Poll runs every host's queued engine work.
func (n *Net) Poll() {
	n.mu.Lock()
	hosts := make([]*Host, 0, len(n.hosts))
	for _, h := range n.hosts {
		hosts = append(hosts, h)
	}
	n.mu.Unlock()
	for again := true; again; {
		again = false
		for _, h := range hosts {
			if !h.Engine.Idle() {
				again = true
			}
			h.Engine.Poll()
		}
	}
}

// Run delivers packets and advances virtual time in steps of step for d. With traffic set, every
// host sends one data packet on each of its active policies at every step.
func (n *Net) Run(d, step time.Duration, traffic bool) {
	for elapsed := time.Duration(0); elapsed < d; elapsed += step {
		if traffic {
			n.mu.Lock()
			hosts := make([]*Host, 0, len(n.hosts))
			for _, h := range n.hosts {
				hosts = append(hosts, h)
			}
			n.mu.Unlock()
			for _, h := range hosts {
				h.Plane.sendAll()
			}
		}
		n.Deliver()
		n.Clock.Advance(step)
		n.Deliver()
	}
}
