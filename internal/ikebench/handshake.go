package ikebench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/wire"
)

// Message IDs of the exchanges of one handshake (RFC 7296 §2.2: the initiator numbers its
// requests from 0). Additional key exchanges (RFC 9370) add one IKE_INTERMEDIATE exchange each
// before IKE_AUTH, which then moves up by as many.
const (
	msgIDInit   = 0
	msgIDAuth   = 1
	msgIDDelete = 2
)

// handshake is a worker's reusable state: the inbox the reader fills and a timer for
// retransmissions. One handshake runs at a time on it.
type handshake struct {
	r     *runner
	t     *tally
	inbox chan []byte
	timer *time.Timer
}

// run performs one handshake and returns the time from the first IKE_SA_INIT request to the
// verified IKE_AUTH response. The error names the exchange that failed.
func (h *handshake) run(ctx context.Context) (time.Duration, error) {
	cfg := &h.r.cfg
	sa, err := ike.NewInitiator(cfg.IKE, []*ike.ChildConfig{cfg.Child}, h.r.sock.local, cfg.Peer, h.r.deps)
	if err != nil {
		return 0, fmt.Errorf("IKE_SA_INIT: %w", err)
	}
	defer sa.Zero()
	if !h.r.register(sa.SPIi, h.inbox) {
		return 0, errors.New("IKE_SA_INIT: initiator SPI already in flight")
	}
	defer h.r.unregister(sa.SPIi)
	h.drain()

	start := time.Now()
	if err := h.init(ctx, sa); err != nil {
		return 0, fmt.Errorf("IKE_SA_INIT: %w", err)
	}
	sock := h.r.sock
	if sa.NAT() {
		// The peer's NAT detection says to float (RFC 7296 §2.23): everything after
		// IKE_SA_INIT goes to its NAT-T port behind the non-ESP marker.
		sock = h.r.natt
		sa.Local = sock.local
		sa.Remote = netip.AddrPortFrom(cfg.Peer.Addr(), cfg.PeerNATTPort)
		h.t.natt++
	}
	inter, err := h.intermediate(ctx, sa, sock)
	if err != nil {
		return 0, fmt.Errorf("IKE_INTERMEDIATE: %w", err)
	}
	if err := h.auth(ctx, sa, sock, msgIDAuth+inter); err != nil {
		return 0, fmt.Errorf("IKE_AUTH: %w", err)
	}
	latency := time.Since(start)
	if cfg.Delete {
		if err := h.delete(ctx, sa, sock, msgIDDelete+inter); err != nil {
			return 0, fmt.Errorf("INFORMATIONAL Delete: %w", err)
		}
	}
	return latency, nil
}

// drain empties the inbox of datagrams that arrived for the previous handshake after it ended.
func (h *handshake) drain() {
	for {
		select {
		case <-h.inbox:
		default:
			return
		}
	}
}

// init runs IKE_SA_INIT, repeating the request with the COOKIE or key exchange group the peer
// asks for (ike.SA bounds those round trips).
func (h *handshake) init(ctx context.Context, sa *ike.SA) error {
	req, err := sa.NextRequest()
	if err != nil {
		return err
	}
	for {
		var resp *wire.Message
		var raw []byte
		err = h.roundTrip(ctx, h.r.sock, req.Raw, sa.SPIi, func(b []byte, hd wire.Header) (bool, error) {
			if m, ok := acceptInit(b, hd); ok {
				resp, raw = m, b
				return true, nil
			}
			return false, nil
		})
		if err != nil {
			return err
		}
		next, err := sa.ProcessResponse(&ike.Message{Exchange: wire.ExchangeIKESAInit, Payloads: resp.Payloads, Raw: raw})
		if err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		if hasNotify(resp.Payloads, wire.Cookie) {
			h.t.cookies++
		} else {
			h.t.invalidKE++
		}
		req = next
	}
}

