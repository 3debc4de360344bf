package control

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
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
	r.Event(StatusPartEvent)
	r.Handle("goipsec-reload", s.reload)
	r.Handle("goipsec-probe", s.probe)
}

// StatusPartEvent carries the status JSON in parts: a VICI value holds at most 65,535 bytes and a
// message 512 KiB, and a gateway with thousands of tunnels has a larger status. The parts come as
// events before the response, each a list "json" of pieces, in order.
const StatusPartEvent = "goipsec-status-part"

// statusPiece and statusPartSize bound one list value and one event (below the VICI limits with
// room for the framing).
const (
	statusPiece    = 60000
	statusPartSize = 6 * statusPiece
)

// status returns the snapshot as JSON (docs/status-json.md), optionally only the connection named
// in "ike" (an error when there is none). A client registered for StatusPartEvent gets the JSON in
// parts and the response counts them in "parts"; otherwise the response holds it in "json" (which
// fails once it no longer fits one value).
func (s *Service) status(_ context.Context, req *vici.Message, stream vici.EventStreamer) (*vici.Message, error) {
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
	if !stream.Registered(StatusPartEvent) {
		return vici.NewMessage().Set("json", string(b)), nil
	}
	parts := 0
	for len(b) > 0 {
		part := b[:min(len(b), statusPartSize)]
		b = b[len(part):]
		var pieces []string
		for len(part) > 0 {
			n := min(len(part), statusPiece)
			pieces = append(pieces, string(part[:n]))
			part = part[n:]
		}
		if err := stream.Stream(StatusPartEvent, vici.NewMessage().SetList("json", pieces...)); err != nil {
			return nil, err
		}
		parts++
	}
	return vici.NewMessage().Set("parts", strconv.Itoa(parts)), nil
}

// CommandError is a command the daemon answered with success = no; Msg is its errmsg.
type CommandError struct{ Msg string }

func (e *CommandError) Error() string { return e.Msg }

// FetchStatus is the client side of goipsec-status: it asks the daemon at socketPath for the
// status JSON, reassembling the parts.
func FetchStatus(ctx context.Context, socketPath string, args map[string]string) ([]byte, error) {
	req := vici.NewMessage()
	for k, v := range args {
		req.Set(k, v)
	}
	var js []byte
	parts := 0
	resp, err := vici.CallStreaming(ctx, socketPath, "goipsec-status", StatusPartEvent, req, func(m *vici.Message) {
		for _, piece := range m.List("json") {
			js = append(js, piece...)
		}
		parts++
	})
	switch {
	case errors.Is(err, vici.ErrNoSuchEvent), errors.Is(err, vici.ErrNoSuchCommand):
		return nil, fmt.Errorf("the daemon at %s does not stream its status (an older goipsec?)", socketPath)
	case err != nil:
		return nil, fmt.Errorf("goipsec-status from the daemon at %s: %w", socketPath, err)
	case resp.Err() != nil:
		return nil, &CommandError{Msg: cmp.Or(resp.Get("errmsg"), "goipsec-status failed")}
	}
	if one := resp.Get("json"); one != "" {
		return []byte(one), nil
	}
	if want := resp.Get("parts"); want != strconv.Itoa(parts) {
		return nil, fmt.Errorf("the daemon at %s announced %s status parts, %d arrived", socketPath, want, parts)
	}
	return js, nil
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
