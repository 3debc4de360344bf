package daemon

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/goipsec/goipsec/dataplane"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/status"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/ike"
)

// IKE and ESP in TCP (RFC 9329). The data plane owns the TCP connections (one connection carries
// both); the daemon hands the IKE messages to the engine and tells it when a connection closes,
// and the engine sends through the data plane.

// TCPCarrier is the data plane's TCP encapsulation.
type TCPCarrier interface {
	SetTCPHandlers(ike func(b []byte, local, remote netip.AddrPort), closed func(local, remote netip.AddrPort))
	ListenTCP(ports []uint16) error
	SendIKETCP(b []byte, local, remote netip.AddrPort, dial bool) error
	TCPStreams() []dataplane.TCPStream
}

// tcpTransport is the engine's transport when TCP is available: UDP through the IKE sockets, TCP
// through the data plane.
type tcpTransport struct {
	*ikeSockets
	tcp TCPCarrier
}

// SendStream implements engine.StreamTransport.
func (t *tcpTransport) SendStream(b []byte, local, remote netip.AddrPort, dial bool) error {
	return t.tcp.SendIKETCP(b, local, remote, dial)
}

// errNoTCP explains configurations that need TCP encapsulation from a data plane without it.
var errNoTCP = errors.New("IKE and ESP in TCP (RFC 9329) need the userspace data plane (daemon.dataplane = userspace); the kernel one has no ESP in TCP here")

// startTCP connects the data plane's TCP connections with the IKE engine and opens the listeners.
func (d *Daemon) startTCP() error {
	t := d.opts.TCP
	t.SetTCPHandlers(d.enqueueIKETCP, d.ike.StreamClosed)
	return t.ListenTCP(d.opts.Daemon.TCPListen)
}

// enqueueIKETCP queues an IKE message that arrived in TCP for the IKE workers.
func (d *Daemon) enqueueIKETCP(b []byte, local, remote netip.AddrPort) {
	m := ikeMessage{b: append([]byte(nil), b...), local: local, remote: remote, tcp: true}
	select {
	case d.ikeQueue <- m:
	default:
		d.log.Debug("IKE queue full: dropping a message", "from", remote)
	}
}

// configureTCP gives a connection its TCP settings: encap = tcp starts in TCP to tcp_port, and
// without it tcp_port is where the initiator falls back to when UDP gets no answer. Without a
// data plane that carries TCP, neither.
func (d *Daemon) configureTCP(peer *ike.PeerConfig, c *config.Connection) {
	if d.opts.TCP == nil {
		return
	}
	peer.ForceTCP, peer.TCPPort = c.EncapTCP, c.TCPPort
}

// tcpEndpoints turns the endpoints of an initiator with encap = tcp into TCP ones: the peer's
// tcp_port, and no local port before the connection exists.
func (d *Daemon) tcpEndpoints(c *config.Connection, local, remote netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	if !c.EncapTCP {
		return local, remote, nil
	}
	if d.opts.TCP == nil {
		return local, remote, fmt.Errorf("connection %s: encap = tcp: %w", c.Name, errNoTCP)
	}
	return netip.AddrPortFrom(local.Addr(), 0), netip.AddrPortFrom(remote.Addr(), c.TCPPort), nil
}

// tcpState names an IKE SA's transport for status: "udp" or "tcp".
func (d *Daemon) tcpState(sa engine.SAInfo) string {
	if sa.TCP {
		return "tcp"
	}
	return "udp"
}

// tcpConnection describes the TCP connection of an IKE SA in TCP: the one of its addresses, or the
// newest between the two hosts (which the data plane uses after a reconnect).
func (d *Daemon) tcpConnection(sa engine.SAInfo) *status.TCPState {
	if !sa.TCP || d.opts.TCP == nil {
		return nil
	}
	var best *dataplane.TCPStream
	for _, s := range d.opts.TCP.TCPStreams() {
		if s.Local == sa.Local && s.Remote == sa.Remote {
			best = &s
			break
		}
		if s.Local.Addr() == sa.Local.Addr() && s.Remote.Addr() == sa.Remote.Addr() && (best == nil || s.Since.After(best.Since)) {
			best = &s
		}
	}
	if best == nil {
		return &status.TCPState{Local: sa.Local.String(), Remote: sa.Remote.String(), Originator: sa.TCPOriginator}
	}
	return &status.TCPState{Local: best.Local.String(), Remote: best.Remote.String(), Originator: best.Originator, Since: best.Since,
		BytesIn: best.BytesIn, BytesOut: best.BytesOut, ESPIn: best.ESPIn, ESPOut: best.ESPOut, Connected: true}
}
