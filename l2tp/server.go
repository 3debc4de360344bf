package l2tp

import (
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ppp"
)

// Server is an LNS: it answers SCCRQs with new tunnels and routes every datagram to its tunnel
// by the Tunnel ID it carries. It is not safe for concurrent use; its owner serialises calls.
type Server struct {
	cfg     Config
	tunnels map[uint16]*Tunnel
	// starts finds the tunnel a retransmitted SCCRQ belongs to (tunnel ID 0 in its header).
	starts map[startKey]*Tunnel
	out    []Output
	// MaxTunnels bounds the tunnels (0: 1000).
	MaxTunnels int
}

type startKey struct {
	peer   netip.AddrPort
	peerID uint16
}

// NewServer returns an LNS.
func NewServer(cfg Config) *Server {
	cfg.defaults()
	return &Server{cfg: cfg, tunnels: map[uint16]*Tunnel{}, starts: map[startKey]*Tunnel{}}
}

// Input handles a datagram from peer. Malformed ones are dropped and reported as the error.
func (s *Server) Input(b []byte, peer netip.AddrPort, now time.Time) error {
	h, payload, err := DecodeHeader(b)
	if err != nil {
		return err
	}
	t := s.tunnels[h.Tunnel]
	if h.Tunnel == 0 && h.Control {
		m, err := ParseMessage(payload)
		if err != nil {
			return err
		}
		if m.Type != MsgSCCRQ {
			return malformed("%s for tunnel 0", MsgName(m.Type))
		}
		peerID, ok := m.u16(AVPTunnelID)
		if !ok || peerID == 0 {
			return malformed("SCCRQ without Assigned Tunnel ID")
		}
		k := startKey{peer, peerID}
		if t = s.starts[k]; t == nil {
			max := s.MaxTunnels
			if max == 0 {
				max = 1000
			}
			if len(s.tunnels) >= max {
				return malformed("tunnel limit %d reached", max)
			}
			id := randomID(s.cfg.Rand)
			for s.tunnels[id] != nil {
				id = randomID(s.cfg.Rand)
			}
			t = newTunnel(s.cfg, true, peer, id, now)
			s.tunnels[id] = t
			s.starts[k] = t
		}
	}
	if t == nil || t.Peer != peer {
		// Another peer's tunnel ID, or one that ended: not ours to answer.
		return malformed("unknown tunnel %d from %s", h.Tunnel, peer)
	}
	t.Input(h, payload, now)
	s.collect(t)
	return nil
}

// collect moves a tunnel's outputs to the server's and forgets a closed tunnel.
func (s *Server) collect(t *Tunnel) {
	s.out = append(s.out, t.Take()...)
	if t.Closed() {
		delete(s.tunnels, t.LocalID)
		for k, v := range s.starts {
			if v == t {
				delete(s.starts, k)
			}
		}
	}
}

// Take returns the outputs.
func (s *Server) Take() []Output {
	o := s.out
	s.out = nil
	return o
}

// Tick runs the tunnels' timers.
func (s *Server) Tick(now time.Time) {
	for _, t := range s.tunnels {
		t.Tick(now)
		s.collect(t)
	}
}

// NextDeadline is the earliest deadline of all tunnels.
func (s *Server) NextDeadline() time.Time {
	var next time.Time
	for _, t := range s.tunnels {
		if d := t.NextDeadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

// Send wraps an IPv4 packet for a session: the datagram and where it goes (nil when the session
// is not up).
func (s *Server) Send(tunnel, session uint16, ip []byte) ([]byte, netip.AddrPort) {
	t := s.tunnels[tunnel]
	if t == nil {
		return nil, netip.AddrPort{}
	}
	return t.Send(session, ip), t.Peer
}

// Verdict answers a SessionVerify (see Tunnel.Verdict); the outputs it causes are in Take.
func (s *Server) Verdict(tunnel, session uint16, token uint32, v ppp.Verdict) bool {
	t := s.tunnels[tunnel]
	if t == nil {
		return false
	}
	ok := t.Verdict(session, token, v)
	s.collect(t)
	return ok
}

// Tunnels lists the tunnels (for status).
func (s *Server) Tunnels() []*Tunnel {
	out := make([]*Tunnel, 0, len(s.tunnels))
	for _, t := range s.tunnels {
		out = append(out, t)
	}
	return out
}

// Close ends every tunnel with StopCCN.
func (s *Server) Close(reason string) {
	for _, t := range s.tunnels {
		t.Close(reason)
		s.collect(t)
	}
}
