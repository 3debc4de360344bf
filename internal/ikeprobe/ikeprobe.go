// Package ikeprobe asks a host whether an IKEv2 responder answers on a UDP port, without creating
// any state there: it sends one IKE_SA_INIT request offering the connection's own IKE proposals
// but a KE payload of a key exchange method none of them names. A live responder that accepts
// one of the proposals answers INVALID_KE_PAYLOAD (RFC 7296 §1.2: it names the group it wants and
// keeps no state, the normal first step of many handshakes); one that accepts none answers
// NO_PROPOSAL_CHOSEN (§2.7), which is worth knowing too. A closed port answers with ICMP port
// unreachable; a dead host or a firewall that drops answers nothing.
package ikeprobe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/ike/wire"
	"github.com/goipsec/goipsec/proposal"
)

// Verdict is what the probe concluded.
type Verdict string

// Verdicts.
const (
	Answered Verdict = "answered" // an IKEv2 responder replied
	Refused  Verdict = "refused"  // ICMP port unreachable: nothing listens on the port
	Silent   Verdict = "silent"   // no reply in time: the host is down, or something drops the traffic
	Failed   Verdict = "error"    // the probe could not be sent (no route, no address)
)

// Result is one probe's outcome.
type Result struct {
	Verdict Verdict
	Detail  string
	RTT     time.Duration // until the answer (Answered, Refused)
}

// Options tune a probe.
type Options struct {
	// Mark is set as SO_MARK on the probe's socket (0: none): the daemon's mark exempts its own
	// packets from the routes into the tunnel, and the probe must travel as IKE does.
	Mark uint32
	// Timeout bounds the whole probe (default 2 s); the request is repeated twice within it.
	Timeout time.Duration
	// Rand supplies the SPI, nonce and KE data (default crypto/rand).
	Rand io.Reader
	// Proposals are offered (the connection's IKE proposals; default: the "default" set).
	Proposals []proposal.Proposal
	// NATTPort is the port on which IKE travels after a non-ESP marker (default 4500).
	NATTPort uint16
}

// keGroups are key exchange methods the probe may claim in its KE payload, with their public
// value lengths (RFC 7296 §3.4; X25519: RFC 8031; ECP: RFC 5903; MODP: RFC 3526): the first one
// that no offered proposal names is used.
var keGroups = []struct {
	id  uint16
	len int
}{{31, 32}, {19, 64}, {14, 256}, {20, 96}, {21, 132}, {15, 384}, {16, 512}}

// unusedGroup picks a key exchange method that none of the proposals names.
func unusedGroup(props []proposal.Proposal) (uint16, int) {
	used := map[uint16]bool{}
	for _, p := range props {
		for _, t := range p.Of(proposal.TypeKeyExchange) {
			used[t.ID] = true
		}
	}
	for _, g := range keGroups {
		if !used[g.id] {
			return g.id, g.len
		}
	}
	return 65001, 32 // private use (RFC 7296 §3.3.2): named by no proposal either
}

// toWire converts proposals to SA payload proposals, numbered from 1.
func toWire(props []proposal.Proposal) []wire.Proposal {
	out := make([]wire.Proposal, 0, len(props))
	for i, p := range props {
		wp := wire.Proposal{Number: uint8(i + 1), Protocol: wire.ProtoIKE}
		for _, t := range p.Transforms {
			wt := wire.Transform{Type: wire.TransformType(t.Type), ID: t.ID}
			if t.KeyLength != 0 {
				wt.Attributes = []wire.Attribute{wire.KeyLengthAttribute(t.KeyLength)}
			}
			wp.Transforms = append(wp.Transforms, wt)
		}
		out = append(out, wp)
	}
	return out
}

// natTMarker is the non-ESP marker that precedes IKE messages on port 4500 (RFC 3948 §2.2).
var natTMarker = []byte{0, 0, 0, 0}

