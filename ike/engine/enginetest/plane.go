package enginetest

import (
	"net/netip"
	"sync"
	"time"

	"github.com/goipsec/goipsec/ike"
)

// Plane is a fake data plane fed by a host's Child SA events, as the daemon feeds the real one:
// inbound SAs by SPI (and protocol), and for each policy (connection and child name) the outbound SA it uses. It
// sends data packets to the peer and counts those that arrive for an SA the peer does not have.
type Plane struct {
	host *Host
	net  *Net

	// Grace is how long a rekeyed Child SA's inbound SA stays after its deletion (default 2s).
	Grace time.Duration

	mu       sync.Mutex
	inbound  map[uint32]*inboundSA
	policies map[string]*outboundSA
	notified map[uint32]bool
	children []*ike.ChildInstall // installed, in order

	sent, received, noSA, lostOnWire int
	receivedBySPI                    map[uint32]int
}

type inboundSA struct{ c *ike.ChildInstall }

type outboundSA struct{ c *ike.ChildInstall }

func policyKey(conn, child string) string { return conn + "/" + child }

func (p *Plane) install(c *ike.ChildInstall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inbound[c.SPIIn] = &inboundSA{c: c}
	p.children = append(p.children, c)
	key := policyKey(c.IKE.Conn, c.Name)
	if c.Activate || p.policies[key] == nil {
		p.policies[key] = &outboundSA{c: c}
	}
}

func (p *Plane) findLocked(spiIn uint32) *ike.ChildInstall {
	for _, c := range p.children {
		if c.SPIIn == spiIn {
			return c
		}
	}
	return nil
}

func (p *Plane) activate(x ike.ChildActivate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.findLocked(x.SPIIn); c != nil {
		p.policies[policyKey(c.IKE.Conn, c.Name)] = &outboundSA{c: c}
	}
}

func (p *Plane) remove(x ike.ChildDown) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.findLocked(x.SPIIn)
	if c == nil {
		return
	}
	for i, o := range p.children {
		if o == c {
			p.children = append(p.children[:i], p.children[i+1:]...)
			break
		}
	}
	key := policyKey(c.IKE.Conn, c.Name)
	if out := p.policies[key]; out != nil && out.c == c {
		// Another Child SA with the same selectors takes over, as the daemon does it.
		delete(p.policies, key)
		for i := len(p.children) - 1; i >= 0; i-- {
			if o := p.children[i]; policyKey(o.IKE.Conn, o.Name) == key {
				p.policies[key] = &outboundSA{c: o}
				break
			}
		}
	}
	if !x.Grace {
		delete(p.inbound, x.SPIIn)
		return
	}
	grace := p.Grace
	if grace == 0 {
		grace = 2 * time.Second
	}
	spi := x.SPIIn
	p.net.Clock.AfterFunc(grace, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if in := p.inbound[spi]; in != nil && in.c == c {
			delete(p.inbound, spi)
		}
	})
}

func (p *Plane) move(x ike.ChildMoved) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.findLocked(x.SPIIn); c != nil {
		c.IKE.Local, c.IKE.Remote = x.IKE.Local, x.IKE.Remote
	}
}

// sendAll sends one data packet on every policy's outbound SA.
func (p *Plane) sendAll() {
	p.mu.Lock()
	var pkts []Packet
	for _, out := range p.policies {
		c := out.c
		pkts = append(pkts, Packet{ESP: true, SPI: c.SPIOut, Proto: c.Protocol(), From: netip.AddrPortFrom(p.host.Addr, c.IKE.Local.Port()), To: c.IKE.Remote})
	}
	p.sent += len(pkts)
	p.mu.Unlock()
	for _, pk := range pkts {
		p.net.send(pk)
	}
}

func (p *Plane) receive(pk Packet) {
	p.mu.Lock()
	in := p.inbound[pk.SPI]
	notify := false
	if in == nil || in.c.Protocol() != pk.Proto {
		// An SA is found by protocol and SPI: an AH packet never meets an ESP SA.
		p.noSA++
	} else {
		p.received++
		if p.receivedBySPI == nil {
			p.receivedBySPI = map[uint32]int{}
		}
		p.receivedBySPI[pk.SPI]++
		if in.c.NotifyFirstInbound && !p.notified[pk.SPI] {
			p.notified[pk.SPI] = true
			notify = true
		}
	}
	p.mu.Unlock()
	if notify {
		p.host.Engine.InboundActive(pk.SPI)
	}
}

func (p *Plane) lost() {
	p.mu.Lock()
	p.lostOnWire++
	p.mu.Unlock()
}

// Counters: data packets sent, received on an installed SA, received for an SA not installed
// (the loss make-before-break prevents), and lost on the wire (Drop, or a NAT without mapping).
func (p *Plane) Counters() (sent, received, noSA, lost int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, p.received, p.noSA, p.lostOnWire
}

// Outbound returns the outbound SPI the policy of a connection's child uses (0: none).
func (p *Plane) Outbound(conn, child string) uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if out := p.policies[policyKey(conn, child)]; out != nil {
		return out.c.SPIOut
	}
	return 0
}

// Inbound returns the installed inbound SPIs.
func (p *Plane) Inbound() []uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []uint32
	for spi := range p.inbound {
		out = append(out, spi)
	}
	return out
}
