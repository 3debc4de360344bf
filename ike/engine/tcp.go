package engine

import (
	"errors"
	"net/netip"
	"strconv"

	"github.com/goipsec/goipsec/ike"
)

// IKE in TCP (RFC 9329). A Transport that also implements StreamTransport carries the messages of
// IKE SAs whose ike.SA.TCP is set in TCP connections; the engine otherwise treats them like UDP
// ones, except that it never fragments them (TCP has no datagram limit), never floats to the
// NAT-T port, sends no NAT-keepalives, and follows a new connection of the peer at once (the
// originator reconnected). The initiator falls back from UDP to TCP when IKE_SA_INIT gets no
// answer, and the side that opened a connection reopens it when it breaks (RFC 9329 §6.1).

// StreamTransport sends IKE messages in TCP connections. SendStream uses the connection between
// local and remote, or the peer's newest one; with dial it may open one to remote (then local's
// port is not known before, and the messages the peer answers come from the new connection).
type StreamTransport interface {
	SendStream(b []byte, local, remote netip.AddrPort, dial bool) error
}

// tcpFallbackAfter is how many retransmissions of IKE_SA_INIT go unanswered over UDP before the
// initiator tries TCP: UDP gets the first word (RFC 9329 §6.1), but a network that drops it should
// not cost the whole retransmission schedule.
const tcpFallbackAfter = 2

// ReceiveTCP handles one IKE message (without the non-ESP marker) that arrived in the TCP
// connection between remote and local.
func (e *Engine) ReceiveTCP(b []byte, local, remote netip.AddrPort) {
	e.receive(b, local, remote, true)
}

// StreamClosed tells the engine that the TCP connection between local and remote broke. IKE SAs
// whose side opened it reconnect at once, with a liveness check, so that the peer learns the new
// connection before it has anything to send; the others wait for their peer to reconnect.
func (e *Engine) StreamClosed(local, remote netip.AddrPort) {
	for _, en := range e.table.all() {
		if h := en.remoteHint.Load(); h != nil && h.Addr() != remote.Addr() {
			continue
		}
		e.post(en, work{kind: workFunc, fn: func(s *ikeSA) {
			if !s.TCP || !s.TCPOriginator || s.Remote != remote {
				return
			}
			e.logSA(s).Info("TCP connection closed: reconnecting", "local", local, "remote", remote)
			if !s.Busy() {
				s.QueueLiveness()
			} else if s.pendingMsg != nil {
				// The outstanding request went down with the connection: send it again now.
				e.send(s, s.Remote, s.pendingMsg)
			}
		}})
	}
}

// fallbackToTCP switches an IKE_SA_INIT that UDP did not deliver to TCP, when the connection has a
// TCP port for the peer and the transport can carry TCP. It reports whether it did.
func (e *Engine) fallbackToTCP(s *ikeSA) bool {
	if s.TCP || s.udpPath != nil || s.State() != ike.StateInitSent || s.retries < tcpFallbackAfter || s.Config == nil || s.Config.TCPPort == 0 {
		return false
	}
	if _, ok := e.cfg.Transport.(StreamTransport); !ok {
		return false
	}
	remote := netip.AddrPortFrom(s.Remote.Addr(), s.Config.TCPPort)
	local := netip.AddrPortFrom(s.Local.Addr(), 0)
	udp := [2]netip.AddrPort{s.Local, s.Remote}
	if !s.RestartInit(local, remote, true) {
		return false
	}
	s.udpPath = &udp
	e.flush(s)
	s.out = append(s.out, ike.Failed{Conn: s.connName(), Retry: true,
		Err: fallbackError{udp: s.retries + 1, to: remote}})
	e.stopPending(s)
	e.logSA(s).Info("no answer over UDP: trying IKE in TCP (RFC 9329)", "remote", remote)
	return true
}

type fallbackError struct {
	udp int
	to  netip.AddrPort
}

func (f fallbackError) Error() string {
	return "peer did not answer " + strconv.Itoa(f.udp) + " IKE_SA_INIT requests over UDP: trying TCP to " + f.to.String() + " (RFC 9329)"
}

// maxDatagram is the size above which messages of the SA are fragmented: none in TCP.
func (e *Engine) maxDatagram(s *ikeSA) int {
	if s.TCP {
		return 0
	}
	return e.cfg.MaxDatagram
}

// sendStream applies a send effect of an IKE SA in TCP.
func (e *Engine) sendStream(x sendEffect) {
	st, ok := e.cfg.Transport.(StreamTransport)
	if !ok {
		e.log.Warn("IKE in TCP, but the transport carries only UDP", "to", x.remote)
		return
	}
	for _, m := range x.msgs {
		e.net.Debug("sending packet in TCP", "from", x.local, "to", x.remote, "bytes", len(m))
		if err := st.SendStream(m, x.local, x.remote, x.dial); err != nil {
			e.log.Warn("sending IKE message in TCP failed", "to", x.remote, "err", err)
			if x.en != nil {
				e.post(x.en, work{kind: workFunc, fn: e.backToUDP})
			}
			return
		}
	}
}

// backToUDP undoes a fallback to TCP whose connection could not be opened (nothing listens, or a
// firewall refuses it): IKE_SA_INIT goes on over UDP, where loss alone may have been the trouble,
// and TCP is not tried again for this IKE SA.
func (e *Engine) backToUDP(s *ikeSA) {
	if s.udpPath == nil || !s.TCP || s.State() != ike.StateInitSent {
		return
	}
	if !s.RestartInit(s.udpPath[0], s.udpPath[1], false) {
		return
	}
	e.flush(s)
	s.out = append(s.out, ike.Failed{Conn: s.connName(), Retry: true, Err: errors.New("no TCP connection to the peer either: IKE_SA_INIT goes on over UDP")})
	e.stopPending(s)
	e.logSA(s).Info("TCP connection failed: back to UDP", "remote", s.Remote)
}
