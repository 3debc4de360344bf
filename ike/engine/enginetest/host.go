package enginetest

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
)

// Host is one engine on the network with a recorder of its events and a fake data plane.
type Host struct {
	Name   string
	Addr   netip.Addr
	Engine *engine.Engine
	Plane  *Plane

	mu       sync.Mutex
	ikeUp    []ike.IKEUp
	ikeDown  []ike.IKEDown
	rekeyed  []ike.IKERekeyed
	childUp  []*ike.ChildInstall
	failed   []ike.Failed
	moved    []ike.ChildMoved
	vips     []ike.VirtualIPs
	redirs   []ike.Redirected
	installs map[uint32]*ike.ChildInstall // live Child SAs by inbound SPI
}

// HostOptions adjust a host's engine.
type HostOptions struct {
	// Configs returns the responder's connections (nil: none).
	Configs func(local, remote netip.Addr) []*ike.PeerConfig
	// Nonces scripts the host's nonces (nil: random).
	Nonces *Nonces
	// Modify may change the engine configuration last.
	Modify func(*engine.Config)
	// Log receives the engine's log (nil: t.Log when the test fails).
	Log io.Writer
}

// AddHost starts an engine at addr on the network, in manual mode on the network's clock.
func (n *Net) AddHost(t testing.TB, name string, addr netip.Addr, opts HostOptions) *Host {
	h := &Host{Name: name, Addr: addr, installs: map[uint32]*ike.ChildInstall{}}
	h.Plane = &Plane{host: h, net: n, inbound: map[uint32]*inboundSA{}, policies: map[string]*outboundSA{}, notified: map[uint32]bool{}}
	w := opts.Log
	if w == nil {
		w = testWriter{t, name}
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := engine.Config{Transport: transport{n, h}, Clock: n.Clock, Logger: log, Manual: true,
		RetransmitTimeout: time.Second, RetransmitTries: 3, Configs: opts.Configs, Events: h.events()}
	if opts.Nonces != nil {
		cfg.Nonce = opts.Nonces.Next
	}
	if opts.Modify != nil {
		opts.Modify(&cfg)
	}
	h.Engine = engine.New(cfg)
	n.mu.Lock()
	n.hosts[addr] = h
	n.mu.Unlock()
	return h
}

// Remove takes a host off the network (its packets are lost from now on), as a crash does.
func (n *Net) Remove(h *Host) {
	n.mu.Lock()
	delete(n.hosts, h.Addr)
	n.mu.Unlock()
}

// testWriter sends log lines to t.Log (shown only for failing tests).
type testWriter struct {
	t    testing.TB
	name string
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(w.name + ": " + strings.TrimSpace(string(b)))
	return len(b), nil
}

func (h *Host) events() engine.Events {
	return engine.Events{
		IKEUp:      func(x ike.IKEUp) { h.mu.Lock(); h.ikeUp = append(h.ikeUp, x); h.mu.Unlock() },
		IKEDown:    func(x ike.IKEDown) { h.mu.Lock(); h.ikeDown = append(h.ikeDown, x); h.mu.Unlock() },
		IKERekeyed: func(x ike.IKERekeyed) { h.mu.Lock(); h.rekeyed = append(h.rekeyed, x); h.mu.Unlock() },
		ChildUp: func(c *ike.ChildInstall) error {
			cp := *c
			cp.EncrIn, cp.EncrOut = append([]byte(nil), c.EncrIn...), append([]byte(nil), c.EncrOut...)
			h.mu.Lock()
			h.childUp = append(h.childUp, &cp)
			h.installs[c.SPIIn] = &cp
			h.mu.Unlock()
			h.Plane.install(&cp)
			return nil
		},
		ChildActivate: func(x ike.ChildActivate) { h.Plane.activate(x) },
		ChildDown: func(x ike.ChildDown) {
			h.mu.Lock()
			delete(h.installs, x.SPIIn)
			h.mu.Unlock()
			h.Plane.remove(x)
		},
		ChildMoved: func(x ike.ChildMoved) {
			h.mu.Lock()
			h.moved = append(h.moved, x)
			h.mu.Unlock()
			h.Plane.move(x)
		},
		Failed:     func(x ike.Failed) { h.mu.Lock(); h.failed = append(h.failed, x); h.mu.Unlock() },
		VirtualIPs: func(x ike.VirtualIPs) { h.mu.Lock(); h.vips = append(h.vips, x); h.mu.Unlock() },
		Redirected: func(x ike.Redirected) { h.mu.Lock(); h.redirs = append(h.redirs, x); h.mu.Unlock() },
	}
}

// IKEUp, IKEDown, Rekeyed, ChildUps, Failures and Moves return what the host's engine reported.
func (h *Host) IKEUp() []ike.IKEUp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ike.IKEUp(nil), h.ikeUp...)
}