// intermediate runs the IKE_INTERMEDIATE exchanges of additional key exchanges (RFC 9370
// §2.2.2) and returns how many there were.
func (h *handshake) intermediate(ctx context.Context, sa *ike.SA, sock *socket) (uint32, error) {
	var n uint32
	for sa.State() == ike.StateIntermediate {
		req, err := sa.NextRequest()
		if err != nil {
			return n, err
		}
		if req == nil || req.Exchange != wire.ExchangeIKEIntermediate {
			return n, errors.New("no IKE_INTERMEDIATE request to send")
		}
		id := msgIDAuth + n
		var resp *ike.Message
		err = h.protectedRoundTrip(ctx, sa, sock, wire.ExchangeIKEIntermediate, id, req.Payloads, func(p []wire.Payload, intAuth []byte) {
			resp = &ike.Message{Exchange: wire.ExchangeIKEIntermediate, Payloads: p, IntAuth: intAuth}
		})
		if err != nil {
			return n, err
		}
		if _, err := sa.ProcessResponse(resp); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// auth runs IKE_AUTH with PSK authentication and the configured Child SA.
func (h *handshake) auth(ctx context.Context, sa *ike.SA, sock *socket, id uint32) error {
	req, err := sa.NextRequest()
	if err != nil {
		return err
	}
	if req == nil || req.Exchange != wire.ExchangeIKEAuth {
		return errors.New("no IKE_AUTH request to send")
	}
	var inner []wire.Payload
	err = h.protectedRoundTrip(ctx, sa, sock, wire.ExchangeIKEAuth, id, req.Payloads, func(p []wire.Payload, _ []byte) { inner = p })
	if err != nil {
		return err
	}
	if _, err := sa.ProcessResponse(&ike.Message{Exchange: wire.ExchangeIKEAuth, Payloads: inner}); err != nil && sa.State() != ike.StateEstablished {
		return err
	}
	effects := sa.TakeEffects()
	if sa.HoldsResponse() {
		// A certificate's AUTH is verified off the SA (revocation checks may fetch): the daemon's
		// engine runs that Async work on a goroutine; the generator, one handshake per goroutine
		// already, runs it here and resumes.
		var result any
		for _, e := range effects {
			if a, ok := e.(ike.Async); ok {
				result = a.Run()
			}
		}
		if _, err := sa.ResumeResponse(result); err != nil && sa.State() != ike.StateEstablished {
			return err
		}
		effects = append(effects, sa.TakeEffects()...)
	}
	child := false
	var childErr error
	for _, e := range effects {
		switch e := e.(type) {
		case ike.ChildUp:
			child = true
			e.Child.Zero()
		case ike.Failed:
			if !e.Retry && childErr == nil {
				childErr = e.Err
			}
		}
	}
	switch {
	case childErr != nil:
		return fmt.Errorf("IKE SA up, Child SA refused: %w", childErr)
	case !child:
		return errors.New("IKE SA up without the Child SA")
	}
	return nil
}

// delete deletes the IKE SA (RFC 7296 §1.4.1) and waits for the peer's answer.
func (h *handshake) delete(ctx context.Context, sa *ike.SA, sock *socket, id uint32) error {
	ps := []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}}
	return h.protectedRoundTrip(ctx, sa, sock, wire.ExchangeInformational, id, ps, func([]wire.Payload, []byte) {})
}

// protectedRoundTrip seals a request, sends it and waits for the response that authenticates,
// handing its inner payloads (and, for IKE_INTERMEDIATE, what IKE_AUTH authenticates of it) to got.
func (h *handshake) protectedRoundTrip(ctx context.Context, sa *ike.SA, sock *socket, ex wire.ExchangeType, id uint32, ps []wire.Payload, got func([]wire.Payload, []byte)) error {
	// No fragmentation is announced, so the request always fits one message (maxSize 0).
	msgs, err := sa.Seal(sa.Header(ex, id, false), ps, 0)
	if err != nil {
		return err
	}
	if len(msgs) != 1 {
		return fmt.Errorf("request sealed into %d messages, want 1", len(msgs))
	}
	return h.roundTrip(ctx, sock, msgs[0], sa.SPIi, func(b []byte, hd wire.Header) (bool, error) {
		inner, done, err := acceptProtected(sa, ex, id, b, hd)
		if done && err == nil {
			var intAuth []byte
			if ex == wire.ExchangeIKEIntermediate {
				// The inner payloads re-encoded: the bench's peers (goipsec, strongSwan) send
				// them in canonical form, which ike/wire's golden round trips reproduce.
				first, plain, _ := wire.EncodePayloads(inner)
				intAuth = wire.IntAuthData(hd, first, plain)
			}
			got(inner, intAuth)
		}
		return done, err
	})
}

