package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
)

// Redirects (RFC 5685). As a client the daemon follows a gateway's REDIRECT: it initiates the
// connection to the new gateway, announcing where it comes from; more than maxRedirects within
// redirectWindow end the chase (RFC 5685 §10: a loop). As a gateway, redirect_to sends every new
// client elsewhere, and Redirect (VICI redirect) moves established ones.

const (
	maxRedirects   = 5
	redirectWindow = 5 * time.Minute
)

func (d *Daemon) onRedirected(x ike.Redirected) {
	name := x.IKE.Conn
	d.mu.Lock()
	conn := d.conns[name]
	now := time.Now()
	var recent []time.Time
	for _, t := range d.redirects[name] {
		if now.Sub(t) < redirectWindow {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	d.redirects[name] = recent
	d.mu.Unlock()
	if conn == nil {
		return
	}
	if len(recent) > maxRedirects {
		d.log.Warn("too many redirects: not following", "conn", name, "to", x.To, "within", redirectWindow)
		return
	}
	to, err := resolveGateway(x.To)
	if err != nil {
		d.log.Warn("cannot follow the redirect", "conn", name, "to", x.To, "err", err)
		return
	}
	go func() {
		if err := d.initiateTo(conn, to, x.From); err != nil {
			d.log.Warn("following the redirect failed", "conn", name, "to", to, "err", err)
		}
	}()
}

func resolveGateway(gw string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(gw); err == nil {
		return a, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", gw)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: %v", gw, err)
	}
	return ips[0].Unmap(), nil
}

// initiateTo starts a connection towards another gateway address than configured (a redirect).
func (d *Daemon) initiateTo(conn *connection, to, from netip.Addr) error {
	local, remote, err := d.endpoints(conn.cfg)
	if err != nil {
		return err
	}
	remote = netip.AddrPortFrom(to, remote.Port())
	if src, err := d.sourceFor(to); err == nil {
		local = netip.AddrPortFrom(src, local.Port())
	}
	// The attempt announces REDIRECTED_FROM: a shallow copy of the connection's IKE settings.
	peer := *conn.peer
	peer.RedirectedFrom = from
	return d.ike.Initiate(&peer, peer.Children, local, remote)
}

// Redirect sends the clients of a connection (and, when set, of one peer address or identity)
// to another gateway; it returns how many IKE SAs it asked.
func (d *Daemon) Redirect(conn, peerID string, peerIP netip.Addr, gw string) (int, error) {
	if d.ike == nil {
		return 0, fmt.Errorf("IKE is not running")
	}
	n := d.ike.Redirect(func(s engine.SAInfo) bool {
		return (conn == "" || s.Name == conn) && (peerID == "" || s.RemoteID == peerID) && (!peerIP.IsValid() || s.Remote.Addr() == peerIP)
	}, gw)
	if n == 0 {
		return 0, fmt.Errorf("no established IKE SA matches")
	}
	return n, nil
}

// Redirect answers the control socket's redirect command (redirect.go of package control).
func (p controlPort) Redirect(conn, peerID string, peerIP netip.Addr, gw string) (int, error) {
	return p.d.Redirect(conn, peerID, peerIP, gw)
}
