package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/goipsec/goipsec/internal/ikeprobe"
	"github.com/goipsec/goipsec/proposal"
	"github.com/goipsec/goipsec/vici"
)

// goipsecCommands are goipsec's own commands, for its CLI (docs/vici.md). Their names start with
// "goipsec-" so they never collide with strongSwan's.
func (s *Service) goipsecCommands(r *vici.Registry) {
	r.Handle("goipsec-status", s.status)
	r.Handle("goipsec-reload", s.reload)
	r.Handle("goipsec-probe", s.probe)
}

// status returns the snapshot as JSON in "json" (docs/status-json.md), optionally only the
// connection named in "ike" (an error when there is none).
func (s *Service) status(_ context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	st := s.d.Status()
	if name := req.Get("ike"); name != "" {
		c := st.Connection(name)
		if c == nil {
			return nil, noSuchConnection(name, s.d.Config())
		}
		st.Connections = append(st.Connections[:0:0], *c)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("json", string(b)), nil
}

func (s *Service) reload(context.Context, *vici.Message, vici.EventStreamer) (*vici.Message, error) {
	if err := s.d.Reload(); err != nil {
		return nil, err
	}
	return vici.NewMessage().Set("success", "yes"), nil
}

// probe checks, from the daemon's side, whether IKE answers at the connection's remote addresses
// (or the "host" given) on ports 500 and 4500, offering the connection's IKE proposals (the
// default set for a host). Each result is a section named "ADDR:PORT" with
// verdict (answered, refused, silent, error), detail and rtt_ms.
func (s *Service) probe(ctx context.Context, req *vici.Message, _ vici.EventStreamer) (*vici.Message, error) {
	var hosts []netip.Addr
	var props []proposal.Proposal
	if h := req.Get("host"); h != "" {
		a, err := netip.ParseAddr(h)
		if err != nil {
			return nil, fmt.Errorf("host %q is not an IP address", h)
		}
		hosts = append(hosts, a)
	} else {
		name := req.Get("ike")
		if name == "" {
			return nil, fmt.Errorf("goipsec-probe needs ike or host")
		}
		found := false
		for _, c := range s.d.Config().Connections {
			if c.Name != name {
				continue
			}
			found = true
			props = c.Proposals
			for _, a := range addrList(c.RemoteAddrs) {
				if ip, err := netip.ParseAddr(a); err == nil {
					hosts = append(hosts, ip)
				}
			}
		}
		if !found {
			return nil, noSuchConnection(name, s.d.Config())
		}
	}
	ports := []uint16{500, 4500}
	if p := req.Get("port"); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("port %q is not a port number", p)
		}
		ports = []uint16{uint16(n)}
	}
	var dsts []netip.AddrPort
	for _, h := range hosts {
		for _, p := range ports {
			dsts = append(dsts, netip.AddrPortFrom(h, p))
		}
	}
	// In parallel: a silent peer costs one timeout, not one per port.
	results := make([]ikeprobe.Result, len(dsts))
	var wg sync.WaitGroup
	for i, dst := range dsts {
		wg.Go(func() { results[i] = s.d.Probe(ctx, dst, props) })
	}
	wg.Wait()
	m := vici.NewMessage()
	for i, r := range results {
		m.AddSection(dsts[i].String()).Set("verdict", string(r.Verdict)).Set("detail", strings.TrimSpace(r.Detail)).
			Set("rtt_ms", strconv.FormatInt(r.RTT.Milliseconds(), 10))
	}
	m.Set("success", "yes")
	return m, nil
}