// acceptInit takes the IKE_SA_INIT response among the datagrams of an SA (hd is b's header).
// Anything else, and anything that does not decode, is ignored: IKE_SA_INIT is unauthenticated,
// and a forged or broken answer must not end the handshake while the real one may still come
// (RFC 7296 §2.21.1).
func acceptInit(b []byte, hd wire.Header) (*wire.Message, bool) {
	if !isResponse(hd, wire.ExchangeIKESAInit, msgIDInit) {
		return nil, false
	}
	m, err := wire.Decode(b)
	if err != nil {
		return nil, false
	}
	return m, true
}

// acceptProtected takes the response to the protected request ex/id among the datagrams of sa and
// returns its inner payloads. Datagrams that are not that response or do not authenticate are
// ignored (RFC 7296 §2.21.2: drop them silently); done with an error is an authenticated answer
// that fails the handshake.
func acceptProtected(sa *ike.SA, ex wire.ExchangeType, id uint32, b []byte, hd wire.Header) (inner []wire.Payload, done bool, err error) {
	if !isResponse(hd, ex, id) || hd.SPIr != sa.SPIr {
		return nil, false, nil
	}
	opened, err := sa.Open(b)
	if err != nil {
		return nil, false, nil
	}
	if opened.Fragment != nil {
		return nil, true, errors.New("peer answered with IKEv2 fragments, which were not announced")
	}
	// Authenticated from here on: a malformed response is the peer's definite answer.
	if err := wire.CheckGrammar(opened.Message, opened.Inner); err != nil {
		return nil, true, fmt.Errorf("malformed response: %w", err)
	}
	return opened.Inner, true, nil
}

// roundTrip sends msg and waits for the datagram of this SA that accept takes, retransmitting
// the same bytes after each timeout. accept returns done when the wait is over, with err when the
// answer is a failure; datagrams it does not take are ignored.
func (h *handshake) roundTrip(ctx context.Context, sock *socket, msg []byte, spi uint64, accept func(b []byte, hd wire.Header) (done bool, err error)) error {
	datagram := sock.frame(msg)
	var sendErr error
	for try := 0; ; try++ {
		if err := sock.send(datagram); err != nil {
			// Treated like a lost datagram: on a shared connected socket the error may well
			// belong to another handshake's ICMP message.
			sendErr = err
		}
		h.timer.Reset(h.r.cfg.Timeout)
	wait:
		for {
			select {
			case <-ctx.Done():
				h.timer.Stop()
				return ctx.Err()
			case <-h.timer.C:
				break wait
			case b := <-h.inbox:
				hd, err := wire.DecodeHeader(b)
				if err != nil || hd.SPIi != spi {
					continue
				}
				if done, err := accept(b, hd); done {
					h.timer.Stop()
					return err
				}
			}
		}
		if try == h.r.cfg.Retries {
			if sendErr != nil {
				return fmt.Errorf("no response after %d retransmissions (sending failed: %v)", try, sendErr)
			}
			return fmt.Errorf("no response after %d retransmissions", try)
		}
		h.t.retransmits++
	}
}

func isResponse(hd wire.Header, ex wire.ExchangeType, id uint32) bool {
	return hd.IsResponse() && !hd.IsInitiator() && hd.Exchange == ex && hd.MessageID == id
}

func hasNotify(ps []wire.Payload, t wire.NotifyType) bool {
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok && n.NotifyType == t {
			return true
		}
	}
	return false
}
