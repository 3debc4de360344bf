// Package ikeprobe asks a host whether an IKEv2 responder answers on a UDP port, without creating
// any state there: it sends one IKE_SA_INIT request whose only proposal uses transform IDs from
// the private-use range (RFC 7296 §3.3.2: 1024–65535), which no responder accepts, so a live one
// answers NO_PROPOSAL_CHOSEN (RFC 7296 §2.7) and keeps nothing. A closed port answers with ICMP
// port unreachable; a dead host or a firewall that drops answers nothing.
//
// The peer logs the probe as a failed negotiation with an unacceptable proposal; docs say so.
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
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipsec/goipsec/ike/wire"
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
	// Rand supplies the SPI and nonce (default crypto/rand).
	Rand io.Reader
}

// privateID is a transform ID from the private-use range of every transform type (IANA IKEv2
// registries; RFC 7296 §3.3.2), so that the proposal matches nothing.
const privateID = 65001

// natTMarker is the non-ESP marker that precedes IKE messages on port 4500 (RFC 3948 §2.2).
var natTMarker = []byte{0, 0, 0, 0}

// Request builds the probe: IKE_SA_INIT with SA, KE (X25519-sized) and Nonce payloads.
func Request(spi uint64, nonce, keData []byte) ([]byte, error) {
	m := wire.Message{
		Header: wire.Header{SPIi: spi, Exchange: wire.ExchangeIKESAInit, Flags: wire.FlagInitiator},
		Payloads: []wire.Payload{
			&wire.SA{Proposals: []wire.Proposal{{Number: 1, Protocol: wire.ProtoIKE, Transforms: []wire.Transform{
				{Type: wire.TransformENCR, ID: privateID},
				{Type: wire.TransformPRF, ID: privateID},
				{Type: wire.TransformINTEG, ID: privateID},
				{Type: wire.TransformKE, ID: 31},
			}}}},
			&wire.KE{Group: 31, Data: keData},
			&wire.Nonce{Data: nonce},
		},
	}
	return m.Encode()
}

// ParseAnswer checks that b (without a non-ESP marker) is the response to the probe with SPI spi
// and names the notifications it carries.
func ParseAnswer(b []byte, spi uint64) (string, error) {
	m, err := wire.Decode(b)
	if err != nil {
		return "", err
	}
	if m.SPIi != spi || !m.IsResponse() || m.Exchange != wire.ExchangeIKESAInit {
		return "", errors.New("not a response to the probe")
	}
	var notes string
	for _, p := range m.Payloads {
		if n, ok := p.(*wire.Notify); ok {
			if notes != "" {
				notes += ", "
			}
			notes += n.NotifyType.String()
		}
	}
	if notes == "" {
		notes = "an IKE_SA_INIT response"
	}
	return notes, nil
}

// Probe sends the probe to dst (port 4500 with the non-ESP marker) and waits for the outcome.
func Probe(ctx context.Context, dst netip.AddrPort, opts Options) Result {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	var rnd [8 + 32 + 32]byte
	if _, err := io.ReadFull(opts.Rand, rnd[:]); err != nil {
		return Result{Verdict: Failed, Detail: err.Error()}
	}
	spi := binary.BigEndian.Uint64(rnd[:8]) | 1 // never zero
	req, err := Request(spi, rnd[8:40], rnd[40:])
	if err != nil {
		return Result{Verdict: Failed, Detail: err.Error()}
	}
	natt := dst.Port() == 4500
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
		notes, err := ParseAnswer(msg, spi)
		if err != nil {
			continue
		}
		return Result{Verdict: Answered, Detail: "an IKEv2 responder answered (" + notes + ")", RTT: time.Since(start)}
	}
}
