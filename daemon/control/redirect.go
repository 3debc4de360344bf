package control

import (
	"context"
	"errors"
	"net/netip"
	"strconv"

	"github.com/goipsec/goipsec/vici"
)

// redirecter is what the redirect command needs; a daemon without it answers that it cannot.
type redirecter interface {
	Redirect(conn, peerID string, peerIP netip.Addr, gw string) (int, error)
}

// redirectCommands is strongSwan's redirect (swanctl --redirect): send the clients of established
// IKE SAs to another gateway (RFC 5685 §5), by connection, peer identity or peer address.
func (s *Service) redirectCommands(r *vici.Registry) {
	r.Handle("redirect", s.redirect)
}

func (s *Service) redirect(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	rd, ok := s.d.(redirecter)
	if !ok {
		return nil, errors.New("redirect is not available")
	}
	gw := req.Get("gateway")
	if gw == "" {
		return nil, errors.New("redirect needs a gateway")
	}
	var ip netip.Addr
	if p := req.Get("peer-ip"); p != "" {
		a, err := netip.ParseAddr(p)
		if err != nil {
			return nil, err
		}
		ip = a
	}
	n, err := rd.Redirect(req.Get("ike"), req.Get("peer-id"), ip, gw)
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes").Set("matches", strconv.Itoa(n)), nil
}
