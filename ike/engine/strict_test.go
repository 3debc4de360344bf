package engine_test

import (
	"testing"
	"time"

	"github.com/goipsec/goipsec/ike"
	"github.com/goipsec/goipsec/ike/engine"
	"github.com/goipsec/goipsec/ike/engine/enginetest"
	"github.com/goipsec/goipsec/ike/wire"
)

// initRequest builds a valid IKE_SA_INIT request of connection cfg, decoded.
func initRequest(t *testing.T, p *pair) (*ike.SA, *wire.Message) {
	t.Helper()
	sa, err := ike.NewInitiator(p.ca, p.ca.Children, p.addrA, p.addrB, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := sa.NextRequest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Decode(req.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return sa, m
}

// answers delivers b to B from A's address and returns what B sent back.
func answers(t *testing.T, p *pair, b []byte) []*wire.Message {
	t.Helper()
	before := len(p.net.Queued())
	p.b.Engine.Receive(b, p.addrB, p.addrA)
	p.net.Poll()
	var out []*wire.Message
	for _, pk := range p.net.Queued()[before:] {
		m, err := wire.Decode(pk.B)
		if err != nil {
			t.Fatalf("B sent an undecodable message: %v", err)
		}
		out = append(out, m)
	}
	return out
}

func encode(t *testing.T, m *wire.Message) []byte {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStrictInitRequest(t *testing.T) {
	t.Run("zero SPIi is dropped", func(t *testing.T) {
		p := newPair(t, nil)
		_, m := initRequest(t, p)
		m.SPIi = 0
		if got := answers(t, p, encode(t, m)); len(got) != 0 {
			t.Fatalf("B answered %d messages", len(got))
		}
		if st := p.b.Engine.Stats(); st.Drops[engine.DropZeroSPI] != 1 || st.HalfOpen != 0 {
			t.Fatalf("drops %v, half-open %d", st.Drops, st.HalfOpen)
		}
	})
	t.Run("message ID other than 0 is dropped", func(t *testing.T) {
		p := newPair(t, nil)
		_, m := initRequest(t, p)
		m.MessageID = 1
		if got := answers(t, p, encode(t, m)); len(got) != 0 {
			t.Fatalf("B answered %d messages", len(got))
		}
		if st := p.b.Engine.Stats(); st.Drops[engine.DropMessageID] != 1 || st.HalfOpen != 0 {
			t.Fatalf("drops %v, half-open %d", st.Drops, st.HalfOpen)
		}
	})
	for _, dup := range []wire.PayloadType{wire.PayloadSA, wire.PayloadKE, wire.PayloadNonce} {
		t.Run("duplicate "+dup.String()+" is answered INVALID_SYNTAX", func(t *testing.T) {
			p := newPair(t, nil)
			_, m := initRequest(t, p)
			for _, pl := range m.Payloads {
				if pl.Type() == dup {
					m.Payloads = append(m.Payloads, pl)
					break
				}
			}
			got := answers(t, p, encode(t, m))
			if len(got) != 1 || len(got[0].Payloads) != 1 {
				t.Fatalf("B answered %v", got)
			}
			n, ok := got[0].Payloads[0].(*wire.Notify)
			if !ok || n.NotifyType != wire.InvalidSyntax || !got[0].IsResponse() || got[0].SPIr != 0 {
				t.Fatalf("B answered %+v", got[0].Payloads[0])
			}
			if st := p.b.Engine.Stats(); st.HalfOpen != 0 || p.b.Engine.Count() != 0 {
				t.Fatal("B kept state for a malformed request")
			}
		})
	}
}

// TestInformationalBeforeAuthDropped: a half-open IKE SA takes IKE_AUTH and nothing else, even
// when the message authenticates (RFC 7296 §1.4).
func TestInformationalBeforeAuthDropped(t *testing.T) {
	p := newPair(t, nil)
	sa, m := initRequest(t, p)
	got := answers(t, p, encode(t, m))
	if len(got) != 1 {
		t.Fatalf("B answered %d messages", len(got))
	}
	raw := encode(t, got[0])
	if _, err := sa.ProcessResponse(&ike.Message{Exchange: wire.ExchangeIKESAInit, Payloads: got[0].Payloads, Raw: raw}); err != nil {
		t.Fatal(err)
	}
	msgs, err := sa.Seal(sa.Header(wire.ExchangeInformational, 1, false), []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := answers(t, p, msgs[0]); len(got) != 0 {
		t.Fatalf("B answered an INFORMATIONAL before IKE_AUTH")
	}
	if st := p.b.Engine.Stats(); st.Drops[engine.DropUnexpectedExchange] != 1 || st.HalfOpen != 1 {
		t.Fatalf("drops %v, half-open %d", st.Drops, st.HalfOpen)
	}
	// The half-open SA still completes.
	req, err := sa.NextRequest()
	if err != nil || req.Exchange != wire.ExchangeIKEAuth {
		t.Fatalf("next request %v, %v", req, err)
	}
	msgs, err = sa.Seal(sa.Header(wire.ExchangeIKEAuth, 1, false), req.Payloads, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := answers(t, p, msgs[0]); len(got) != 1 || len(p.b.IKEUp()) != 1 {
		t.Fatalf("IKE_AUTH after the dropped INFORMATIONAL: %d answers, B up %d", len(got), len(p.b.IKEUp()))
	}
}

// TestUnknownSPIAnsweredInvalidSPI: a request for an IKE SA we do not have gets an unprotected
// INVALID_IKE_SPI response with the same SPIs and message ID (RFC 7296 §2.21.4); a response for
// one gets nothing; answers are rate-limited.
func TestUnknownSPIAnsweredInvalidSPI(t *testing.T) {
	p := newPair(t, &pairOptions{b: enginetest.HostOptions{Modify: func(c *engine.Config) { c.InvalidSPIRate = 3 }}})
	req := &wire.Message{Header: wire.Header{SPIi: 0x1111, SPIr: 0x2222, Exchange: wire.ExchangeInformational, MessageID: 7, Flags: wire.FlagInitiator},
		Payloads: []wire.Payload{&wire.Notify{NotifyType: wire.InitialContact}}}
	got := answers(t, p, encode(t, req))
	if len(got) != 1 {
		t.Fatalf("B answered %d messages", len(got))
	}
	a := got[0]
	n, ok := a.Payloads[0].(*wire.Notify)
	if !ok || n.NotifyType != wire.InvalidIKESPI || a.SPIi != 0x1111 || a.SPIr != 0x2222 || a.MessageID != 7 || !a.IsResponse() || a.IsInitiator() {
		t.Fatalf("B answered %+v %+v", a.Header, a.Payloads)
	}
	resp := *req
	resp.Flags = wire.FlagResponse
	if got := answers(t, p, encode(t, &resp)); len(got) != 0 {
		t.Fatal("B answered a response for an unknown SA")
	}
	n2 := 0
	for range 10 {
		n2 += len(answers(t, p, encode(t, req)))
	}
	if n2 != 2 {
		t.Fatalf("B answered %d of 10 more requests within a second, want 2 (rate 3/s)", n2)
	}
	p.net.Clock.Advance(time.Second)
	if got := answers(t, p, encode(t, req)); len(got) != 1 {
		t.Fatal("the rate limit did not refill")
	}
}
