package daemon

import (
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ikev1"
	v1engine "github.com/goipsec/goipsec/ikev1/engine"
	"github.com/goipsec/goipsec/ikev1/wire"
	"github.com/goipsec/goipsec/status"
)

// IKEv1 glue: connections with version = 1 (and, as responders, version = 0) also get an
// ikev1.Config; the IKEv1 engine shares the IKEv2 engine's event handlers, so its Child SAs are
// installed, moved and removed by the same code.

// newIKEv1 starts the IKEv1 engine next to the IKEv2 one.
func (d *Daemon) newIKEv1(ec engine.Config) {
	dc := d.opts.Daemon
	d.ikev1 = v1engine.New(v1engine.Config{Transport: ec.Transport, Clock: ec.Clock, Logger: ec.Logger, Events: ec.Events,
		Configs: d.candidatesV1, AllocSPI: d.AllocSPI, NATTPort: ec.NATTPort, Keepalive: ec.Keepalive,
		Timing: ikev1.Timing{Timeout: dc.RetransmitTimeout, Base: dc.RetransmitBase, Tries: dc.RetransmitTries}})
}

// receiveIKE hands a datagram to the engine of its IKE version (the version byte of the header:
// 0x10 for ISAKMP/IKEv1, 0x20 for IKEv2).
func (d *Daemon) receiveIKE(b []byte, local, remote netip.AddrPort) {
	if d.ikev1 != nil && wire.IsIKEv1(b) {
		d.ikev1.Receive(b, local, remote)
		return
	}
	d.ike.Receive(b, local, remote)
}

// buildV1 adds the IKEv1 view of a connection that speaks IKEv1.
func (d *Daemon) buildV1(conn *connection) {
	c := conn.cfg
	if c.Version != 1 && c.Version != 0 {
		return
	}
	lifetime := c.RekeyTime + c.OverTime
	if lifetime == 0 {
		lifetime = 3 * time.Hour
	}
	conn.v1 = &ikev1.Config{Peer: conn.peer, Aggressive: c.Aggressive, AllowWeak: c.WeakAlgorithms, Lifetime: lifetime, DPDTimeout: c.DPDTimeout,
		XAuth: c.Remote.XAuth, Users: d.xauthUser}
	if len(c.Pools) > 0 && d.vips != nil {
		// Mode Config leases from the same pools as IKEv2 and L2TP (IPv4 only: the Mode Config
		// attributes goipsec answers are INTERNAL_IP4_*), the DNS servers of the first IPv4 pool.
		conn.v1.Pool = poolLeases{store: d.vips.store, names: c.Pools}
		conn.v1.DNS = d.vips.dns4(c.Pools)
	}
	if c.Aggressive {
		d.log.Warn("IKEv1 Aggressive Mode with a preshared key exposes a hash an eavesdropper can attack offline; prefer Main Mode", "conn", c.Name)
	}
	if c.WeakAlgorithms {
		d.log.Warn("connection allows weak algorithms (3DES, SHA-1, MODP1024): only for clients that offer nothing better", "conn", c.Name)
	}
}

// candidatesV1 returns the IKEv1 connections a responder may use for a peer, in configuration
// order.
func (d *Daemon) candidatesV1(local, remote netip.Addr) []*ikev1.Config {
	snap := d.peers.Load()
	if snap == nil {
		return nil
	}
	var out []*ikev1.Config
	for c := range snap.mayMatch(remote) {
		if c.v1 != nil && addrMatches(c.cfg.LocalAddrs, local) && addrMatches(c.cfg.RemoteAddrs, remote) {
			out = append(out, c.v1)
		}
	}
	return out
}

// allSAs lists the SAs of both engines.
func (d *Daemon) allSAs() []engine.SAInfo {
	var out []engine.SAInfo
	if d.ike != nil {
		out = d.ike.SAs()
	}
	if d.ikev1 != nil {
		out = append(out, d.ikev1.SAs()...)
	}
	return out
}

// ikeVersion is the version a connection initiates with.
func ikeVersion(c *config.Connection) int {
	if c.Version == 1 {
		return 1
	}
	return 2
}

// addIKEv1Counters adds the IKEv1 engine's counters to the IKE ones; its drop reasons carry the
// prefix "ikev1_" so that both engines' reasons stay apart in the metric's label.
func (d *Daemon) addIKEv1Counters(c *status.IKECounters) {
	if d.ikev1 == nil {
		return
	}
	s := d.ikev1.Stats()
	c.HandshakesOK += s.HandshakesOK
	c.HandshakesFailed += s.HandshakesFailed
	c.HalfOpen += int64(s.HalfOpen)
	for r, n := range s.Drops {
		if n > 0 {
			c.Drops["ikev1_"+r] = n
			c.InvalidMessages += n
		}
	}
}

// xauthUser looks an XAuth user up in the secrets (the seam a RADIUS client will take).
func (d *Daemon) xauthUser(user string) (string, bool) {
	snap := d.peers.Load()
	if snap == nil {
		return "", false
	}
	pw, ok := snap.users[user]
	return string(pw), ok
}

func userIndex(users []*config.UserSecret) map[string][]byte {
	m := map[string][]byte{}
	for _, u := range users {
		for _, id := range u.IDs {
			if _, dup := m[id]; !dup {
				m[id] = u.Secret
			}
		}
	}
	return m
}