func (h *Host) IKEDown() []ike.IKEDown {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ike.IKEDown(nil), h.ikeDown...)
}

func (h *Host) Rekeyed() []ike.IKERekeyed {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ike.IKERekeyed(nil), h.rekeyed...)
}

func (h *Host) ChildUps() []*ike.ChildInstall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*ike.ChildInstall(nil), h.childUp...)
}

// Failures returns the failures, without the normal retries unless all is set.
func (h *Host) Failures(all bool) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, f := range h.failed {
		if all || !f.Retry {
			out = append(out, f.Err.Error())
		}
	}
	return out
}

// Redirects returns the redirects the host's engine reported.
func (h *Host) Redirects() []ike.Redirected {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ike.Redirected(nil), h.redirs...)
}

// VirtualIPs returns the virtual IPs the host's engine reported receiving.
func (h *Host) VirtualIPs() []ike.VirtualIPs {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ike.VirtualIPs(nil), h.vips...)
}

func (h *Host) Moves() []ike.ChildMoved {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ike.ChildMoved(nil), h.moved...)
}

// Children returns the live Child SAs by inbound SPI.
func (h *Host) Children() map[uint32]*ike.ChildInstall {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[uint32]*ike.ChildInstall, len(h.installs))
	for k, v := range h.installs {
		out[k] = v
	}
	return out
}

// CheckPaired reports an error unless every live Child SA of a pairs with one of b of the same
// protocol and their keys match.
func CheckPaired(a, b *Host) error {
	ac, bc := a.Children(), b.Children()
	if len(ac) != len(bc) {
		return fmt.Errorf("%s has %d Child SAs, %s has %d", a.Name, len(ac), b.Name, len(bc))
	}
	for _, c := range ac {
		o := bc[c.SPIOut]
		if o == nil || o.SPIOut != c.SPIIn || o.Protocol() != c.Protocol() || !bytes.Equal(o.EncrIn, c.EncrOut) || !bytes.Equal(o.EncrOut, c.EncrIn) ||
			!bytes.Equal(o.IntegIn, c.IntegOut) || !bytes.Equal(o.IntegOut, c.IntegIn) {
			return fmt.Errorf("%s's Child SA %08x/%08x has no matching SA at %s", a.Name, c.SPIIn, c.SPIOut, b.Name)
		}
	}
	return nil
}

// Nonces scripts nonces: each starts with Prefix, so that of two hosts the one with the lower
// prefix always has the lower nonce and its exchange makes the redundant SA of a collision.
type Nonces struct {
	Prefix byte
	mu     sync.Mutex
	n      uint64
}

// Next implements engine.Config.Nonce.
func (s *Nonces) Next(n int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	b := make([]byte, n)
	b[0] = s.Prefix
	for i := 1; i < n && i < 9; i++ {
		b[i] = byte(s.n >> (8 * (8 - i)))
	}
	// The rest varies too, so that no two nonces are equal.
	for i := 9; i < n; i++ {
		b[i] = byte(s.n*31) ^ byte(i)
	}
	return b, nil
}