// Request builds the probe: IKE_SA_INIT offering props, with a KE payload of a method none of them
// names (random bytes of that method's length) and a Nonce.
func Request(spi uint64, props []proposal.Proposal, rnd io.Reader) ([]byte, error) {
	group, n := unusedGroup(props)
	ke := make([]byte, n)
	nonce := make([]byte, 32)
	if _, err := io.ReadFull(rnd, ke); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, err
	}
	m := wire.Message{
		Header: wire.Header{SPIi: spi, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagInitiator},
		Payloads: []wire.Payload{
			&wire.SA{Proposals: toWire(props)},
			&wire.KE{Group: group, Data: ke},
			&wire.Nonce{Data: nonce},
		},
	}
	return m.Encode()
}

// ParseAnswer checks that b (without a non-ESP marker) is the response to the probe with SPI spi
// and says what it means.
func ParseAnswer(b []byte, spi uint64) (string, error) {
	m, err := wire.Decode(b)
	if err != nil {
		return "", err
	}
	if m.SPIi != spi || !m.IsResponse() || m.Exchange != wire.ExchangeIKESAInit {
		return "", errors.New("not a response to the probe")
	}
	var notes []string
	for _, p := range m.Payloads {
		if n, ok := p.(*wire.Notify); ok {
			switch n.NotifyType {
			case wire.InvalidKEPayload:
				return "an IKEv2 responder answered and accepts one of our IKE proposals", nil
			case wire.NoProposalChosen:
				return "an IKEv2 responder answered, but accepts none of our IKE proposals (NO_PROPOSAL_CHOSEN)", nil
			}
			notes = append(notes, n.NotifyType.String())
		}
	}
	if len(notes) == 0 {
		return "an IKEv2 responder answered (IKE_SA_INIT response)", nil
	}
	return "an IKEv2 responder answered (" + strings.Join(notes, ", ") + ")", nil
}

// Probe sends the probe to dst (port 4500 with the non-ESP marker) and waits for the outcome.
func Probe(ctx context.Context, dst netip.AddrPort, opts Options) Result {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if len(opts.Proposals) == 0 {
		opts.Proposals, _ = proposal.ParseIKE("default")
	}
	var rnd [8]byte
	if _, err := io.ReadFull(opts.Rand, rnd[:]); err != nil {
		return Result{Verdict: Failed, Detail: err.Error()}
	}
	spi := binary.BigEndian.Uint64(rnd[:]) | 1 // never zero
	req, err := Request(spi, opts.Proposals, opts.Rand)
	if err != nil {
		return Result{Verdict: Failed, Detail: err.Error()}
	}
	if opts.NATTPort == 0 {
		opts.NATTPort = 4500
	}
	natt := dst.Port() == opts.NATTPort
	if natt {
		req = append(append([]byte(nil), natTMarker...), req...)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		if opts.Mark == 0 {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(opts.Mark)) }); err != nil {
			return err
		}
		return serr
	}}
	// A connected socket: the kernel reports ICMP port unreachable as ECONNREFUSED on it.
	conn, err := d.DialContext(ctx, "udp", dst.String())
	if err != nil {
		return Result{Verdict: Failed, Detail: err.Error()}
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	start := time.Now()
	// Repeat the request (a lost datagram is not a dead peer) at 0, 1/3 and 2/3 of the timeout.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(opts.Timeout / 3)
		defer t.Stop()
		for i := 0; i < 3; i++ {
			conn.Write(req)
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return Result{Verdict: Refused, Detail: "ICMP port unreachable: nothing listens on this port", RTT: time.Since(start)}
		case err != nil:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return Result{Verdict: Silent, Detail: fmt.Sprintf("no answer within %s (host down, or a firewall drops udp/%d)", opts.Timeout, dst.Port())}
			}
			return Result{Verdict: Failed, Detail: err.Error()}
		}
		msg := buf[:n]
		if natt {
			if n < 4 || binary.BigEndian.Uint32(msg) != 0 {
				continue // not IKE after a marker (ESP or a keepalive)
			}
			msg = msg[4:]
		}
		what, err := ParseAnswer(msg, spi)
		if err != nil {
			continue
		}
		return Result{Verdict: Answered, Detail: what, RTT: time.Since(start)}
	}
}
